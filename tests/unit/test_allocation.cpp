#include "allocation/allocation.h"
#include "temp_tree.h"

#include <doctest/doctest.h>

#include <algorithm>

using namespace kvgpu;
using kvgpu::test::FakePci;
using kvgpu::test::TempTree;

namespace {

Resource t4Resource(std::vector<std::string> ids)
{
    Resource r{"nvidia.com/TU104GL_TESLA_T4", DeviceKind::Passthrough, {}};
    for (auto &id : ids)
        r.devices.push_back(AdvertisedDevice{.id = id});
    std::sort(r.devices.begin(), r.devices.end(), [](auto &a, auto &b) { return a.id < b.id; });
    return r;
}

struct Node {
    TempTree sys, dev;
    Node()
    {
        addPci(sys, FakePci{.address = "0000:65:00.0", .group = 12});
        addPci(sys, FakePci{.address = "0000:65:00.1", .classCode = 0x040300, .group = 12});
        addPci(sys, FakePci{.address = "0000:66:00.0", .group = 13});
        dev.write("vfio/vfio", "");
        dev.write("vfio/12", "");
        dev.write("vfio/13", "");
    }
    Result<ContainerAllocation, AllocationError> allocate(const Resource &r, std::vector<std::string> ids)
    {
        return allocateContainer(r, ids, SysfsTree(sys.root()), DevTree(dev.root()));
    }
};

std::vector<std::string> containerPaths(const ContainerAllocation &a)
{
    std::vector<std::string> out;
    for (const auto &d : a.devices)
        out.push_back(d.containerPath);
    return out;
}

} // namespace

TEST_CASE("passthrough Allocate: container node, each group once, env var in request order")
{
    Node node;
    auto result = node.allocate(t4Resource({"0000:65:00.0", "0000:66:00.0"}), {"0000:66:00.0", "0000:65:00.0"});
    REQUIRE(result);
    const ContainerAllocation &a = *result;
    CHECK(containerPaths(a) == std::vector<std::string>{"/dev/vfio/vfio", "/dev/vfio/13", "/dev/vfio/12"});
    CHECK(a.devices[1].hostPath == "/dev/vfio/13"); // on the host, whatever --dev-root the plugin reads
    CHECK(a.devices[1].permissions == "mrw");
    CHECK(a.envs.size() == 1);
    CHECK(a.envs.at("PCI_RESOURCE_NVIDIA_COM_TU104GL_TESLA_T4") == "0000:66:00.0,0000:65:00.0");
}

TEST_CASE("Allocate is idempotent")
{
    Node node;
    Resource r = t4Resource({"0000:65:00.0"});
    auto first = node.allocate(r, {"0000:65:00.0"});
    auto second = node.allocate(r, {"0000:65:00.0"});
    REQUIRE(first);
    REQUIRE(second);
    CHECK(first->devices == second->devices);
    CHECK(first->envs == second->envs);
}

TEST_CASE("with iommufd, /dev/iommu and each device's cdev are added")
{
    Node node;
    node.dev.write("iommu", "");
    node.sys.mkdir("devices/pci0000:64/0000:64:00.0/0000:65:00.0/vfio-dev/vfio7");
    auto result = node.allocate(t4Resource({"0000:65:00.0", "0000:66:00.0"}), {"0000:65:00.0", "0000:66:00.0"});
    REQUIRE(result);
    CHECK(containerPaths(*result) ==
          std::vector<std::string>{"/dev/vfio/vfio", "/dev/vfio/12", "/dev/vfio/13", "/dev/iommu", "/dev/vfio/devices/vfio7"});
    CHECK(result->devices[4].hostPath == "/dev/vfio/devices/vfio7");
}

TEST_CASE("unknown ids are INVALID_ARGUMENT naming the id and the resource")
{
    Node node;
    auto result = node.allocate(t4Resource({"0000:65:00.0"}), {"0000:65:00.0", "0000:99:00.0"});
    REQUIRE_FALSE(result);
    CHECK(result.failure().code == AllocationError::Code::InvalidArgument);
    CHECK(result.error() == "unknown device id 0000:99:00.0 for resource nvidia.com/TU104GL_TESLA_T4");
    CHECK(node.allocate(t4Resource({}), {}).failure().code == AllocationError::Code::InvalidArgument);
}

TEST_CASE("a device rebound since discovery is FAILED_PRECONDITION with the reason")
{
    Node node;
    node.sys.link("devices/pci0000:64/0000:64:00.0/0000:66:00.0/driver", "../../../../bus/pci/drivers/nvidia");
    auto result = node.allocate(t4Resource({"0000:65:00.0", "0000:66:00.0"}), {"0000:66:00.0"});
    REQUIRE_FALSE(result);
    CHECK(result.failure().code == AllocationError::Code::FailedPrecondition);
    CHECK(result.error() == "device 0000:66:00.0 is not bound to vfio-pci (driver: nvidia)");

    node.sys.remove("bus/pci/devices/0000:65:00.0");
    auto gone = node.allocate(t4Resource({"0000:65:00.0"}), {"0000:65:00.0"});
    CHECK(gone.error() == "device 0000:65:00.0 is no longer present on this node");
}

