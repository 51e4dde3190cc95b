#include "device/health.h"
#include "device/inventory.h"
#include "device/node_reader.h"
#include "temp_tree.h"

#include <doctest/doctest.h>

using namespace kvgpu;
using kvgpu::test::FakePci;
using kvgpu::test::TempTree;

namespace {

PciFunction t4(std::string address = "0000:65:00.0", int group = 12)
{
    return PciFunction{.address = std::move(address), .vendor = 0x10de, .device = 0x1eb8, .classCode = 0x030200,
                       .driver = "vfio-pci", .iommuGroup = group, .numaNode = 0,
                       .polled = PolledHealth{.powerState = "D0", .configVendor = 0x10de, .aerFatal = 0},
                       .resetMethod = std::string("flr bus"), .linkSpeed = "16.0 GT/s PCIe",
                       .maxLinkSpeed = "16.0 GT/s PCIe", .linkWidth = "16", .maxLinkWidth = "16"};
}

NodeObservation nodeWith(const PciFunction &f)
{
    NodeObservation node;
    node.apply(PciObservation{PciObservation::State::Present, f, {}}, f.address);
    node.vfioGroupNodes.insert(f.iommuGroup);
    node.groups[f.iommuGroup] = {GroupMember{f.address, f.driver, f.classCode}};
    return node;
}

Verdict verdictOf(const NodeObservation &node, const std::string &address)
{
    return judgePassthrough(node.functions.at(address), node);
}

void read(NodeObservation &node, const PciFunction &f) { node.apply(PciObservation{PciObservation::State::Present, f, {}}, f.address); }

} // namespace

TEST_CASE("a healthy GPU has no verdict against it")
{
    NodeObservation node = nodeWith(t4());
    Verdict v = verdictOf(node, "0000:65:00.0");
    CHECK(v.healthy);
    CHECK(v.reason.empty());
    CHECK(passthroughWarnings(node.functions.at("0000:65:00.0")).empty());
}

TEST_CASE("group viability: every member but bridges must be on a VFIO driver or none")
{
    std::vector<GroupMember> members = {{"0000:65:00.0", "vfio-pci", 0x030200},
                                        {"0000:65:00.1", "snd_hda_intel", 0x040300},
                                        {"0000:64:00.0", "pcieport", 0x060400}};
    CHECK(groupViabilityProblem(12, members) == "iommu group 12 not viable: 0000:65:00.1 (audio) bound to snd_hda_intel");
    members[1].driver = "";
    CHECK(groupViabilityProblem(12, members).empty());
    members[1].driver = "vfio-pci";
    CHECK(groupViabilityProblem(12, members).empty());
    for (const char *ok : {"vfio-pci", "nvgrace_gpu_vfio_pci", "mlx5_vfio_pci", "pci-stub"})
        CHECK(isVfioCompatibleDriver(ok));
    for (const char *bad : {"nvidia", "snd_hda_intel", "xhci_hcd", "nouveau"})
        CHECK_FALSE(isVfioCompatibleDriver(bad));

    NodeObservation node = nodeWith(t4());
    node.groups[12].push_back(GroupMember{"0000:65:00.1", "snd_hda_intel", 0x040300});
    Verdict v = verdictOf(node, "0000:65:00.0");
    CHECK_FALSE(v.healthy);
    CHECK(v.reason == "iommu group 12 not viable: 0000:65:00.1 (audio) bound to snd_hda_intel");
}

TEST_CASE("precedence: a missing node first, then recovery, then polled signals, then the group")
{
    NodeObservation node = nodeWith(t4());
    node.groups[12].push_back(GroupMember{"0000:65:00.1", "snd_hda_intel", 0x040300});
    node.recordErrorEvent("0000:65:00.0", "BEGIN_RECOVERY");
    CHECK(verdictOf(node, "0000:65:00.0").reason == "PCIe error recovery in progress");
    node.vfioGroupNodes.clear();
    CHECK(verdictOf(node, "0000:65:00.0").reason == "no /dev/vfio/12");
}

