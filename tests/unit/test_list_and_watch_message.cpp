// The ListAndWatch bytes built by concatenation are the message protobuf
// would build, and a change re-encodes only the devices it touched.
#include "plugin/list_and_watch_message.h"

#include "api.pb.h"

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <grpcpp/support/byte_buffer.h>

#include <algorithm>

using namespace kvgpu;

namespace {

AdvertisedDevice gpu(std::string id, int numa, bool healthy = true)
{
    return AdvertisedDevice{.id = std::move(id), .healthy = healthy, .numaNode = numa};
}

Resource resourceOf(std::vector<AdvertisedDevice> devices)
{
    std::sort(devices.begin(), devices.end(), [](auto &a, auto &b) { return a.id < b.id; });
    return Resource{"nvidia.com/NVIDIA_L4-1Q", DeviceKind::Vgpu, std::move(devices)};
}

// A vGPU list the size of the benchmark's resource: `count` mdevs on no NUMA node.
Resource vgpus(int count)
{
    std::vector<AdvertisedDevice> devices;
    for (int i = 0; i < count; ++i)
        devices.push_back(gpu(fmt::format("{:08x}-0000-4000-8000-{:012x}", 0x10000000 + 7919 * i, i), -1));
    return resourceOf(std::move(devices));
}

// The message the way the generated protobuf code builds it: the reference.
v1beta1::ListAndWatchResponse builtByProtobuf(const Resource &resource)
{
    v1beta1::ListAndWatchResponse message;
    for (const AdvertisedDevice &d : resource.devices) {
        v1beta1::Device *device = message.add_devices();
        device->set_id(d.id);
        device->set_health(d.healthy ? "Healthy" : "Unhealthy");
        if (d.numaNode >= 0)
            device->mutable_topology()->add_nodes()->set_id(d.numaNode);
    }
    return message;
}

// What the kubelet reads from the bytes: they must parse as a normal
// ListAndWatchResponse.
v1beta1::ListAndWatchResponse kubeletReads(const std::string &bytes)
{
    v1beta1::ListAndWatchResponse message;
    REQUIRE(message.ParseFromString(bytes));
    return message;
}

void requireSameMessage(const v1beta1::ListAndWatchResponse &got, const v1beta1::ListAndWatchResponse &want)
{
    REQUIRE(got.devices_size() == want.devices_size());
    for (int i = 0; i < got.devices_size(); ++i) {
        const v1beta1::Device &g = got.devices(i), &w = want.devices(i);
        CHECK(g.id() == w.id());
        CHECK(g.health() == w.health());
        REQUIRE(g.has_topology() == w.has_topology());
        if (w.has_topology()) {
            REQUIRE(g.topology().nodes_size() == w.topology().nodes_size());
            for (int n = 0; n < w.topology().nodes_size(); ++n)
                CHECK(g.topology().nodes(n).id() == w.topology().nodes(n).id());
        }
    }
    // Byte for byte, too: these messages have one canonical encoding.
    CHECK(got.SerializeAsString() == want.SerializeAsString());
}

void requireEncodes(const ListAndWatchMessage &message, const Resource &resource)
{
    CHECK(message.deviceCount() == resource.devices.size());
    CHECK(message.bytes() == builtByProtobuf(resource).SerializeAsString());
    requireSameMessage(kubeletReads(message.bytes()), builtByProtobuf(resource));
}

} // namespace

TEST_CASE("a list built by concatenation parses to the message protobuf builds, NUMA -1 without topology")
{
    Resource resource = resourceOf({gpu("0000:67:00.0", 0), gpu("0000:68:00.0", 1), gpu("0000:ca:00.0", 200),
                                    gpu("0000:e1:00.0", -1, false), gpu("0000:e2:00.0", -7)});
    auto message = ListAndWatchMessage::build(resource);
    requireEncodes(*message, resource);
    v1beta1::ListAndWatchResponse read = kubeletReads(message->bytes());
    CHECK(read.devices(0).topology().nodes(0).id() == 0);
    CHECK(read.devices(2).topology().nodes(0).id() == 200);
    CHECK_FALSE(read.devices(3).has_topology());
    CHECK(read.devices(3).health() == "Unhealthy");
    CHECK_FALSE(read.devices(4).has_topology());
    CHECK(message->encodedDevices() == 5);
}

TEST_CASE("an empty resource is an empty message: zero devices")
{
    Resource empty = resourceOf({});
    auto message = ListAndWatchMessage::build(empty);
    CHECK(message->bytes().empty());
    CHECK(kubeletReads(message->bytes()).devices_size() == 0);
    auto emptied = ListAndWatchMessage::build(empty, vgpus(3), *ListAndWatchMessage::build(vgpus(3)));
    CHECK(emptied->bytes().empty());
}

