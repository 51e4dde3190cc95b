// Allocate's additions for SR-IOV vGPU VFs and Grace EGM: the VF re-read at
// allocation time, and /dev/egmN for requests that hold a whole region.
#include "allocation/allocation.h"
#include "temp_tree.h"

#include <doctest/doctest.h>

using namespace kvgpu;
using kvgpu::test::FakePci;
using kvgpu::test::TempTree;

namespace {

// A VF of 0000:41:00.0 in sysfs shape, on nvidia with `profile`.
void addVf(TempTree &sys, const std::string &address, const std::string &profile, const std::string &driver = "nvidia")
{
    FakePci vf{.address = address, .device = 0x2335, .driver = driver, .group = 71};
    addPci(sys, vf);
    sys.link(devicePath(vf) + "/physfn", "../0000:41:00.0");
    sys.write(devicePath(vf) + "/nvidia/current_vgpu_type", profile + "\n");
}

Resource profileResource()
{
    return Resource{.name = "nvidia.com/NVIDIA_H200X-1-18C",
                    .kind = DeviceKind::SriovVgpu,
                    .devices = {AdvertisedDevice{.id = "0000:41:00.4", .iommuGroup = 71, .vgpuTypeId = 1414}}};
}

std::string refusal(TempTree &sys)
{
    Result<AllocatableDevice, AllocationError> got =
        readAllocatableDevice(SysfsTree(sys.root()), profileResource(), "0000:41:00.4");
    REQUIRE_FALSE(got.ok());
    CHECK(got.failure().code == AllocationError::Code::FailedPrecondition);
    return got.failure().message;
}

} // namespace

TEST_CASE("a VF still carrying its profile on nvidia is allocatable")
{
    TempTree sys;
    addVf(sys, "0000:41:00.4", "1414");
    Result<AllocatableDevice, AllocationError> got =
        readAllocatableDevice(SysfsTree(sys.root()), profileResource(), "0000:41:00.4");
    REQUIRE(got.ok());
    CHECK(got->iommuGroup == 71);
}

TEST_CASE("a VF whose profile changed, was cleared, or that left nvidia is refused with the reason")
{
    TempTree changed, cleared, moved;
    addVf(changed, "0000:41:00.4", "1428");
    addVf(cleared, "0000:41:00.4", "0");
    addVf(moved, "0000:41:00.4", "1414", "vfio-pci");
    CHECK(refusal(changed) ==
          "VF 0000:41:00.4 now carries vGPU type 1428, not type 1414 of nvidia.com/NVIDIA_H200X-1-18C");
    CHECK(refusal(cleared) == "VF 0000:41:00.4 no longer carries a vGPU profile (current_vgpu_type 0), "
                              "nvidia.com/NVIDIA_H200X-1-18C expected");
    CHECK(refusal(moved) == "VF 0000:41:00.4 is not bound to nvidia (driver: vfio-pci)");
}

TEST_CASE("EGM nodes are added for every region held whole, once, and missing nodes are reported")
{
    std::vector<EgmRegion> regions{
        {"egm4", {"0009:01:00.0", "0009:02:00.0"}, true, ""},
        {"egm5", {"0019:01:00.0"}, false, "no /dev/egm5"},
    };
    ContainerAllocation allocation;
    allocation.devices.push_back(DeviceNode{"/dev/vfio/vfio", "/dev/vfio/vfio", "mrw"});
    std::vector<std::string> missing =
        addEgmNodes(allocation, regions, {"0009:02:00.0", "0009:01:00.0", "0019:01:00.0"});
    CHECK(missing == std::vector<std::string>{"egm5"});
    REQUIRE(allocation.devices.size() == 2);
    CHECK(allocation.devices[1] == DeviceNode{"/dev/egm4", "/dev/egm4", "mrw"});

    ContainerAllocation some;
    CHECK(addEgmNodes(some, regions, {"0009:01:00.0"}).empty());
    CHECK(some.devices.empty());
}
