#include "index/device_index.h"
#include "sysfs/pci_class.h"
#include "fake_names.h"

#include <doctest/doctest.h>

using namespace kvgpu;
using kvgpu::test::nvidiaNames;

namespace {

PciFunction gpu(std::string address, std::uint16_t device, int group, int numa = 0,
                std::string driver = "vfio-pci", std::uint32_t classCode = 0x030200)
{
    return PciFunction{.address = std::move(address), .vendor = 0x10de, .device = device, .classCode = classCode,
                       .driver = std::move(driver), .iommuGroup = group, .numaNode = numa,
                       .pciePath = {"pci0000:64", "0000:64:00.0"}};
}

Mdev vgpu(std::string uuid, std::string typeId, std::string typeName, int group, std::string parent = "0000:b1:00.0")
{
    return Mdev{.uuid = std::move(uuid), .parentAddress = std::move(parent), .parentVendor = 0x10de,
                .typeId = std::move(typeId), .typeName = std::move(typeName), .iommuGroup = group, .numaNode = 1,
                .pciePath = {"pci0000:b0", "0000:b1:00.0"}, .driver = "nvidia-vgpu-vfio"};
}

const DeviceRow &row(const Inventory &inventory, const std::string &id)
{
    for (const DeviceRow &r : inventory.rows)
        if (r.id == id)
            return r;
    FAIL("no row for " << id);
    throw 0;
}

std::vector<std::string> ids(const Resource &resource)
{
    std::vector<std::string> out;
    for (const auto &d : resource.devices)
        out.push_back(d.id);
    return out;
}

} // namespace

TEST_CASE("passthrough GPUs are grouped by sanitised model name; colliding ids share one resource")
{
    NodeObservation node;
    node.functions["0000:65:00.0"] = gpu("0000:65:00.0", 0x20b1, 12);
    node.functions["0000:66:00.0"] = gpu("0000:66:00.0", 0x20f1, 13, 1);
    node.functions["0000:67:00.0"] = gpu("0000:67:00.0", 0x1eb8, 14, -1);
    node.vfioGroupNodes = {12, 13, 14};
    auto names = nvidiaNames();

    Inventory inventory = deriveInventory(node, names);
    REQUIRE(inventory.resources.size() == 2);
    const Resource &a100 = inventory.resources.at("nvidia.com/GA100_A100_PCIE_40GB");
    CHECK(a100.kind == DeviceKind::Passthrough);
    CHECK(ids(a100) == std::vector<std::string>{"0000:65:00.0", "0000:66:00.0"});
    const Resource &t4 = inventory.resources.at("nvidia.com/TU104GL_TESLA_T4");
    CHECK(t4.devices.at(0).numaNode == -1);
    CHECK(t4.devices.at(0).healthy);
}

TEST_CASE("companion functions travel with their group and are not resources of their own")
{
    NodeObservation node;
    node.functions["0000:65:00.0"] = gpu("0000:65:00.0", 0x1eb8, 12);
    node.functions["0000:65:00.1"] = gpu("0000:65:00.1", 0x10f8, 12, 0, "vfio-pci", 0x040300);
    node.functions["0000:65:00.2"] = gpu("0000:65:00.2", 0x1ad8, 12, 0, "vfio-pci", 0x0c0330);
    node.functions["0000:65:00.3"] = gpu("0000:65:00.3", 0x1ad9, 12, 0, "vfio-pci", 0x0c8000);
    node.vfioGroupNodes = {12};
    auto names = nvidiaNames();

    Inventory inventory = deriveInventory(node, names);
    CHECK(inventory.resources.size() == 1);
    CHECK(row(inventory, "0000:65:00.1").reason == "audio function: travels with IOMMU group 12");
    CHECK(row(inventory, "0000:65:00.2").reason == "USB function: travels with IOMMU group 12");
    CHECK(row(inventory, "0000:65:00.3").reason == "serial bus function: travels with IOMMU group 12");
    CHECK(row(inventory, "0000:65:00.1").resource.empty());
}

TEST_CASE("NVSwitches are advertised; GPUs on other drivers are explained, not advertised")
{
    NodeObservation node;
    node.functions["0000:05:00.0"] = gpu("0000:05:00.0", 0x22a3, 5, 0, "vfio-pci", 0x068000);
    node.functions["0000:65:00.0"] = gpu("0000:65:00.0", 0x1eb8, 12, 0, "nvidia");
    node.functions["0000:66:00.0"] = gpu("0000:66:00.0", 0x1eb8, 13, 0, "");
    PciFunction parent = gpu("0000:b1:00.0", 0x1eb8, 40, 1, "nvidia");
    parent.mdevTypes = {"nvidia-222", "nvidia-223"};
    node.functions["0000:b1:00.0"] = parent;
    node.vfioGroupNodes = {5};
    auto names = nvidiaNames();

    Inventory inventory = deriveInventory(node, names);
    CHECK(inventory.resources.contains("nvidia.com/GH100_H100_NVSWITCH"));
    CHECK(row(inventory, "0000:65:00.0").reason == "bound to nvidia, not vfio-pci");
    CHECK(row(inventory, "0000:66:00.0").reason == "not bound to any driver");
    CHECK(row(inventory, "0000:b1:00.0").reason == "bound to nvidia, not vfio-pci (vGPU parent: 2 types)");
}