TEST_CASE("vGPU Allocate hands out only the vGPU's own group node and the MDEV env var")
{
    Node node;
    FakePci parent{.address = "0000:b1:00.0", .driver = "nvidia", .group = 40, .parents = "pci0000:b0"};
    addPci(node.sys, parent);
    addMdev(node.sys, parent, "aa618089-8b16-4d01-a136-25a0f3c73123", "nvidia-222", std::string("GRID T4-1Q"), 101);
    addMdev(node.sys, parent, "bb618089-8b16-4d01-a136-25a0f3c73123", "nvidia-223", std::string("GRID T4-2Q"), 102);
    node.dev.write("vfio/101", "");
    node.dev.write("vfio/102", "");
    Resource r{"nvidia.com/GRID_T4-1Q", DeviceKind::Vgpu,
               {AdvertisedDevice{.id = "aa618089-8b16-4d01-a136-25a0f3c73123", .vgpuType = "nvidia-222"},
                AdvertisedDevice{.id = "bb618089-8b16-4d01-a136-25a0f3c73123", .vgpuType = "nvidia-222"}}};

    auto result = node.allocate(r, {"aa618089-8b16-4d01-a136-25a0f3c73123"});
    REQUIRE(result);
    CHECK(containerPaths(*result) == std::vector<std::string>{"/dev/vfio/vfio", "/dev/vfio/101"});
    CHECK(result->envs.at("MDEV_PCI_RESOURCE_NVIDIA_COM_GRID_T4-1Q") == "aa618089-8b16-4d01-a136-25a0f3c73123");

    // A UUID whose type is not this resource's any more.
    auto wrongType = node.allocate(r, {"bb618089-8b16-4d01-a136-25a0f3c73123"});
    CHECK(wrongType.failure().code == AllocationError::Code::FailedPrecondition);
    CHECK(wrongType.error().find("now of type nvidia-223 (GRID T4-2Q), not nvidia-222") != std::string::npos);

    node.sys.remove("bus/mdev/devices/aa618089-8b16-4d01-a136-25a0f3c73123");
    auto gone = node.allocate(r, {"aa618089-8b16-4d01-a136-25a0f3c73123"});
    CHECK(gone.error() == "vGPU aa618089-8b16-4d01-a136-25a0f3c73123 no longer exists on this node");
}

TEST_CASE("the same id twice in one container is INVALID_ARGUMENT naming the id")
{
    // virt-launcher counts the ids in the env var against what the VM asked
    // for: a repeated id would make the VM fail to start.
    Node node;
    Resource r = t4Resource({"0000:65:00.0", "0000:66:00.0"});
    auto result = node.allocate(r, {"0000:65:00.0", "0000:66:00.0", "0000:65:00.0"});
    REQUIRE_FALSE(result);
    CHECK(result.failure().code == AllocationError::Code::InvalidArgument);
    CHECK(result.error() == "device id 0000:65:00.0 is requested twice for resource nvidia.com/TU104GL_TESLA_T4");
}

TEST_CASE("a device whose /dev/vfio group node is gone is FAILED_PRECONDITION naming the node and the device")
{
    Node node;
    Resource r = t4Resource({"0000:65:00.0", "0000:66:00.0"});
    node.dev.remove("vfio/13");
    auto result = node.allocate(r, {"0000:65:00.0", "0000:66:00.0"});
    REQUIRE_FALSE(result);
    CHECK(result.failure().code == AllocationError::Code::FailedPrecondition);
    CHECK(result.error().rfind(node.dev.root() + "/vfio/13 of device 0000:66:00.0 does not exist", 0) == 0);

    // The other device, whose node is there, is still allocated.
    CHECK(node.allocate(r, {"0000:65:00.0"}));
}

TEST_CASE("a vGPU whose /dev/vfio group node is gone is refused too")
{
    Node node;
    FakePci parent{.address = "0000:b1:00.0", .driver = "nvidia", .group = 40, .parents = "pci0000:b0"};
    addPci(node.sys, parent);
    addMdev(node.sys, parent, "aa618089-8b16-4d01-a136-25a0f3c73123", "nvidia-222", std::string("GRID T4-1Q"), 101);
    Resource r{"nvidia.com/GRID_T4-1Q", DeviceKind::Vgpu,
               {AdvertisedDevice{.id = "aa618089-8b16-4d01-a136-25a0f3c73123", .vgpuType = "nvidia-222"}}};
    auto result = node.allocate(r, {"aa618089-8b16-4d01-a136-25a0f3c73123"});
    REQUIRE_FALSE(result);
    CHECK(result.failure().code == AllocationError::Code::FailedPrecondition);
    CHECK(result.error().find("/vfio/101 of device aa618089-8b16-4d01-a136-25a0f3c73123 does not exist") !=
          std::string::npos);
}

TEST_CASE("without the /dev/vfio/vfio container node nothing is allocated, and the reason says why")
{
    Node node;
    node.dev.remove("vfio/vfio");
    auto result = node.allocate(t4Resource({"0000:65:00.0"}), {"0000:65:00.0"});
    REQUIRE_FALSE(result);
    CHECK(result.failure().code == AllocationError::Code::FailedPrecondition);
    CHECK(result.error().rfind(node.dev.root() + "/vfio/vfio does not exist: the vfio module is not loaded", 0) == 0);
}
