// The description format: what parses to what, and errors that say which
// line is wrong and why.
#include "node_description.h"
#include "selftest_files.h"

#include <doctest/doctest.h>

#include <cstdlib>

using namespace kvgpu::test;

namespace {

const char *kExample = R"(# the example from the format's documentation
bridge  pci0000:64/0000:64:00.0
gpu     0000:65:00.0 id=10de:1eb8 group=12 numa=0 driver=vfio-pci parent=pci0000:64/0000:64:00.0 class=0x030200
function 0000:65:00.1 id=10de:10f8 class=0x040300 group=12 numa=0 driver=snd_hda_intel parent=pci0000:64/0000:64:00.0

device  0000:00:1f.3 id=8086:a348 class=0x040300 group=5 driver=snd_hda_intel parent=pci0000:00
vgpu-type 0000:b1:00.0 nvidia-222 name="GRID T4-1Q" instances=16   # trailing comment
vgpu    aa618089-8b16-4d01-a136-25a0f3c73123 parent=0000:b1:00.0 type=nvidia-222
iommufd on
)";

std::string errorOf(std::string_view text) {
    try {
        parseNodeDescription(text);
    } catch (const DescriptionError &e) {
        return e.what();
    }
    return "no error";
}

std::string buildErrorOf(std::string_view text) {
    try {
        SimNode::fromDescription(text);
    } catch (const DescriptionError &e) {
        return e.what();
    }
    return "no error";
}

} // namespace

TEST_CASE("the documented example parses item by item") {
    const auto lines = parseNodeDescription(kExample);
    REQUIRE(lines.size() == 7);

    CHECK(lines[0].lineNumber == 2);
    CHECK(std::get<BridgeSpec>(lines[0].item).path == "pci0000:64/0000:64:00.0");
    CHECK(std::get<BridgeSpec>(lines[0].item).driver == "pcieport");

    const auto &gpu = std::get<PciFunctionSpec>(lines[1].item);
    CHECK(gpu.address == "0000:65:00.0");
    CHECK(gpu.vendor == 0x10de);
    CHECK(gpu.device == 0x1eb8);
    CHECK(gpu.classCode == 0x030200);
    CHECK(gpu.iommuGroup == 12);
    CHECK(gpu.numaNode == 0);
    CHECK(gpu.driver == "vfio-pci");
    CHECK(gpu.parentPath == "pci0000:64/0000:64:00.0");
    CHECK_FALSE(gpu.vfioDevIndex.has_value());

    const auto &audio = std::get<PciFunctionSpec>(lines[2].item);
    CHECK(audio.classCode == 0x040300);
    CHECK(audio.driver == "snd_hda_intel");

    CHECK(lines[3].lineNumber == 6);
    CHECK(std::get<PciFunctionSpec>(lines[3].item).vendor == 0x8086);

    const auto &type = std::get<VgpuTypeSpec>(lines[4].item);
    CHECK(type.parentAddress == "0000:b1:00.0");
    CHECK(type.typeId == "nvidia-222");
    CHECK(type.name == "GRID T4-1Q");
    CHECK(type.availableInstances == 16);

    const auto &vgpu = std::get<VgpuSpec>(lines[5].item);
    CHECK(vgpu.uuid == "aa618089-8b16-4d01-a136-25a0f3c73123");
    CHECK(vgpu.parentAddress == "0000:b1:00.0");
    CHECK(vgpu.typeId == "nvidia-222");

    CHECK(std::get<IommufdSetting>(lines[6].item).enabled);
}

