#include "plugin/list_and_watch_message.h"

#include "api.pb.h"

#include <algorithm>

#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

namespace kvgpu {

namespace {

// ListAndWatchResponse.devices is field 1, length-delimited: (1 << 3) | 2.
constexpr char kDevicesTag = 0x0a;

void appendVarint(std::string &out, std::size_t value)
{
    while (value >= 0x80) {
        out.push_back(static_cast<char>((value & 0x7f) | 0x80));
        value >>= 7;
    }
    out.push_back(static_cast<char>(value));
}

// Appends one `devices` field. The element itself is encoded by the
// generated code, so it is exactly what protobuf would write for it; only
// the framing is ours.
void appendDevice(std::string &out, v1beta1::Device &scratch, const AdvertisedDevice &device)
{
    scratch.set_id(device.id);
    scratch.set_health(device.healthy ? kHealthy : kUnhealthy);
    // NUMA -1 means "unknown": the kubelet reads no topology as no affinity,
    // which is the truth; node 0 would be a guess.
    if (device.numaNode >= 0) {
        v1beta1::TopologyInfo *topology = scratch.mutable_topology();
        topology->clear_nodes();
        topology->add_nodes()->set_id(device.numaNode);
    } else {
        scratch.clear_topology();
    }
    std::size_t size = scratch.ByteSizeLong();
    out.push_back(kDevicesTag);
    appendVarint(out, size);
    std::size_t at = out.size();
    out.resize(at + size);
    scratch.SerializeWithCachedSizesToArray(reinterpret_cast<std::uint8_t *>(out.data() + at));
}

} // namespace

bool sameListAndWatchView(const AdvertisedDevice &a, const AdvertisedDevice &b)
{
    return a.id == b.id && a.healthy == b.healthy && std::max(a.numaNode, -1) == std::max(b.numaNode, -1);
}

bool sameListAndWatchView(const Resource &a, const Resource &b)
{
    return std::equal(a.devices.begin(), a.devices.end(), b.devices.begin(), b.devices.end(),
                      [](const AdvertisedDevice &x, const AdvertisedDevice &y) { return sameListAndWatchView(x, y); });
}

std::shared_ptr<const ListAndWatchMessage> ListAndWatchMessage::build(const Resource &resource)
{
    return apply(ListAndWatchMessage{}, ResourceDelta{.kind = resource.kind, .set = resource.devices});
}

std::shared_ptr<const ListAndWatchMessage> ListAndWatchMessage::build(const Resource &resource, const Resource &before,
                                                                      const ListAndWatchMessage &previous)
{
    if (previous.ends_.size() != before.devices.size())
        return build(resource);
    // The change from `before` to `resource`, as far as the kubelet can see it.
    ResourceDelta delta{.kind = resource.kind};
    auto b = before.devices.begin();
    for (const AdvertisedDevice &device : resource.devices) {
        for (; b != before.devices.end() && b->id < device.id; ++b)
            delta.removed.push_back(b->id);
        if (b != before.devices.end() && b->id == device.id && sameListAndWatchView(*b, device))
            ++b;
        else
            delta.set.push_back(device);
    }
    for (; b != before.devices.end(); ++b)
        delta.removed.push_back(b->id);
    return apply(previous, delta);
}

std::string_view ListAndWatchMessage::idAt(std::size_t i) const
{
    // devices field: tag, varint length, then Device whose field 1 (id) comes
    // first: tag 0x0a, varint length, the id.
    std::size_t at = beginOf(i) + 1;
    auto skipVarint = [&] {
        while (static_cast<unsigned char>(bytes_[at++]) & 0x80) {
        }
    };
    skipVarint();
    if (bytes_[at++] != kDevicesTag) // the id's tag (1, length-delimited), absent only for an empty id
        return {};
    std::size_t length = 0;
    for (int shift = 0;; shift += 7) {
        auto byte = static_cast<unsigned char>(bytes_[at++]);
        length |= static_cast<std::size_t>(byte & 0x7f) << shift;
        if (!(byte & 0x80))
            break;
    }
    return std::string_view(bytes_).substr(at, length);
}

std::shared_ptr<const ListAndWatchMessage> ListAndWatchMessage::apply(const ListAndWatchMessage &previous,
                                                                      const ResourceDelta &delta)
{
    auto message = std::shared_ptr<ListAndWatchMessage>(new ListAndWatchMessage);
    std::string &out = message->bytes_;
    out.reserve(previous.bytes_.size() + delta.set.size() * 64);
    message->ends_.reserve(previous.ends_.size() + delta.set.size());
    v1beta1::Device scratch;

    const std::size_t count = previous.ends_.size();
    std::size_t next = 0; // the first previous device not yet copied or dropped
    // Copies previous devices [next, end) in one piece, shifting their ends.
    auto copyUpTo = [&](std::size_t end) {
        if (end <= next)
            return;
        const std::size_t from = previous.beginOf(next);
        const std::size_t shift = out.size();
        out.append(previous.bytes_, from, previous.ends_[end - 1] - from);
        for (std::size_t k = next; k < end; ++k)
            message->ends_.push_back(static_cast<std::uint32_t>(previous.ends_[k] - from + shift));
        next = end;
    };
    // The first previous device at or after `id`, searched from `next` on.
    auto positionOf = [&](std::string_view id) {
        std::size_t lo = next, hi = count;
        while (lo < hi) {
            std::size_t mid = lo + (hi - lo) / 2;
            if (previous.idAt(mid) < id)
                lo = mid + 1;
            else
                hi = mid;
        }
        return lo;
    };
    // Walks the removed and the set ids together, in id order.
    auto removed = delta.removed.begin();
    auto set = delta.set.begin();
    while (removed != delta.removed.end() || set != delta.set.end()) {
        const bool takeSet =
            removed == delta.removed.end() || (set != delta.set.end() && set->id <= *removed);
        const std::string &id = takeSet ? set->id : *removed;
        std::size_t at = positionOf(id);
        copyUpTo(at);
        if (next < count && previous.idAt(next) == id)
            ++next; // replaced or removed: the previous encoding is dropped
        if (takeSet) {
            if (removed != delta.removed.end() && *removed == id)
                ++removed;
            appendDevice(out, scratch, *set);
            message->ends_.push_back(static_cast<std::uint32_t>(out.size()));
            ++message->encoded_;
            ++set;
        } else {
            ++removed;
        }
    }
    copyUpTo(count);
    return message;
}

grpc::ByteBuffer toByteBuffer(std::shared_ptr<const ListAndWatchMessage> message)
{
    if (message->bytes().empty()) {
        grpc::Slice empty;
        return grpc::ByteBuffer(&empty, 1);
    }
    using Keeper = std::shared_ptr<const ListAndWatchMessage>;
    auto *keeper = new Keeper(std::move(message));
    const std::string &bytes = (*keeper)->bytes();
    // gRPC only reads the slice; it calls the destroyer once it has sent it.
    grpc::Slice slice(const_cast<char *>(bytes.data()), bytes.size(),
                      [](void *keep) { delete static_cast<Keeper *>(keep); }, keeper);
    return grpc::ByteBuffer(&slice, 1);
}

} // namespace kvgpu
