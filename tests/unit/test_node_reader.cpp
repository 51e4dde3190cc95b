#include "sysfs/node_reader.h"
#include "temp_tree.h"

#include <doctest/doctest.h>

using namespace kvgpu;
using kvgpu::test::FakePci;
using kvgpu::test::TempTree;

TEST_CASE("a vfio-bound GPU is read with its ids, driver, group, NUMA node and PCIe path")
{
    TempTree sys;
    addPci(sys, FakePci{.address = "0000:65:00.0", .group = 12, .numa = 1});
    sys.mkdir("devices/pci0000:64/0000:64:00.0/0000:65:00.0/vfio-dev/vfio3");

    PciObservation seen = observePciFunction(SysfsTree(sys.root()), "0000:65:00.0");
    REQUIRE(seen.state == PciObservation::State::Present);
    const PciFunction &f = seen.function;
    CHECK(f.vendor == 0x10de);
    CHECK(f.device == 0x1eb8);
    CHECK(f.classCode == 0x030200);
    CHECK(f.driver == "vfio-pci");
    CHECK(f.iommuGroup == 12);
    CHECK(f.numaNode == 1);
    CHECK(f.pciePath == std::vector<std::string>{"pci0000:64", "0000:64:00.0"});
    CHECK(f.vfioDevice == "vfio3");
}

TEST_CASE("functions that are gone, foreign or unbound read as such")
{
    TempTree sys;
    addPci(sys, FakePci{.address = "0000:00:1f.3", .vendor = 0x8086, .device = 0xa348});
    addPci(sys, FakePci{.address = "0000:66:00.0", .driver = "", .numa = std::nullopt});
    SysfsTree tree(sys.root());

    CHECK(observePciFunction(tree, "0000:99:00.0").state == PciObservation::State::Absent);
    CHECK(observePciFunction(tree, "0000:00:1f.3").state == PciObservation::State::NotNvidia);
    PciObservation unbound = observePciFunction(tree, "0000:66:00.0");
    REQUIRE(unbound.state == PciObservation::State::Present);
    CHECK(unbound.function.driver.empty());
    CHECK(unbound.function.numaNode == -1); // no numa_node file: a kernel without NUMA
}

TEST_CASE("a malformed or missing required file makes the function unreadable, naming the file")
{
    TempTree sys;
    FakePci gpu{.address = "0000:65:00.0"};
    addPci(sys, gpu);
    SysfsTree tree(sys.root());
    std::string dir = devicePath(gpu);

    SUBCASE("garbage in device")
    {
        sys.write(dir + "/device", "not-an-id\n");
        PciObservation seen = observePciFunction(tree, gpu.address);
        CHECK(seen.state == PciObservation::State::Unreadable);
        CHECK(seen.problem.find("bus/pci/devices/0000:65:00.0/device") != std::string::npos);
        CHECK(seen.problem.find("malformed PCI id") != std::string::npos);
    }
    SUBCASE("class missing")
    {
        sys.remove(dir + "/class");
        PciObservation seen = observePciFunction(tree, gpu.address);
        CHECK(seen.state == PciObservation::State::Unreadable);
        CHECK(seen.problem.find("class") != std::string::npos);
    }
    SUBCASE("vendor unreadable")
    {
        sys.remove(dir + "/vendor");
        CHECK(observePciFunction(tree, gpu.address).state == PciObservation::State::Unreadable);
    }
    SUBCASE("malformed numa_node")
    {
        sys.write(dir + "/numa_node", "-7\n");
        PciObservation seen = observePciFunction(tree, gpu.address);
        CHECK(seen.state == PciObservation::State::Unreadable);
        CHECK(seen.problem.find("numa_node") != std::string::npos);
    }
    SUBCASE("missing iommu_group is kept as a problem of the function")
    {
        sys.remove(dir + "/iommu_group");
        PciObservation seen = observePciFunction(tree, gpu.address);
        REQUIRE(seen.state == PciObservation::State::Present);
        CHECK(seen.function.iommuGroup == -1);
        CHECK(seen.function.iommuGroupProblem.find("iommu_group") != std::string::npos);
    }
    SUBCASE("malformed iommu_group link")
    {
        sys.link(dir + "/iommu_group", "../../../../kernel/iommu_groups/twelve");
        PciObservation seen = observePciFunction(tree, gpu.address);
        REQUIRE(seen.state == PciObservation::State::Present);
        CHECK(seen.function.iommuGroup == -1);
        CHECK(seen.function.iommuGroupProblem.find("malformed iommu_group link") != std::string::npos);
    }
}

TEST_CASE("an mdev is read with its parent, type, name, group and the parent's NUMA node")
{
    TempTree sys;
    FakePci parent{.address = "0000:b1:00.0", .driver = "nvidia", .group = 40, .numa = 1};
    addPci(sys, parent);
    addMdev(sys, parent, "aa618089-8b16-4d01-a136-25a0f3c73123", "nvidia-222", std::string("GRID T4-1Q"), 101);
    SysfsTree tree(sys.root());

    MdevObservation seen = observeMdev(tree, "aa618089-8b16-4d01-a136-25a0f3c73123");
    REQUIRE(seen.state == MdevObservation::State::Present);
    CHECK(seen.mdev.parentAddress == "0000:b1:00.0");
    CHECK(seen.mdev.parentVendor == 0x10de);
    CHECK(seen.mdev.typeId == "nvidia-222");
    CHECK(seen.mdev.typeName == "GRID T4-1Q");
    CHECK(seen.mdev.iommuGroup == 101);
    CHECK(seen.mdev.numaNode == 1);
    CHECK(seen.mdev.driver == "nvidia-vgpu-vfio");

    PciObservation parentSeen = observePciFunction(tree, "0000:b1:00.0");
    CHECK(parentSeen.function.mdevTypes == std::vector<std::string>{"nvidia-222"});

    CHECK(observeMdev(tree, "00000000-0000-0000-0000-000000000000").state == MdevObservation::State::Absent);
}