TEST_CASE("fell off the bus, power state error and a rising fatal AER counter are polled problems")
{
    CHECK(polledProblem(PolledHealth{"D0", 0xffff, 0}, 0) == "fell off the bus: config space reads vendor 0xffff");
    CHECK(polledProblem(PolledHealth{"error", 0x10de, 0}, 0) == "power state is error");
    CHECK(polledProblem(PolledHealth{"D0", 0x10de, 3}, 1) == "2 fatal AER error(s) since it was bound");
    CHECK(polledProblem(PolledHealth{"D0", 0x10de, 3}, 3).empty());
    CHECK(polledProblem(PolledHealth{"D3hot", 0x10de, std::nullopt}, 0).empty()); // vfio-pci parks devices in D3hot
    CHECK(polledProblem(PolledHealth{"D3cold", std::nullopt, 0}, 0).empty());
}

TEST_CASE("recovery from a polled problem needs two good reads in a row")
{
    PciFunction f = t4();
    NodeObservation node = nodeWith(f);
    f.polled.configVendor = 0xffff;
    read(node, f);
    CHECK(verdictOf(node, f.address).reason == "fell off the bus: config space reads vendor 0xffff");

    f.polled.configVendor = 0x10de;
    read(node, f);
    CHECK_FALSE(verdictOf(node, f.address).healthy); // one good read is not enough
    f.polled.configVendor = 0xffff;
    read(node, f); // flaps: the count starts again
    f.polled.configVendor = 0x10de;
    read(node, f);
    CHECK_FALSE(verdictOf(node, f.address).healthy);
    node.applyPolled(f.address, f.polled); // the health timer's read counts too
    CHECK(verdictOf(node, f.address).healthy);
}

TEST_CASE("the fatal AER counter is compared with its value when the function was bound")
{
    PciFunction f = t4();
    f.polled.aerFatal = 5; // errors from before we ever saw it do not count
    NodeObservation node = nodeWith(f);
    CHECK(verdictOf(node, f.address).healthy);
    f.polled.aerFatal = 6;
    read(node, f);
    CHECK(verdictOf(node, f.address).reason == "1 fatal AER error(s) since it was bound");
    // A successful recovery accounts for them.
    node.recordErrorEvent(f.address, "SUCCESSFUL_RECOVERY");
    CHECK(verdictOf(node, f.address).healthy);
    read(node, f);
    CHECK(verdictOf(node, f.address).healthy);
}

TEST_CASE("a failed recovery lasts until the function is rebound or removed")
{
    PciFunction f = t4();
    NodeObservation node = nodeWith(f);
    node.recordErrorEvent(f.address, "BEGIN_RECOVERY");
    node.recordErrorEvent(f.address, "FAILED_RECOVERY");
    read(node, f);
    CHECK(verdictOf(node, f.address).reason == "PCIe error recovery failed");
    node.recordErrorEvent(f.address, "BEGIN_RECOVERY");
    node.recordErrorEvent(f.address, "SUCCESSFUL_RECOVERY");
    CHECK(verdictOf(node, f.address).healthy);

    node.recordErrorEvent(f.address, "FAILED_RECOVERY");
    PciFunction unbound = f;
    unbound.driver.clear();
    read(node, unbound);
    read(node, f);
    CHECK(verdictOf(node, f.address).healthy);

    node.recordErrorEvent(f.address, "FAILED_RECOVERY");
    node.apply(PciObservation{}, f.address); // removed
    read(node, f);                           // and back
    CHECK(verdictOf(node, f.address).healthy);
}

TEST_CASE("a vGPU follows its parent")
{
    PciFunction parent = t4("0000:e1:00.0", 50);
    parent.driver = "nvidia";
    NodeObservation node = nodeWith(parent);
    Mdev m{.uuid = "aa618089-8b16-4d01-a136-25a0f3c73123", .parentAddress = "0000:e1:00.0", .parentVendor = 0x10de,
           .typeId = "nvidia-592", .typeName = "NVIDIA L4-1Q", .iommuGroup = 51, .driver = "nvidia-vgpu-vfio"};
    node.vfioGroupNodes.insert(51);
    CHECK(judgeVgpu(m, node).healthy);

    parent.polled.configVendor = 0xffff;
    read(node, parent);
    CHECK(judgeVgpu(m, node).reason == "parent 0000:e1:00.0 fell off the bus");
    parent.polled.configVendor = 0x10de;
    read(node, parent);
    node.recordErrorEvent(parent.address, "FAILED_RECOVERY");
    CHECK(judgeVgpu(m, node).reason == "parent 0000:e1:00.0: PCIe error recovery failed");
    parent.driver.clear();
    read(node, parent);
    CHECK(judgeVgpu(m, node).reason == "parent 0000:e1:00.0 is not bound to a driver");
    node.apply(PciObservation{}, parent.address);
    CHECK(judgeVgpu(m, node).reason == "parent 0000:e1:00.0 is gone");
    node.vfioGroupNodes.erase(51);
    CHECK(judgeVgpu(m, node).reason == "no /dev/vfio/51");
}

