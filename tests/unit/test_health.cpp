#include "health/health.h"
#include "health/health_history.h"
#include "sysfs/node_reader.h"
#include "sysfs/vfio_drivers.h"
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

// A node as the registry holds it: what was observed, and the health history
// that follows each observation.
struct WatchedNode {
    NodeObservation observed;
    HealthHistories history;

    void read(const PciFunction &f)
    {
        observed.apply(PciObservation{PciObservation::State::Present, f, {}}, f.address);
        history.follow(observed, f.address);
    }
    void remove(const std::string &address)
    {
        observed.apply(PciObservation{}, address);
        history.follow(observed, address);
    }
    // The health timer's read.
    void poll(const PciFunction &f)
    {
        if (observed.applyPolled(f.address, f.polled))
            history.followPolled(observed, f.address);
    }
    void errorEvent(const std::string &address, const std::string &event)
    {
        history.recordErrorEvent(observed, address, event);
    }
    Verdict verdict(const std::string &address) const
    {
        return judgePassthrough(observed.functions.at(address), observed, history);
    }
    Verdict vgpuVerdict(const Mdev &m) const { return judgeVgpu(m, observed, history); }
};

WatchedNode nodeWith(const PciFunction &f)
{
    WatchedNode watched;
    watched.read(f);
    watched.observed.vfioGroupNodes.insert(f.iommuGroup);
    watched.observed.groups[f.iommuGroup] = {GroupMember{f.address, f.driver, f.classCode}};
    return watched;
}

} // namespace

TEST_CASE("a healthy GPU has no verdict against it")
{
    WatchedNode node = nodeWith(t4());
    Verdict v = node.verdict("0000:65:00.0");
    CHECK(v.healthy);
    CHECK(v.reason.empty());
    CHECK(passthroughWarnings(node.observed.functions.at("0000:65:00.0")).empty());
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
        CHECK(keepsGroupViable(ok));
    for (const char *bad : {"nvidia", "snd_hda_intel", "xhci_hcd", "nouveau"})
        CHECK_FALSE(keepsGroupViable(bad));

    WatchedNode node = nodeWith(t4());
    node.observed.groups[12].push_back(GroupMember{"0000:65:00.1", "snd_hda_intel", 0x040300});
    Verdict v = node.verdict("0000:65:00.0");
    CHECK_FALSE(v.healthy);
    CHECK(v.reason == "iommu group 12 not viable: 0000:65:00.1 (audio) bound to snd_hda_intel");
}

TEST_CASE("a passthrough driver is narrower than a driver that keeps a group viable")
{
    for (const char *driver : {"vfio-pci", "nvgrace_gpu_vfio_pci"}) {
        CHECK(isPassthroughDriver(driver));
        CHECK(keepsGroupViable(driver));
    }
    // A companion may sit on pci-stub or a variant driver, but KubeVirt is
    // never handed a GPU on one.
    for (const char *driver : {"pci-stub", "mlx5_vfio_pci", "foo-vfio-pci"}) {
        CHECK_FALSE(isPassthroughDriver(driver));
        CHECK(keepsGroupViable(driver));
    }
    for (const char *driver : {"", "nvidia", "nouveau", "vfio", "vfio_pci_core"}) {
        CHECK_FALSE(isPassthroughDriver(driver));
        CHECK_FALSE(keepsGroupViable(driver));
    }
}

TEST_CASE("precedence: a missing node first, then recovery, then polled signals, then the group")
{
    WatchedNode node = nodeWith(t4());
    node.observed.groups[12].push_back(GroupMember{"0000:65:00.1", "snd_hda_intel", 0x040300});
    node.errorEvent("0000:65:00.0", "BEGIN_RECOVERY");
    CHECK(node.verdict("0000:65:00.0").reason == "PCIe error recovery in progress");
    node.observed.vfioGroupNodes.clear();
    CHECK(node.verdict("0000:65:00.0").reason == "no /dev/vfio/12");
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
    WatchedNode node = nodeWith(f);
    f.polled.configVendor = 0xffff;
    node.read(f);
    CHECK(node.verdict(f.address).reason == "fell off the bus: config space reads vendor 0xffff");

    f.polled.configVendor = 0x10de;
    node.read(f);
    CHECK_FALSE(node.verdict(f.address).healthy); // one good read is not enough
    f.polled.configVendor = 0xffff;
    node.read(f); // flaps: the count starts again
    f.polled.configVendor = 0x10de;
    node.read(f);
    CHECK_FALSE(node.verdict(f.address).healthy);
    node.poll(f); // the health timer's read counts too
    CHECK(node.verdict(f.address).healthy);
}

