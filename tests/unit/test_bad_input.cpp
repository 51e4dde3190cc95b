// Bad input in place of every file and link the daemon reads: a FIFO, a
// socket, a directory, a character device, a dangling or looping link. None
// of it may block the reader (a FIFO's open(2) would wait for ever); the
// device degrades with a reason that names the file, and the rest of the node
// is read as usual.
#include "health/health.h"
#include "sysfs/node_reader.h"
#include "naming/pci_names.h"
#include "odd_files.h"
#include "temp_tree.h"

#include <doctest/doctest.h>

#include <fmt/format.h>

using namespace kvgpu;
using kvgpu::test::FakePci;
using kvgpu::test::Oddity;
using kvgpu::test::TempTree;

namespace {

const std::string kVgpu = "aa618089-8b16-4d01-a136-25a0f3c73123";

// A GPU on vfio-pci with every optional file a recent kernel has, a second
// healthy GPU, and a GPU on nvidia carrying one vGPU.
struct Node {
    TempTree sys, dev;
    FakePci gpu{.address = "0000:65:00.0", .group = 12};
    FakePci other{.address = "0000:66:00.0", .group = 13};
    FakePci parent{.address = "0000:b1:00.0", .driver = "nvidia", .group = 40, .parents = "pci0000:b0"};

    Node()
    {
        for (const FakePci &f : {gpu, other, parent}) {
            addPci(sys, f);
            const std::string dir = devicePath(f);
            sys.write(dir + "/power_state", "D0\n");
            sys.write(dir + "/config", std::string("\xde\x10", 2));
            sys.write(dir + "/aer_dev_fatal", "TOTAL_ERR_FATAL 0\n");
            sys.write(dir + "/reset_method", "flr bus\n");
            sys.write(dir + "/current_link_speed", "16.0 GT/s PCIe\n");
            sys.write(dir + "/max_link_speed", "16.0 GT/s PCIe\n");
            sys.write(dir + "/current_link_width", "16\n");
            sys.write(dir + "/max_link_width", "16\n");
        }
        sys.mkdir(devicePath(gpu) + "/vfio-dev/vfio3");
        addMdev(sys, parent, kVgpu, "nvidia-222", std::string("GRID T4-1Q"), 101);
        for (const char *node : {"vfio", "12", "13", "101"})
            dev.write(std::string("vfio/") + node, "");
    }

    SysfsTree sysfs() const { return SysfsTree(sys.root()); }
    PciObservation observeGpu() const { return observePciFunction(sysfs(), gpu.address); }
    MdevObservation observeVgpu() const { return observeMdev(sysfs(), kVgpu); }
    std::string gpuFile(const std::string &name) const { return devicePath(gpu) + "/" + name; }
};

// The reason names the file and says what is there instead.
void checkReason(const std::string &reason, const std::string &path, Oddity oddity)
{
    INFO("reason: ", reason);
    CHECK(reason.find(path) != std::string::npos);
    switch (oddity) {
    case Oddity::Fifo: CHECK(reason.find("FIFO") != std::string::npos); break;
    case Oddity::Socket: CHECK(reason.find("socket") != std::string::npos); break;
    case Oddity::Directory: CHECK(reason.find("directory") != std::string::npos); break;
    case Oddity::CharDevice: CHECK(reason.find("character device") != std::string::npos); break;
    case Oddity::DanglingLink:
    case Oddity::LoopingLink:
        CHECK((reason.find("symbolic link") != std::string::npos || reason.find("malformed") != std::string::npos));
        break;
    }
}

bool contains(const std::vector<std::string> &reasons, const std::string &path, Oddity oddity)
{
    for (const std::string &reason : reasons)
        if (reason.find(path) != std::string::npos) {
            checkReason(reason, path, oddity);
            return true;
        }
    return false;
}

} // namespace

TEST_CASE("anything but a regular file in place of an identity attribute makes the GPU unreadable, naming it")
{
    Node node;
    for (std::string name : {"vendor", "device", "class", "numa_node"}) {
        for (Oddity oddity : test::allOddities()) {
            CAPTURE(name);
            INFO("in its place: ", std::string(test::describe(oddity)));
            test::ScopedOddity odd(node.sys, node.gpuFile(name), oddity);

            PciObservation seen = node.observeGpu();
            CHECK(seen.state == PciObservation::State::Unreadable);
            checkReason(seen.problem, "bus/pci/devices/0000:65:00.0/" + name, oddity);

            // The rest of the node is read as usual.
            NodeObservation scanned = scanNode(node.sysfs(), DevTree(node.dev.root()));
            CHECK(scanned.functions.contains("0000:66:00.0"));
            CHECK(scanned.mdevs.contains(kVgpu));
            CHECK(scanned.unreadableFunctions.contains("0000:65:00.0"));
        }
    }
    // Each case put back what it replaced: the node is whole again.
    CHECK(node.observeGpu().state == PciObservation::State::Present);
    CHECK(node.observeVgpu().state == MdevObservation::State::Present);
}