TEST_CASE("no reset method and a downtrained link are warnings, not verdicts")
{
    PciFunction f = t4();
    f.resetMethod.reset();
    f.linkSpeed = "8.0 GT/s PCIe";
    f.linkWidth = "8";
    NodeObservation node = nodeWith(f);
    CHECK(verdictOf(node, f.address).healthy);
    auto warnings = passthroughWarnings(f);
    REQUIRE(warnings.size() == 2);
    CHECK(warnings[0] == "no reset method: a VM may inherit the previous VM's GPU state");
    CHECK(warnings[1] == "PCIe link trained at 8.0 GT/s PCIe x8, capable of 16.0 GT/s PCIe x16");
    f.resetMethod = "";
    CHECK(passthroughWarnings(f).size() == 2);
    f.linkSpeed = "Unknown";
    f.linkWidth = "16";
    CHECK(passthroughWarnings(f).size() == 1);
}

TEST_CASE("health file parsers")
{
    CHECK(parseAerTotal("Undefined 0\nDLP 1\nTOTAL_ERR_FATAL 4\n", "TOTAL_ERR_FATAL") == 4);
    CHECK(parseAerTotal("DLP 1\nSDES 2\n", "TOTAL_ERR_FATAL") == 3);
    CHECK_FALSE(parseAerTotal("", "TOTAL_ERR_FATAL").has_value());
    CHECK_FALSE(parseAerTotal("DLP lots\n", "TOTAL_ERR_FATAL").has_value());
    CHECK_FALSE(parseAerTotal("garbage\n", "TOTAL_ERR_FATAL").has_value());
    CHECK(parseLinkSpeed("16.0 GT/s PCIe\n") == 16.0);
    CHECK(parseLinkSpeed("2.5 GT/s") == 2.5);
    CHECK_FALSE(parseLinkSpeed("Unknown").has_value());
    CHECK_FALSE(parseLinkSpeed("").has_value());
}

TEST_CASE("config space is not read while the device sleeps in D3cold")
{
    TempTree sys;
    FakePci gpu{.address = "0000:65:00.0"};
    addPci(sys, gpu);
    std::string dir = devicePath(gpu);
    sys.write(dir + "/config", std::string("\xff\xff\xff\xff", 4) + std::string(60, '\0'));
    sys.write(dir + "/aer_dev_fatal", "DLP 0\nTOTAL_ERR_FATAL 2\n");
    sys.write(dir + "/power_state", "D3cold\n");
    SysfsTree tree(sys.root());

    PolledHealth asleep = readPolledHealth(tree, gpu.address);
    CHECK(asleep.powerState == "D3cold");
    CHECK_FALSE(asleep.configVendor.has_value());
    CHECK(asleep.aerFatal == 2);

    sys.write(dir + "/power_state", "D0\n");
    CHECK(readPolledHealth(tree, gpu.address).configVendor == 0xffff);
}

TEST_CASE("group members are read with their drivers and classes, whatever their vendor")
{
    TempTree sys;
    addPci(sys, FakePci{.address = "0000:65:00.0", .group = 12});
    addPci(sys, FakePci{.address = "0000:65:00.1", .classCode = 0x040300, .driver = "snd_hda_intel", .group = 12});
    sys.link("kernel/iommu_groups/12/devices/0000:65:00.0", "../../../../devices/pci0000:64/0000:64:00.0/0000:65:00.0");
    sys.link("kernel/iommu_groups/12/devices/0000:65:00.1", "../../../../devices/pci0000:64/0000:64:00.0/0000:65:00.1");
    auto members = readGroupMembers(SysfsTree(sys.root()), 12);
    REQUIRE(members.size() == 2);
    CHECK(members[1] == GroupMember{"0000:65:00.1", "snd_hda_intel", 0x040300});
    CHECK(readIommuGroup(SysfsTree(sys.root()), "0000:65:00.1") == 12);
    CHECK(readGroupMembers(SysfsTree(sys.root()), 99).empty());
}
