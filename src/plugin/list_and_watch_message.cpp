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
    return build(resource, Resource{}, ListAndWatchMessage{});
}

std::shared_ptr<const ListAndWatchMessage> ListAndWatchMessage::build(const Resource &resource, const Resource &before,
                                                                      const ListAndWatchMessage &previous)
{
    auto message = std::shared_ptr<ListAndWatchMessage>(new ListAndWatchMessage);
    std::string &out = message->bytes_;
    // A previous message that does not describe `before` is not used at all.
    const bool reusable = previous.ends_.size() == before.devices.size();
    out.reserve(reusable ? previous.bytes_.size() + 64 : resource.devices.size() * 64);
    message->ends_.reserve(resource.devices.size());

    v1beta1::Device scratch;
    // Unchanged devices usually come in long runs; each run is one copy.
    std::size_t runBegin = 0, runEnd = 0;
    auto flushRun = [&] {
        out.append(previous.bytes_, runBegin, runEnd - runBegin);
        runBegin = runEnd = 0;
    };
    // Both lists are sorted by id, so one walk pairs each device with its
    // previous self. Were they not, devices would only be encoded afresh more
    // often; the bytes would still be right.
    std::size_t j = 0;
    for (const AdvertisedDevice &device : resource.devices) {
        if (reusable)
            while (j < before.devices.size() && before.devices[j].id < device.id)
                ++j;
        if (reusable && j < before.devices.size() && sameListAndWatchView(before.devices[j], device)) {
            std::size_t begin = j == 0 ? 0 : previous.ends_[j - 1];
            if (runEnd != begin) {
                flushRun();
                runBegin = begin;
            }
            runEnd = previous.ends_[j];
            ++j;
        } else {
            flushRun();
            appendDevice(out, scratch, device);
            ++message->encoded_;
        }
        message->ends_.push_back(static_cast<std::uint32_t>(out.size() + (runEnd - runBegin)));
    }
    flushRun();
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