TEST_CASE("anything but a driver link in place of the driver makes the GPU unreadable rather than unbound")
{
    Node node;
    for (Oddity oddity : test::allOddities()) {
        INFO("in its place: ", std::string(test::describe(oddity)));
        test::ScopedOddity odd(node.sys, node.gpuFile("driver"), oddity);
        PciObservation seen = node.observeGpu();
        CHECK(seen.state == PciObservation::State::Unreadable);
        checkReason(seen.problem, "bus/pci/devices/0000:65:00.0/driver", oddity);
    }
    // Each case put back what it replaced: the node is whole again.
    CHECK(node.observeGpu().state == PciObservation::State::Present);
    CHECK(node.observeVgpu().state == MdevObservation::State::Present);
}

TEST_CASE("anything but a group link in place of iommu_group leaves the GPU without a group, and says why")
{
    Node node;
    for (Oddity oddity : test::allOddities()) {
        INFO("in its place: ", std::string(test::describe(oddity)));
        test::ScopedOddity odd(node.sys, node.gpuFile("iommu_group"), oddity);
        PciObservation seen = node.observeGpu();
        REQUIRE(seen.state == PciObservation::State::Present);
        CHECK(seen.function.iommuGroup == -1);
        checkReason(seen.function.iommuGroupProblem, "bus/pci/devices/0000:65:00.0/iommu_group", oddity);
    }
    // Each case put back what it replaced: the node is whole again.
    CHECK(node.observeGpu().state == PciObservation::State::Present);
    CHECK(node.observeVgpu().state == MdevObservation::State::Present);
}

TEST_CASE("an optional health or link file that cannot be read is a warning on the GPU, which stays advertised")
{
    Node node;
    for (std::string name : {"power_state", "config", "aer_dev_fatal", "reset_method", "current_link_speed",
                             "max_link_speed", "current_link_width", "max_link_width"}) {
        for (Oddity oddity : test::allOddities()) {
            CAPTURE(name);
            INFO("in its place: ", std::string(test::describe(oddity)));
            test::ScopedOddity odd(node.sys, node.gpuFile(name), oddity);

            PciObservation seen = node.observeGpu();
            REQUIRE(seen.state == PciObservation::State::Present);
            CHECK(contains(passthroughWarnings(seen.function), "bus/pci/devices/0000:65:00.0/" + name,
                           oddity));
            // The health timer's reading says the same.
            PolledHealth polled = readPolledHealth(node.sysfs(), node.gpu.address);
            bool isPolled = name == "power_state" || name == "config" || name == "aer_dev_fatal";
            CHECK(polled.unreadable.empty() != isPolled);
        }
    }
    // Each case put back what it replaced: the node is whole again.
    CHECK(node.observeGpu().state == PciObservation::State::Present);
    CHECK(node.observeVgpu().state == MdevObservation::State::Present);
}

TEST_CASE("anything but a directory in place of vfio-dev or mdev_supported_types is a warning on the GPU")
{
    Node node;
    for (std::string name : {"vfio-dev", "mdev_supported_types"}) {
        for (Oddity oddity : test::allOddities()) {
            if (oddity == Oddity::Directory)
                continue;
            CAPTURE(name);
            INFO("in its place: ", std::string(test::describe(oddity)));
            test::ScopedOddity odd(node.sys, node.gpuFile(name), oddity);
            PciObservation seen = node.observeGpu();
            REQUIRE(seen.state == PciObservation::State::Present);
            if (name == "vfio-dev")
                CHECK(seen.function.vfioDevice.empty());
            else
                CHECK(seen.function.mdevTypes.empty());
            CHECK(contains(passthroughWarnings(seen.function), "bus/pci/devices/0000:65:00.0/" + name,
                           oddity));
        }
    }
    // Each case put back what it replaced: the node is whole again.
    CHECK(node.observeGpu().state == PciObservation::State::Present);
    CHECK(node.observeVgpu().state == MdevObservation::State::Present);
}