TEST_CASE("an mdev without a group or type is unreadable; without a name file it keeps the type id")
{
    TempTree sys;
    FakePci parent{.address = "0000:b1:00.0", .driver = "nvidia"};
    addPci(sys, parent);
    addMdev(sys, parent, "11111111-1111-1111-1111-111111111111", "nvidia-223", std::nullopt, 102);
    addMdev(sys, parent, "22222222-2222-2222-2222-222222222222", "nvidia-222", std::string("GRID T4-1Q"), 103);
    SysfsTree tree(sys.root());

    MdevObservation nameless = observeMdev(tree, "11111111-1111-1111-1111-111111111111");
    REQUIRE(nameless.state == MdevObservation::State::Present);
    CHECK(nameless.mdev.typeName.empty());

    // Added but not bound yet (the driver's probe creates the group): not ready, not broken.
    sys.remove(devicePath(parent) + "/22222222-2222-2222-2222-222222222222/driver");
    sys.remove(devicePath(parent) + "/22222222-2222-2222-2222-222222222222/iommu_group");
    MdevObservation unbound = observeMdev(tree, "22222222-2222-2222-2222-222222222222");
    REQUIRE(unbound.state == MdevObservation::State::Present);
    CHECK(unbound.mdev.driver.empty());
    CHECK(unbound.mdev.iommuGroup == -1);

    sys.link(devicePath(parent) + "/22222222-2222-2222-2222-222222222222/driver",
             "../../../../../bus/mdev/drivers/nvidia-vgpu-vfio");
    MdevObservation noGroup = observeMdev(tree, "22222222-2222-2222-2222-222222222222");
    CHECK(noGroup.state == MdevObservation::State::Unreadable);
    CHECK(noGroup.problem.find("iommu_group") != std::string::npos);
}

TEST_CASE("a whole-node scan keeps going past a broken device")
{
    TempTree sys, dev;
    addPci(sys, FakePci{.address = "0000:65:00.0", .group = 12});
    FakePci broken{.address = "0000:66:00.0", .group = 13};
    addPci(sys, broken);
    sys.write(devicePath(broken) + "/class", "\n");
    addPci(sys, FakePci{.address = "0000:00:1f.3", .vendor = 0x8086});
    dev.write("vfio/vfio", "");
    dev.write("vfio/12", "");
    dev.mkdir("vfio/devices");

    NodeObservation node = scanNode(SysfsTree(sys.root()), DevTree(dev.root()));
    CHECK(node.functions.size() == 1);
    CHECK(node.functions.contains("0000:65:00.0"));
    CHECK(node.unreadableFunctions.contains("0000:66:00.0"));
    CHECK(node.vfioGroupNodes == std::set<int>{12});
    CHECK_FALSE(node.iommufd);
    dev.write("iommu", "");
    CHECK(scanNode(SysfsTree(sys.root()), DevTree(dev.root())).iommufd);
}

TEST_CASE("applying an observation replaces what was known of that device")
{
    NodeObservation node;
    PciObservation present{PciObservation::State::Present, PciFunction{.address = "0000:65:00.0"}, {}};
    node.apply(present, "0000:65:00.0");
    CHECK(node.functions.size() == 1);
    node.apply(PciObservation{PciObservation::State::Unreadable, {}, "cannot read"}, "0000:65:00.0");
    CHECK(node.functions.empty());
    CHECK(node.unreadableFunctions.at("0000:65:00.0").problem == "cannot read");
    node.apply(PciObservation{}, "0000:65:00.0");
    CHECK(node.unreadableFunctions.empty());
}

TEST_CASE("an mdev event naming a PCI address leaves that function's problem alone")
{
    NodeObservation node;
    node.apply(PciObservation{PciObservation::State::Unreadable, PciFunction{.address = "0000:66:00.0"},
                              "cannot read class"},
               "0000:66:00.0");
    node.apply(MdevObservation{}, "0000:66:00.0"); // no mdev of that name
    REQUIRE(node.problemOf("0000:66:00.0") != nullptr);
    CHECK(*node.problemOf("0000:66:00.0") == "cannot read class");

    node.apply(MdevObservation{MdevObservation::State::Unreadable, {}, "cannot read mdev_type"}, "bad-uuid");
    REQUIRE(node.problemOf("bad-uuid") != nullptr);
    CHECK(*node.problemOf("bad-uuid") == "cannot read mdev_type");
    CHECK(node.unreadableFunctions.size() == 1);
    node.apply(MdevObservation{}, "bad-uuid");
    CHECK(node.problemOf("bad-uuid") == nullptr);
}