TEST_CASE("the fatal AER counter is compared with its value when the function was bound")
{
    PciFunction f = t4();
    f.polled.aerFatal = 5; // errors from before we ever saw it do not count
    WatchedNode node = nodeWith(f);
    CHECK(node.verdict(f.address).healthy);
    f.polled.aerFatal = 6;
    node.read(f);
    CHECK(node.verdict(f.address).reason == "1 fatal AER error(s) since it was bound");
    // A successful recovery accounts for them.
    node.errorEvent(f.address, "SUCCESSFUL_RECOVERY");
    CHECK(node.verdict(f.address).healthy);
    node.read(f);
    CHECK(node.verdict(f.address).healthy);
}

TEST_CASE("a failed recovery lasts until the function is rebound or removed")
{
    PciFunction f = t4();
    WatchedNode node = nodeWith(f);
    node.errorEvent(f.address, "BEGIN_RECOVERY");
    node.errorEvent(f.address, "FAILED_RECOVERY");
    node.read(f);
    CHECK(node.verdict(f.address).reason == "PCIe error recovery failed");
    node.errorEvent(f.address, "BEGIN_RECOVERY");
    node.errorEvent(f.address, "SUCCESSFUL_RECOVERY");
    CHECK(node.verdict(f.address).healthy);

    node.errorEvent(f.address, "FAILED_RECOVERY");
    PciFunction unbound = f;
    unbound.driver.clear();
    node.read(unbound);
    node.read(f);
    CHECK(node.verdict(f.address).healthy);

    node.errorEvent(f.address, "FAILED_RECOVERY");
    node.remove(f.address); // removed
    node.read(f);                           // and back
    CHECK(node.verdict(f.address).healthy);
}

TEST_CASE("a vGPU follows its parent")
{
    PciFunction parent = t4("0000:e1:00.0", 50);
    parent.driver = "nvidia";
    WatchedNode node = nodeWith(parent);
    Mdev m{.uuid = "aa618089-8b16-4d01-a136-25a0f3c73123", .parentAddress = "0000:e1:00.0", .parentVendor = 0x10de,
           .typeId = "nvidia-592", .typeName = "NVIDIA L4-1Q", .iommuGroup = 51, .driver = "nvidia-vgpu-vfio"};
    node.observed.vfioGroupNodes.insert(51);
    CHECK(node.vgpuVerdict(m).healthy);

    parent.polled.configVendor = 0xffff;
    node.read(parent);
    CHECK(node.vgpuVerdict(m).reason == "parent 0000:e1:00.0 fell off the bus");
    parent.polled.configVendor = 0x10de;
    node.read(parent);
    node.errorEvent(parent.address, "FAILED_RECOVERY");
    CHECK(node.vgpuVerdict(m).reason == "parent 0000:e1:00.0: PCIe error recovery failed");
    parent.driver.clear();
    node.read(parent);
    CHECK(node.vgpuVerdict(m).reason == "parent 0000:e1:00.0 is not bound to a driver");
    node.remove(parent.address);
    CHECK(node.vgpuVerdict(m).reason == "parent 0000:e1:00.0 is gone");
    node.observed.vfioGroupNodes.erase(51);
    CHECK(node.vgpuVerdict(m).reason == "no /dev/vfio/51");
}

TEST_CASE("no reset method and a downtrained link are warnings, not verdicts")
{
    PciFunction f = t4();
    f.resetMethod.reset();
    f.linkSpeed = "8.0 GT/s PCIe";
    f.linkWidth = "8";
    WatchedNode node = nodeWith(f);
    CHECK(node.verdict(f.address).healthy);
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