TEST_CASE("nvgrace_gpu_vfio_pci counts as a VFIO driver")
{
    NodeObservation node;
    node.functions["0009:01:00.0"] = gpu("0009:01:00.0", 0x2342, 7, 0, "nvgrace_gpu_vfio_pci");
    node.vfioGroupNodes = {7};
    auto names = nvidiaNames();
    Inventory inventory = deriveInventory(node, names);
    CHECK(inventory.resources.contains("nvidia.com/2342")); // not in our fake database
}

TEST_CASE("health follows the group node; a missing iommu_group is a reason, not a crash")
{
    NodeObservation node;
    node.functions["0000:65:00.0"] = gpu("0000:65:00.0", 0x1eb8, 12);
    PciFunction noGroup = gpu("0000:66:00.0", 0x1eb8, -1);
    noGroup.iommuGroupProblem = "cannot read link /sys/bus/pci/devices/0000:66:00.0/iommu_group";
    node.functions["0000:66:00.0"] = noGroup;
    auto names = nvidiaNames();

    Inventory inventory = deriveInventory(node, names);
    const Resource &t4 = inventory.resources.at("nvidia.com/TU104GL_TESLA_T4");
    REQUIRE(t4.devices.size() == 1);
    CHECK_FALSE(t4.devices[0].healthy);
    CHECK(t4.devices[0].healthReason == "no /dev/vfio/12");
    CHECK(row(inventory, "0000:65:00.0").health == "Unhealthy");
    CHECK(row(inventory, "0000:66:00.0").reason.rfind("cannot read iommu_group", 0) == 0);
}

TEST_CASE("vGPUs are grouped by type name; a nameless type uses its id; foreign parents are skipped")
{
    NodeObservation node;
    node.mdevs["a"] = vgpu("a", "nvidia-222", "GRID T4-1Q", 101);
    node.mdevs["b"] = vgpu("b", "nvidia-222", "GRID T4-1Q", 102);
    node.mdevs["c"] = vgpu("c", "nvidia-223", "GRID T4-2Q", 103);
    node.mdevs["d"] = vgpu("d", "nvidia-224", "", 104);
    Mdev foreign = vgpu("e", "i915-GVTg_V5_4", "", 105, "0000:00:02.0");
    foreign.parentVendor = 0x8086;
    node.mdevs["e"] = foreign;
    Mdev unbound = vgpu("f", "nvidia-222", "GRID T4-1Q", -1);
    unbound.driver.clear();
    node.mdevs["f"] = unbound;
    node.vfioGroupNodes = {101, 102, 103, 104, 105};
    auto names = nvidiaNames();

    Inventory inventory = deriveInventory(node, names);
    CHECK(ids(inventory.resources.at("nvidia.com/GRID_T4-1Q")) == std::vector<std::string>{"a", "b"});
    CHECK(inventory.resources.at("nvidia.com/GRID_T4-1Q").kind == DeviceKind::Vgpu);
    CHECK(inventory.resources.contains("nvidia.com/GRID_T4-2Q"));
    CHECK(inventory.resources.contains("nvidia.com/nvidia-224"));
    CHECK(inventory.resources.size() == 3);
    CHECK(row(inventory, "e").reason == "parent 0000:00:02.0 is not an NVIDIA device (vendor 8086)");
    CHECK(row(inventory, "f").reason == "not bound to a vGPU driver yet");
}

TEST_CASE("invalid names are repaired and the repair is reported")
{
    NodeObservation node;
    node.functions["0000:65:00.0"] = gpu("0000:65:00.0", 0x24fa, 12);
    node.vfioGroupNodes = {12};
    auto names = nvidiaNames();
    Inventory inventory = deriveInventory(node, names);
    CHECK(inventory.resources.contains("nvidia.com/GA104_RTX_A4500_EMBEDDED_GPU"));
    CHECK(inventory.nameRepairs.contains("nvidia.com/GA104_RTX_A4500_EMBEDDED_GPU"));
}

TEST_CASE("unreadable devices appear in the rows with their problem")
{
    NodeObservation node;
    node.unreadableFunctions["0000:66:00.0"] = {PciFunction{.address = "0000:66:00.0", .vendor = 0x10de},
                                                "malformed PCI class"};
    node.unreadableMdevs["bad-uuid"] = "cannot read mdev_type";
    auto names = nvidiaNames();
    Inventory inventory = deriveInventory(node, names);
    CHECK(inventory.resources.empty());
    CHECK(row(inventory, "0000:66:00.0").reason == "malformed PCI class");
    CHECK(row(inventory, "bad-uuid").kind == "mdev");
}

TEST_CASE("class labels")
{
    CHECK(classLabel(0x030000) == "display");
    CHECK(classLabel(0x030200) == "3D controller");
    CHECK(classLabel(0x040300) == "audio");
    CHECK(classLabel(0x068000) == "bridge (NVSwitch)");
    CHECK(classLabel(0x0b4000) == "class 0x0b40");
    CHECK(isAdvertisedClass(0x030000));
    CHECK(isAdvertisedClass(0x068000));
    CHECK_FALSE(isAdvertisedClass(0x040300));
}