TEST_CASE("defaults: a gpu is a display controller on vfio-pci, other functions have no driver") {
    auto gpu = std::get<PciFunctionSpec>(*parseDescriptionLine("gpu 0000:17:00.0 id=10DE:20F1 group=3"));
    CHECK(gpu.device == 0x20f1);
    CHECK(gpu.classCode == 0x030200);
    CHECK(gpu.driver == "vfio-pci");
    CHECK_FALSE(gpu.numaNode.has_value());
    CHECK(gpu.parentPath.empty());

    auto function = std::get<PciFunctionSpec>(
        *parseDescriptionLine("function 0000:17:00.1 id=10de:10f8 class=040300 group=none numa=-1"));
    CHECK(function.driver.empty());
    CHECK_FALSE(function.iommuGroup.has_value());
    CHECK(function.numaNode == -1);

    auto unbound = std::get<PciFunctionSpec>(*parseDescriptionLine(
        "gpu 0000:18:00.0 id=10de:1eb8 group=4 driver=none subsys=10de:12a2 vfio-dev=3"));
    CHECK(unbound.driver.empty());
    CHECK(unbound.subsystemVendor == 0x10de);
    CHECK(unbound.subsystemDevice == 0x12a2);
    CHECK(unbound.vfioDevIndex == 3);

    auto bridge = std::get<BridgeSpec>(
        *parseDescriptionLine("bridge pci0000:64/0000:64:00.0/0000:65:00.0 id=10b5:9781 group=7"));
    CHECK(bridge.vendor == 0x10b5);
    CHECK(bridge.iommuGroup == 7);

    auto type = std::get<VgpuTypeSpec>(*parseDescriptionLine(
        R"(vgpu-type 0000:e1:00.0 nvidia-592 instances=0 name="say \"hi\" \\ #not a comment")"));
    CHECK(type.name == R"(say "hi" \ #not a comment)");
    CHECK(type.availableInstances == 0);

    CHECK_FALSE(parseDescriptionLine("   # only a comment").has_value());
    CHECK_FALSE(parseDescriptionLine("").has_value());
}

TEST_CASE("errors name the line and what is wrong") {
    CHECK(errorOf("\nfrobnicate 1") ==
          "line 2: unknown item 'frobnicate' (known: bridge, gpu, function, device, vgpu-type, vgpu, iommufd, "
          "sriov-profile, vfs, vf-profile, egm)");
    CHECK(errorOf("gpu 0000:65:00.0 group=12") == "line 1: gpu 0000:65:00.0: missing id=vvvv:dddd");
    CHECK(errorOf("gpu 0000:65:00.0 id=10de:1eb8") == "line 1: gpu 0000:65:00.0: missing group=N (or none)");
    CHECK(errorOf("gpu 0000:65:00 id=10de:1eb8 group=1") ==
          "line 1: gpu: '0000:65:00' is not a PCI address like 0000:65:00.0");
    CHECK(errorOf("gpu") == "line 1: gpu: missing a PCI address like 0000:65:00.0");
    CHECK(errorOf("function 0000:65:00.1 id=10de:10f8 group=1") ==
          "line 1: function 0000:65:00.1: missing class=0x040300");
    CHECK(errorOf("gpu 0000:65:00.0 id=10de1eb8 group=1") ==
          "line 1: gpu 0000:65:00.0: id=10de1eb8 is not a vendor:device pair like 10de:1eb8");
    CHECK(errorOf("gpu 0000:65:00.0 id=10de:1eb8 group=1 numa=-2") ==
          "line 1: gpu 0000:65:00.0: numa=-2 is not a NUMA node (-1 for unknown)");
    CHECK(errorOf("gpu 0000:65:00.0 id=10de:1eb8 group=x") ==
          "line 1: gpu 0000:65:00.0: group=x is not an IOMMU group number or none");
    CHECK(errorOf("gpu 0000:65:00.0 id=10de:1eb8 group=1 class=0xzz") ==
          "line 1: gpu 0000:65:00.0: class=0xzz is not a class code like 0x030200");
    CHECK(errorOf("gpu 0000:65:00.0 id=10de:1eb8 group=1 group=2") ==
          "line 1: gpu 0000:65:00.0: group= given twice");
    CHECK(errorOf("gpu 0000:65:00.0 id=10de:1eb8 group=1 colour=green") ==
          "line 1: gpu 0000:65:00.0: unknown field 'colour' (known: class, driver, group, id, numa, "
          "parent, sriov-vfs, subsys, vf-offset, vfio-dev)");
    CHECK(errorOf("gpu 0000:65:00.0 id=10de:1eb8 group=1 stray") ==
          "line 1: gpu 0000:65:00.0: expected key=value, got 'stray'");
    CHECK(errorOf("gpu 0000:65:00.0 id=10de:1eb8 group=1 parent=0000:64:00.0") ==
          "line 1: gpu 0000:65:00.0: parent=0000:64:00.0 is not a path like pci0000:64/0000:64:00.0");
    CHECK(errorOf("vgpu-type 0000:e1:00.0 nvidia-592 name=\"L4-1Q instances=2") ==
          "line 1: unterminated quote starting at column 40");
    CHECK(errorOf("vgpu-type 0000:e1:00.0 nvidia-592") == "line 1: vgpu-type nvidia-592: missing instances=N");
    CHECK(errorOf("vgpu 1234 parent=0000:e1:00.0 type=nvidia-592") == "line 1: vgpu: '1234' is not a UUID");
    CHECK(errorOf("bridge pci0000:64") == "line 1: bridge: 'pci0000:64' is not a path like pci0000:64/0000:64:00.0");
    CHECK(errorOf("iommufd maybe") == "line 1: iommufd: expected on or off, got 'maybe'");
    CHECK(errorOf("iommufd on\n\niommufd off") == "line 3: iommufd is already set on line 1");
}

TEST_CASE("building reports the line of an item the node refuses") {
    CHECK(buildErrorOf("gpu 0000:67:00.0 id=10de:1eb8 group=20 parent=pci0000:64/0000:64:00.0") ==
          "line 1: parent pci0000:64/0000:64:00.0 of 0000:67:00.0 does not exist; add the bridge first");
    CHECK(buildErrorOf("gpu 0000:e1:00.0 id=10de:27b8 group=50 driver=nvidia\n"
                       "vgpu-type 0000:e1:00.0 nvidia-592 instances=0\n"
                       "vgpu aa618089-8b16-4d01-a136-25a0f3c73123 parent=0000:e1:00.0 type=nvidia-592\n") ==
          "line 3: no nvidia-592 instances left on 0000:e1:00.0 (available_instances is 0)");
    CHECK(buildErrorOf("gpu 0000:65:00.0 id=10de:1eb8 group=12\ngpu 0000:65:00.0 id=10de:1eb8 group=12") ==
          "line 2: PCI function 0000:65:00.0 already exists");
}

TEST_CASE("the documented example builds a node") {
    // vgpu-type needs a host-driver parent, which the example's 0000:b1:00.0 lacks.
    std::string text = kExample;
    text = "gpu 0000:b1:00.0 id=10de:1eb8 group=30 driver=nvidia\n" + text;
    auto node = SimNode::fromDescription(text);
    const std::string sys = node->sysfsRoot();
    CHECK(files::exists(node->devRoot() + "/iommu"));
    CHECK(files::exists(sys + "/bus/mdev/devices/aa618089-8b16-4d01-a136-25a0f3c73123"));
    CHECK(files::linkTarget(node->pathOf("0000:65:00.1") + "/driver").ends_with("/snd_hda_intel"));
    // iommufd on: the vfio-pci GPU has its cdev.
    CHECK(files::exists(node->pathOf("0000:65:00.0") + "/vfio-dev/vfio0"));
}

TEST_CASE("the demo node is the machine the demo promises") {
    const char *path = std::getenv("SIM_NODE_DEMO");
    REQUIRE_MESSAGE(path, "SIM_NODE_DEMO must name demo-node.conf");
    auto node = SimNode::fromDescriptionFile(path);
    const std::string sys = node->sysfsRoot();
    auto attribute = [&](const std::string &address, const std::string &name) {
        return files::text(sys + "/bus/pci/devices/" + address + "/" + name);
    };

    const std::vector<std::string> gpus = {"0000:67:00.0", "0000:68:00.0", "0000:ca:00.0", "0000:e1:00.0"};
    for (const std::string &gpu : gpus) {
        CAPTURE(gpu);
        CHECK(attribute(gpu, "vendor") == "0x10de\n");
        CHECK(attribute(gpu, "class") == "0x030200\n");
    }
    // Two T4s behind one switch on NUMA 0, each with its audio function in its group, all on vfio-pci.
    CHECK(attribute("0000:67:00.0", "device") == "0x1eb8\n");
    CHECK(attribute("0000:68:00.0", "device") == "0x1eb8\n");
    CHECK(files::resolved(sys + "/bus/pci/devices/0000:67:00.0/..").ends_with("0000:66:08.0"));
    CHECK(files::resolved(sys + "/bus/pci/devices/0000:67:00.0/../..") ==
          files::resolved(sys + "/bus/pci/devices/0000:68:00.0/../.."));
    for (const char *function : {"0000:67:00.0", "0000:67:00.1", "0000:68:00.0", "0000:68:00.1"}) {
        CAPTURE(function);
        CHECK(attribute(function, "numa_node") == "0\n");
        CHECK(files::linkTarget(sys + "/bus/pci/devices/" + function + "/driver").ends_with("/vfio-pci"));
    }
    CHECK(files::list(sys + "/kernel/iommu_groups/20/devices") ==
          std::vector<std::string>{"0000:67:00.0", "0000:67:00.1"});
    CHECK(files::list(sys + "/kernel/iommu_groups/21/devices") ==
          std::vector<std::string>{"0000:68:00.0", "0000:68:00.1"});
    CHECK(files::exists(node->devRoot() + "/vfio/20"));
    CHECK(files::exists(node->devRoot() + "/vfio/21"));
    CHECK(files::exists(node->devRoot() + "/vfio/40"));

    // The A100 on NUMA 1.
    CHECK(attribute("0000:ca:00.0", "device") == "0x20f1\n");
    CHECK(attribute("0000:ca:00.0", "numa_node") == "1\n");

    // The L4 with unknown NUMA on nvidia, two vGPU types and two vGPUs.
    CHECK(attribute("0000:e1:00.0", "device") == "0x27b8\n");
    CHECK(attribute("0000:e1:00.0", "numa_node") == "-1\n");
    CHECK(files::linkTarget(sys + "/bus/pci/devices/0000:e1:00.0/driver").ends_with("/nvidia"));
    const std::string types = sys + "/bus/pci/devices/0000:e1:00.0/mdev_supported_types";
    CHECK(files::text(types + "/nvidia-592/name") == "NVIDIA L4-1Q\n");
    CHECK(files::text(types + "/nvidia-592/available_instances") == "23\n");
    CHECK(files::text(types + "/nvidia-593/name") == "NVIDIA L4-2Q\n");
    CHECK(files::text(types + "/nvidia-593/available_instances") == "11\n");
    CHECK(files::list(sys + "/bus/mdev/devices").size() == 2);
    CHECK_FALSE(files::exists(node->devRoot() + "/vfio/50"));

    // The chipset's audio controller, not NVIDIA.
    CHECK(attribute("0000:00:1f.3", "vendor") == "0x8086\n");
    CHECK(files::linkTarget(sys + "/bus/pci/devices/0000:00:1f.3/driver").ends_with("/snd_hda_intel"));

    CHECK_FALSE(files::exists(node->devRoot() + "/iommu"));
}

TEST_CASE("a missing description file is reported by name") {
    CHECK_THROWS_WITH_AS(SimNode::fromDescriptionFile("/nonexistent/node.conf"),
                         doctest::Contains("/nonexistent/node.conf"), DescriptionError);
}

TEST_CASE("an SR-IOV card, its profiles, its VFs and EGM regions are described in a few lines") {
    auto node = SimNode::fromDescription("gpu 0000:41:00.0 id=10de:2335 group=70 numa=0 driver=nvidia sriov-vfs=8\n"
                                         "sriov-profile 0000:41:00.0 1414 name=\"NVIDIA H200X-1-18C\" instances=7\n"
                                         "vfs 0000:41:00.0 count=2\n"
                                         "vf-profile 0000:41:00.4 1414\n"
                                         "egm egm4 gpus=0009:01:00.0,0009:02:00.0 layout=links node=no\n");
    CHECK(node->virtualFunctions("0000:41:00.0") == std::vector<std::string>{"0000:41:00.4", "0000:41:00.5"});
    CHECK(files::text(node->pathOf("0000:41:00.4") + "/nvidia/current_vgpu_type") == "1414\n");
    CHECK(files::text(node->pathOf("0000:41:00.5") + "/nvidia/creatable_vgpu_types") ==
          "ID    : vGPU Name\n1414  : NVIDIA H200X-1-18C\n");
    CHECK(files::isLink(node->sysfsRoot() + "/class/egm/egm4/0009:02:00.0"));
    CHECK(errorOf("vf-profile 0000:41:00.4 x") == "line 1: vf-profile: 'x' is not a vGPU type id like 1414");
    CHECK(errorOf("egm egm4 layout=tree") == "line 1: egm egm4: layout=tree is not file or links");
}