TEST_CASE("hot-adding a vGPU to 1,500 encodes only the new one, and the bytes stay right")
{
    Resource before = vgpus(1500);
    auto first = ListAndWatchMessage::build(before);
    Resource after = before;
    after.devices.push_back(gpu("48000000-0000-4000-8000-00000000beef", -1));
    after = resourceOf(after.devices);

    auto next = ListAndWatchMessage::build(after, before, *first);
    CHECK(next->encodedDevices() == 1);
    requireEncodes(*next, after);

    SUBCASE("at the front and at the end too")
    {
        Resource front = after;
        front.devices.insert(front.devices.begin(), gpu("00000000-0000-4000-8000-000000000001", -1));
        Resource back = front;
        back.devices.push_back(gpu("ffffffff-0000-4000-8000-000000000001", -1));
        auto atFront = ListAndWatchMessage::build(front, after, *next);
        auto atBack = ListAndWatchMessage::build(back, front, *atFront);
        CHECK(atFront->encodedDevices() == 1);
        CHECK(atBack->encodedDevices() == 1);
        requireEncodes(*atFront, front);
        requireEncodes(*atBack, back);
    }
}

TEST_CASE("a health flip re-encodes that device; a removal re-encodes none")
{
    Resource before = resourceOf({gpu("0000:10:00.0", 0), gpu("0000:11:00.0", 1), gpu("0000:12:00.0", 0),
                                  gpu("0000:13:00.0", -1)});
    auto first = ListAndWatchMessage::build(before);

    Resource flipped = before;
    flipped.devices[1].healthy = false;
    flipped.devices[1].healthReason = "no /dev/vfio/11";
    auto unhealthy = ListAndWatchMessage::build(flipped, before, *first);
    CHECK(unhealthy->encodedDevices() == 1);
    requireEncodes(*unhealthy, flipped);

    Resource moved = flipped;
    moved.devices[2].numaNode = 1;
    auto renumbered = ListAndWatchMessage::build(moved, flipped, *unhealthy);
    CHECK(renumbered->encodedDevices() == 1);
    requireEncodes(*renumbered, moved);

    Resource removed = moved;
    removed.devices.erase(removed.devices.begin() + 2);
    auto withdrawn = ListAndWatchMessage::build(removed, moved, *renumbered);
    CHECK(withdrawn->encodedDevices() == 0);
    requireEncodes(*withdrawn, removed);
}

TEST_CASE("a change the kubelet cannot see (the health reason, the PCIe path) reuses the encoding")
{
    Resource before = resourceOf({gpu("0000:10:00.0", 0), gpu("0000:11:00.0", -1)});
    auto first = ListAndWatchMessage::build(before);
    Resource after = before;
    after.devices[0].pciePath = {"pci0000:10"};
    after.devices[1].numaNode = -5; // still "unknown"
    auto next = ListAndWatchMessage::build(after, before, *first);
    CHECK(next->encodedDevices() == 0);
    CHECK(next->bytes() == first->bytes());
}

TEST_CASE("a previous message that does not match the previous list is not trusted")
{
    Resource before = vgpus(10);
    auto unrelated = ListAndWatchMessage::build(vgpus(4));
    Resource after = vgpus(11);
    auto message = ListAndWatchMessage::build(after, before, *unrelated);
    CHECK(message->encodedDevices() == 11);
    requireEncodes(*message, after);
}

TEST_CASE("the byte buffer gRPC sends holds the same bytes and keeps them alive")
{
    Resource resource = vgpus(200);
    auto message = ListAndWatchMessage::build(resource);
    const std::string want = message->bytes();
    grpc::ByteBuffer buffer = toByteBuffer(std::move(message));
    message.reset();
    std::vector<grpc::Slice> slices;
    REQUIRE(buffer.Dump(&slices).ok());
    std::string sent;
    for (const grpc::Slice &slice : slices)
        sent.append(reinterpret_cast<const char *>(slice.begin()), slice.size());
    CHECK(sent == want);
    requireSameMessage(kubeletReads(sent), builtByProtobuf(resource));

    grpc::ByteBuffer none = toByteBuffer(ListAndWatchMessage::build(resourceOf({})));
    CHECK(none.Length() == 0);
}

TEST_CASE("a change applied to the previous message splices in the devices it names, and nothing else")
{
    Resource before = vgpus(1500);
    auto first = ListAndWatchMessage::build(before);

    // One device added in the middle, one removed near the front, one turned unhealthy at the end.
    AdvertisedDevice added = gpu("48000000-0000-4000-8000-00000000beef", -1);
    AdvertisedDevice flipped = before.devices.back();
    flipped.healthy = false;
    ResourceDelta delta{.kind = DeviceKind::Vgpu, .set = {added, flipped}, .removed = {before.devices[3].id}};
    std::sort(delta.set.begin(), delta.set.end(), [](auto &a, auto &b) { return a.id < b.id; });

    Resource after = before;
    after.devices.erase(after.devices.begin() + 3);
    after.devices.back() = flipped;
    after.devices.push_back(added);
    after = resourceOf(after.devices);

    auto next = ListAndWatchMessage::apply(*first, delta);
    CHECK(next->encodedDevices() == 2);
    requireEncodes(*next, after);

    // Removing what is not there and setting a device to what it was change no byte.
    auto same = ListAndWatchMessage::apply(
        *next, ResourceDelta{.kind = DeviceKind::Vgpu, .set = {added}, .removed = {"00000000-0000-4000-8000-0000000000ff"}});
    CHECK(same->bytes() == next->bytes());

    // Everything removed: the empty message.
    ResourceDelta all{.kind = DeviceKind::Vgpu};
    for (const AdvertisedDevice &d : after.devices)
        all.removed.push_back(d.id);
    CHECK(ListAndWatchMessage::apply(*next, all)->bytes().empty());
}