TEST_CASE("bad input in place of what a vGPU is read from makes the vGPU unreadable, naming the file")
{
    Node node;
    const std::string parentDir = devicePath(node.parent);
    struct Entry {
        std::string relative; // where the oddity goes
        std::string named;    // what the reason names (through bus/...)
    };
    const std::vector<Entry> entries = {
        {parentDir + "/" + kVgpu + "/mdev_type", "bus/mdev/devices/" + kVgpu + "/mdev_type"},
        {parentDir + "/mdev_supported_types/nvidia-222/name", "bus/mdev/devices/" + kVgpu + "/mdev_type/name"},
        {parentDir + "/" + kVgpu + "/iommu_group", "bus/mdev/devices/" + kVgpu + "/iommu_group"},
        {parentDir + "/" + kVgpu + "/driver", "bus/mdev/devices/" + kVgpu + "/driver"},
        {parentDir + "/vendor", parentDir + "/vendor"},
        {parentDir + "/numa_node", parentDir + "/numa_node"},
    };
    for (const Entry &entry : entries) {
        for (Oddity oddity : test::allOddities()) {
            CAPTURE(entry.relative);
            INFO("in its place: ", std::string(test::describe(oddity)));
            if (entry.relative.ends_with("/mdev_type") && oddity == Oddity::Directory)
                continue; // a directory is what a type link resolves to; covered by a FIFO etc.
            test::ScopedOddity odd(node.sys, entry.relative, oddity);
            MdevObservation seen = node.observeVgpu();
            CHECK(seen.state == MdevObservation::State::Unreadable);
            checkReason(seen.problem, entry.named, oddity);
            CHECK(node.observeGpu().state == PciObservation::State::Present);
        }
    }
    // Each case put back what it replaced: the node is whole again.
    CHECK(node.observeGpu().state == PciObservation::State::Present);
    CHECK(node.observeVgpu().state == MdevObservation::State::Present);
}

TEST_CASE("listing a directory that is something else is an error naming it, never a wait")
{
    for (Oddity oddity : test::allOddities()) {
        if (oddity == Oddity::Directory)
            continue;
        INFO("in its place: ", std::string(test::describe(oddity)));
        TempTree sys;
        replaceWith(sys, "bus/pci/devices", oddity);
        Result<std::vector<std::string>> listed = SysfsTree(sys.root()).listDir("bus/pci/devices");
        REQUIRE_FALSE(listed);
        checkReason(listed.error(), sys.path("bus/pci/devices"), oddity);
        CHECK(scanNode(SysfsTree(sys.root()), DevTree(sys.root())).functions.empty());
    }
}

TEST_CASE("a pci.ids that is not a regular file only costs the names, with the reason")
{
    for (Oddity oddity : test::allOddities()) {
        INFO("in its place: ", std::string(test::describe(oddity)));
        TempTree dir;
        replaceWith(dir, "pci.ids", oddity);
        PciIdsDatabase db(dir.path("pci.ids"));
        CHECK_FALSE(db.deviceName(0x10de, 0x1eb8).has_value());
        INFO("reason: ", db.unusableReason());
        CHECK(db.unusableReason().find(dir.path("pci.ids")) != std::string::npos);
        switch (oddity) {
        case Oddity::Fifo: CHECK(db.unusableReason().find("FIFO") != std::string::npos); break;
        case Oddity::Socket: CHECK(db.unusableReason().find("socket") != std::string::npos); break;
        case Oddity::Directory: CHECK(db.unusableReason().find("directory") != std::string::npos); break;
        case Oddity::CharDevice: CHECK(db.unusableReason().find("character device") != std::string::npos); break;
        case Oddity::DanglingLink: CHECK(db.unusableReason().find("dangling") != std::string::npos); break;
        case Oddity::LoopingLink: CHECK(db.unusableReason().find("looping") != std::string::npos); break;
        }
    }
}

TEST_CASE("a pci.ids reached through a link to a regular file is used")
{
    TempTree dir;
    dir.write("hwdata/pci.ids", "10de  NVIDIA Corporation\n\t1eb8  TU104GL [Tesla T4]\n");
    dir.link("pci.ids", "hwdata/pci.ids");
    PciIdsDatabase db(dir.path("pci.ids"));
    CHECK(db.deviceName(0x10de, 0x1eb8) == "TU104GL [Tesla T4]");
    CHECK(db.unusableReason().empty());
}

TEST_CASE("a group member whose driver cannot be read makes the group not viable rather than unbound")
{
    TempTree sys, dev;
    FakePci gpu{.address = "0000:65:00.0", .group = 12};
    FakePci audio{.address = "0000:65:00.1", .vendor = 0x8086, .classCode = 0x040300, .driver = "snd_hda_intel",
                  .group = 12};
    addPci(sys, gpu);
    addPci(sys, audio);
    dev.write("vfio/vfio", "");
    dev.write("vfio/12", "");
    replaceWith(sys, devicePath(audio) + "/driver", Oddity::Fifo);

    NodeObservation node = scanNode(SysfsTree(sys.root()), DevTree(dev.root()));
    REQUIRE(node.groups.contains(12));
    CHECK(groupViabilityProblem(12, node.groups.at(12)) ==
          "iommu group 12 not viable: 0000:65:00.1 (audio) bound to an unreadable driver");
}
