// The DRA side's view of the device index: only DRA devices, by their DRA
// names, kept from the index's deltas; a device that moves to the device
// plugin API leaves it as a removed device does, and the device plugin side's
// view is the mirror image (restrictTo).
#include "dra/dra_pool.h"

#include <doctest/doctest.h>

using namespace kvgpu;
using namespace kvgpu::dra;

namespace {

AdvertisedDevice pci(std::string id, DeviceApi api, bool healthy = true)
{
    return AdvertisedDevice{.id = std::move(id), .healthy = healthy, .iommuGroup = 12, .api = api};
}

IndexChanges changes(std::string resource, DeviceKind kind, std::vector<AdvertisedDevice> set,
                     std::vector<std::string> removed = {})
{
    IndexChanges out;
    out.resources[resource] = ResourceDelta{.kind = kind, .set = std::move(set), .removed = std::move(removed)};
    return out;
}

} // namespace

TEST_CASE("the pool holds only DRA devices, by their DRA names")
{
    DraPool pool;
    CHECK(pool.apply(changes("nvidia.com/A100", DeviceKind::Passthrough,
                             {pci("0000:65:00.0", DeviceApi::Dra), pci("0000:66:00.0", DeviceApi::DevicePlugin)})));
    REQUIRE(pool.devices().size() == 1);
    const DraDevice &device = pool.devices().at("pci-0000-65-00-0");
    CHECK(device.resource == "nvidia.com/A100");
    CHECK(device.kind == DeviceKind::Passthrough);
    CHECK(device.device.id == "0000:65:00.0");
    // The same again changes nothing; a health change does.
    CHECK_FALSE(pool.apply(changes("nvidia.com/A100", DeviceKind::Passthrough, {pci("0000:65:00.0", DeviceApi::Dra)})));
    CHECK(pool.apply(
        changes("nvidia.com/A100", DeviceKind::Passthrough, {pci("0000:65:00.0", DeviceApi::Dra, false)})));
    CHECK_FALSE(pool.devices().at("pci-0000-65-00-0").device.healthy);
    // Changes of the device plugin API's devices are not the pool's.
    CHECK_FALSE(pool.apply(changes("nvidia.com/A100", DeviceKind::Passthrough, {}, {"0000:66:00.0"})));
}

TEST_CASE("a device leaves the pool when it is removed or moves to the device plugin API")
{
    DraPool pool;
    const std::string uuid = "aa618089-8b16-4d01-a136-25a0f3c73123";
    pool.apply(changes("nvidia.com/L4-1Q", DeviceKind::Vgpu, {pci(uuid, DeviceApi::Dra)}));
    pool.apply(changes("nvidia.com/A100", DeviceKind::Passthrough, {pci("0000:65:00.0", DeviceApi::Dra)}));
    CHECK(pool.devices().contains("mdev-" + uuid));
    CHECK(pool.apply(changes("nvidia.com/L4-1Q", DeviceKind::Vgpu, {}, {uuid})));
    CHECK_FALSE(pool.devices().contains("mdev-" + uuid));
    CHECK(pool.apply(changes("nvidia.com/A100", DeviceKind::Passthrough, {pci("0000:65:00.0", DeviceApi::DevicePlugin)})));
    CHECK(pool.devices().empty());
}

TEST_CASE("a device renamed in one publish stays in the pool under its new resource")
{
    DraPool pool;
    pool.apply(changes("nvidia.com/A100", DeviceKind::Passthrough, {pci("0000:65:00.0", DeviceApi::Dra)}));
    // The index reports it removed from the old resource and set in the new
    // one; the map is walked by name, so the new one may come first.
    IndexChanges renamed;
    renamed.resources["nvidia.com/A100"] = ResourceDelta{.kind = DeviceKind::Passthrough, .removed = {"0000:65:00.0"}};
    renamed.resources["nvidia.com/A"] =
        ResourceDelta{.kind = DeviceKind::Passthrough, .set = {pci("0000:65:00.0", DeviceApi::Dra)}};
    CHECK(pool.apply(renamed));
    REQUIRE(pool.devices().size() == 1);
    CHECK(pool.devices().at("pci-0000-65-00-0").resource == "nvidia.com/A");
}

TEST_CASE("restrictTo: the device plugin side sees a device that moved to DRA as removed")
{
    ResourceDelta delta{.kind = DeviceKind::Passthrough,
                        .set = {pci("0000:65:00.0", DeviceApi::Dra), pci("0000:66:00.0", DeviceApi::DevicePlugin)},
                        .removed = {"0000:70:00.0"}};
    ResourceDelta plugin = restrictTo(delta, DeviceApi::DevicePlugin);
    REQUIRE(plugin.set.size() == 1);
    CHECK(plugin.set[0].id == "0000:66:00.0");
    CHECK(plugin.removed == std::vector<std::string>{"0000:65:00.0", "0000:70:00.0"});
    ResourceDelta dra = restrictTo(delta, DeviceApi::Dra);
    REQUIRE(dra.set.size() == 1);
    CHECK(dra.set[0].id == "0000:65:00.0");
    CHECK(dra.removed == std::vector<std::string>{"0000:66:00.0", "0000:70:00.0"});
}
