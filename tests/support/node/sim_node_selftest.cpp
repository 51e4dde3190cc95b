// The simulated node must look like the kernel to a daemon: each verb is
// checked for the files it leaves in sysfs and /dev, and for the uevents (with
// their properties) that a libudev "kernel" monitor receives, in order.
#include "monitor_pacing.h"
#include "selftest_files.h"
#include "sim_node.h"
#include "uevent_recorder.h"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <mutex>
#include <thread>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

using namespace kvgpu::test;
using namespace std::chrono_literals;

namespace {

const std::string kRootPort = "pci0000:64/0000:64:00.0";
const std::string kT4 = "0000:65:00.0";
const std::string kT4Audio = "0000:65:00.1";
const std::string kL4 = "0000:e1:00.0";
const std::string kVgpu1 = "aa618089-8b16-4d01-a136-25a0f3c73123";
const std::string kVgpu2 = "b0a3c4d2-1e2f-4a5b-8c9d-0e1f2a3b4c5d";
constexpr std::uint16_t kT4Id = 0x1eb8;
constexpr std::uint16_t kL4Id = 0x27b8;

std::string sequence(const std::vector<Uevent> &events) {
    std::string text;
    for (const std::string &line : summaries(events))
        text += (text.empty() ? "" : "; ") + line;
    return text;
}

const Uevent &find(const std::vector<Uevent> &events, const std::string &summary) {
    for (const Uevent &event : events)
        if (event.summary() == summary)
            return event;
    FAIL("no uevent '" << summary << "' in: " << sequence(events));
    throw std::logic_error("unreachable");
}

// A node and a monitor listening to it, like a daemon starting on the node.
struct NodeWithMonitor {
    explicit NodeWithMonitor(SimNodeOptions options = {},
                             std::vector<std::string> subsystems = {"pci", "mdev", "vfio"})
        : node(options), uevents(std::move(subsystems)) {}

    std::string sys(const std::string &relative) const { return node.sysfsRoot() + "/" + relative; }
    std::string dev(const std::string &relative) const { return node.devRoot() + "/" + relative; }
    std::string typeDir(const std::string &parent, const std::string &type) const {
        return node.pathOf(parent) + "/mdev_supported_types/" + type;
    }

    SimNode node;
    UeventRecorder uevents;
};

// An L4 on the nvidia host driver offering two vGPU types.
void addL4WithVgpuTypes(SimNode &node, int instances = 2) {
    node.addGpu(kL4, kL4Id, 50, -1, "nvidia");
    node.addVgpuType(VgpuTypeSpec{.parentAddress = kL4,
                                  .typeId = "nvidia-592",
                                  .name = "NVIDIA L4-1Q",
                                  .availableInstances = instances,
                                  .description = "num_heads=4, frl_config=60"});
    node.addVgpuType(kL4, "nvidia-593", std::nullopt, 1);
}

} // namespace

TEST_CASE("a GPU bound to vfio-pci appears with its attributes, its IOMMU group and /dev/vfio/N") {
    NodeWithMonitor host;
    host.node.addBridge(kRootPort);
    host.node.addGpu(kT4, kT4Id, 12, 0, "vfio-pci", kRootPort);

    const auto events = host.uevents.drain();
    // The driver probes after the add uevent; vfio-pci's probe creates the group node.
    CHECK(sequence(events) == "add pci 0000:64:00.0; bind pci 0000:64:00.0; "
                              "add pci 0000:65:00.0; add vfio 12; bind pci 0000:65:00.0");

    const Uevent &add = find(events, "add pci 0000:65:00.0");
    CHECK(add.devpath == "/devices/pci0000:64/0000:64:00.0/0000:65:00.0");
    CHECK(add.property("PCI_CLASS") == "30200");
    CHECK(add.property("PCI_ID") == "10DE:1EB8");
    CHECK(add.property("PCI_SUBSYS_ID") == "10DE:0000");
    CHECK(add.property("PCI_SLOT_NAME") == kT4);
    CHECK(add.property("MODALIAS") == "pci:v000010DEd00001EB8sv000010DEsd00000000bc03sc02i00");
    CHECK_FALSE(add.has("DRIVER"));

    const Uevent &bind = find(events, "bind pci 0000:65:00.0");
    CHECK(bind.property("DRIVER") == "vfio-pci");
    CHECK(bind.driver == "vfio-pci");
    CHECK(bind.property("PCI_ID") == "10DE:1EB8");

    const Uevent &group = find(events, "add vfio 12");
    CHECK(group.devpath == "/devices/virtual/vfio/12");
    CHECK(group.property("DEVNAME") == "/dev/vfio/12");

    const Uevent &bridge = find(events, "bind pci 0000:64:00.0");
    CHECK(bridge.property("PCI_CLASS") == "60400");
    CHECK(bridge.property("DRIVER") == "pcieport");

    // What a daemon reads, with plain file calls under the sysfs root.
    const std::string gpu = host.sys("devices/pci0000:64/0000:64:00.0/0000:65:00.0");
    CHECK(files::resolved(host.sys("bus/pci/devices/" + kT4)) == gpu);
    CHECK(files::linkTarget(gpu + "/subsystem").ends_with("bus/pci"));
    CHECK(files::text(gpu + "/vendor") == "0x10de\n");
    CHECK(files::text(gpu + "/device") == "0x1eb8\n");
    CHECK(files::text(gpu + "/subsystem_vendor") == "0x10de\n");
    CHECK(files::text(gpu + "/subsystem_device") == "0x0000\n");
    CHECK(files::text(gpu + "/class") == "0x030200\n");
    CHECK(files::text(gpu + "/numa_node") == "0\n");
    CHECK(files::text(gpu + "/power_state") == "D0\n");
    CHECK(files::text(gpu + "/reset_method") == "flr bus\n");
    CHECK(files::text(gpu + "/aer_dev_fatal").find("TOTAL_ERR_FATAL 0\n") != std::string::npos);
    CHECK(files::text(gpu + "/aer_dev_nonfatal").find("TOTAL_ERR_NONFATAL 0\n") != std::string::npos);
    CHECK(files::text(gpu + "/aer_dev_correctable").find("TOTAL_ERR_COR 0\n") != std::string::npos);
    CHECK(files::text(gpu + "/current_link_speed") == "16.0 GT/s PCIe\n");
    CHECK(files::text(gpu + "/max_link_width") == "16\n");
    CHECK(files::text(gpu + "/uevent").starts_with("DRIVER=vfio-pci\n"));

    const std::string config = files::text(gpu + "/config");
    REQUIRE(config.size() == 64);
    CHECK(static_cast<unsigned char>(config[0]) == 0xde);
    CHECK(static_cast<unsigned char>(config[1]) == 0x10);
    CHECK(static_cast<unsigned char>(config[2]) == 0xb8);
    CHECK(static_cast<unsigned char>(config[3]) == 0x1e);
    CHECK(static_cast<unsigned char>(config[0x0b]) == 0x03);

    CHECK(files::linkTarget(gpu + "/driver") == "../../../../bus/pci/drivers/vfio-pci");
    CHECK(files::resolved(gpu + "/driver") == host.sys("bus/pci/drivers/vfio-pci"));
    CHECK(files::resolved(host.sys("bus/pci/drivers/vfio-pci/" + kT4)) == gpu);
    CHECK(files::resolved(gpu + "/iommu_group") == host.sys("kernel/iommu_groups/12"));
    CHECK(files::list(host.sys("kernel/iommu_groups/12/devices")) == std::vector<std::string>{kT4});
    CHECK(files::resolved(host.sys("kernel/iommu_groups/12/devices/" + kT4)) == gpu);

    CHECK(files::exists(host.dev("vfio/vfio")));
    CHECK(files::exists(host.dev("vfio/12")));
    CHECK_FALSE(files::exists(host.dev("iommu")));
    CHECK_FALSE(files::exists(gpu + "/vfio-dev"));

    // The bridge is a plain PCI device with a bridge class.
    const std::string rootPort = host.sys("devices/pci0000:64/0000:64:00.0");
    CHECK(files::resolved(host.sys("bus/pci/devices/0000:64:00.0")) == rootPort);
    CHECK(files::text(rootPort + "/class") == "0x060400\n");
    CHECK(files::text(rootPort + "/vendor") == "0x8086\n");
}

TEST_CASE("numa_node is missing when the kernel has no NUMA, and -1 when the node is unknown") {
    NodeWithMonitor host;
    host.node.addGpu("0000:17:00.0", kT4Id, 3, std::nullopt);
    host.node.addGpu("0000:18:00.0", kT4Id, 4, -1);
    host.node.addGpu("0000:ca:00.0", 0x20f1, 5, 1);
    CHECK_FALSE(files::exists(host.node.pathOf("0000:17:00.0") + "/numa_node"));
    CHECK(files::text(host.node.pathOf("0000:18:00.0") + "/numa_node") == "-1\n");
    CHECK(files::text(host.node.pathOf("0000:ca:00.0") + "/numa_node") == "1\n");
    // Without a parent the function sits on its bus's root complex.
    CHECK(host.node.devpathOf("0000:17:00.0") == "/devices/pci0000:17/0000:17:00.0");
}

TEST_CASE("uevent IDs are uppercase hex like the kernel's") {
    NodeWithMonitor host;
    host.node.addPciFunction(PciFunctionSpec{.address = "0000:65:00.2",
                                             .device = 0x1ad8,
                                             .classCode = 0x0c0330,
                                             .subsystemDevice = 0x12a2,
                                             .iommuGroup = 12});
    const auto events = host.uevents.drain();
    REQUIRE(sequence(events) == "add pci 0000:65:00.2");
    CHECK(events[0].property("PCI_CLASS") == "C0330");
    CHECK(events[0].property("PCI_ID") == "10DE:1AD8");
    CHECK(events[0].property("PCI_SUBSYS_ID") == "10DE:12A2");
    CHECK(events[0].property("MODALIAS") == "pci:v000010DEd00001AD8sv000010DEsd000012A2bc0Csc03i30");
    CHECK(files::text(host.node.pathOf("0000:65:00.2") + "/class") == "0x0c0330\n");
    CHECK(files::text(host.node.pathOf("0000:65:00.2") + "/subsystem_device") == "0x12a2\n");
}

TEST_CASE("a GPU without a driver has no driver link, no DRIVER= and no /dev/vfio node") {
    NodeWithMonitor host;
    host.node.addGpu(kT4, kT4Id, 12, 0, "");
    const auto events = host.uevents.drain();
    CHECK(sequence(events) == "add pci 0000:65:00.0");
    CHECK(find(events, "add pci 0000:65:00.0").driver == "");
    CHECK_FALSE(files::exists(host.node.pathOf(kT4) + "/driver"));
    CHECK(files::text(host.node.pathOf(kT4) + "/uevent").find("DRIVER=") == std::string::npos);
    CHECK_FALSE(files::exists(host.dev("vfio/12")));
}

TEST_CASE("the audio function shares the GPU's group; /dev/vfio/N lives until the last VFIO member leaves") {
    NodeWithMonitor host;
    host.node.addGpu(kT4, kT4Id, 12, 0);
    host.node.addAudioFunction(kT4Audio, 12, "vfio-pci");
    CHECK(sequence(host.uevents.drain()) ==
          "add pci 0000:65:00.0; add vfio 12; bind pci 0000:65:00.0; "
          "add pci 0000:65:00.1; bind pci 0000:65:00.1");
    CHECK(files::list(host.sys("kernel/iommu_groups/12/devices")) ==
          std::vector<std::string>{kT4, kT4Audio});
    CHECK(files::text(host.node.pathOf(kT4Audio) + "/class") == "0x040300\n");

    SUBCASE("unbinding one member keeps the node") {
        host.node.unbind(kT4Audio);
        const auto events = host.uevents.drain();
        CHECK(sequence(events) == "unbind pci 0000:65:00.1");
        CHECK_FALSE(events[0].has("DRIVER"));
        CHECK(events[0].driver == "");
        CHECK(files::exists(host.dev("vfio/12")));
        CHECK_FALSE(files::exists(host.node.pathOf(kT4Audio) + "/driver"));
        CHECK_FALSE(files::exists(host.sys("bus/pci/drivers/vfio-pci/" + kT4Audio)));
        CHECK(files::text(host.node.pathOf(kT4Audio) + "/uevent").find("DRIVER=") == std::string::npos);

        host.node.unbind(kT4);
        CHECK(sequence(host.uevents.drain()) == "remove vfio 12; unbind pci 0000:65:00.0");
        CHECK_FALSE(files::exists(host.dev("vfio/12")));

        // The audio function going back to its host driver does not bring the node back...
        host.node.bind(kT4Audio, "snd_hda_intel");
        const auto rebound = host.uevents.drain();
        CHECK(sequence(rebound) == "bind pci 0000:65:00.1");
        CHECK(rebound[0].property("DRIVER") == "snd_hda_intel");
        CHECK(rebound[0].driver == "snd_hda_intel");
        CHECK_FALSE(files::exists(host.dev("vfio/12")));

        // ...binding the GPU to vfio-pci does.
        host.node.bind(kT4, "vfio-pci");
        CHECK(sequence(host.uevents.drain()) == "add vfio 12; bind pci 0000:65:00.0");
        CHECK(files::exists(host.dev("vfio/12")));
    }

    SUBCASE("binding a bound function is refused and changes nothing") {
        CHECK_THROWS_WITH_AS(host.node.bind(kT4, "nvidia"),
                             "0000:65:00.0 is already bound to vfio-pci; unbind it first",
                             std::runtime_error);
        CHECK_THROWS_AS(host.node.unbind("0000:99:00.0"), std::runtime_error);
        CHECK(host.uevents.drain().empty());
        CHECK(files::linkTarget(host.node.pathOf(kT4) + "/driver").ends_with("/vfio-pci"));
    }
}

TEST_CASE("functions below a switch need their bridges first and leave before them") {
    NodeWithMonitor host;
    const std::string upstream = kRootPort + "/0000:65:00.0";
    const std::string downstream = upstream + "/0000:66:08.0";
    CHECK_THROWS_WITH_AS(host.node.addGpu("0000:67:00.0", kT4Id, 20, 0, "vfio-pci", downstream),
                         doctest::Contains("add the bridge first"), std::runtime_error);

    host.node.addBridge(kRootPort);
    host.node.addBridge(BridgeSpec{.path = upstream, .vendor = 0x10b5, .device = 0x9781});
    host.node.addBridge(BridgeSpec{.path = downstream, .vendor = 0x10b5, .device = 0x9781});
    host.node.addGpu("0000:67:00.0", kT4Id, 20, 0, "vfio-pci", downstream);
    host.uevents.drain();
    CHECK(files::resolved(host.sys("bus/pci/devices/0000:67:00.0")) ==
          host.sys("devices/" + downstream + "/0000:67:00.0"));
    CHECK(files::text(host.sys("devices/" + upstream + "/vendor")) == "0x10b5\n");

    host.node.removePciFunction("0000:64:00.0");
    CHECK(sequence(host.uevents.drain()) ==
          "remove vfio 20; unbind pci 0000:67:00.0; remove pci 0000:67:00.0; "
          "unbind pci 0000:66:08.0; remove pci 0000:66:08.0; "
          "unbind pci 0000:65:00.0; remove pci 0000:65:00.0; "
          "unbind pci 0000:64:00.0; remove pci 0000:64:00.0");
    CHECK(files::list(host.sys("bus/pci/devices")).empty());
    CHECK_FALSE(files::exists(host.sys("kernel/iommu_groups/20")));
    CHECK_FALSE(files::exists(host.dev("vfio/20")));
    CHECK_FALSE(files::exists(host.sys("bus/pci/drivers/vfio-pci/0000:67:00.0")));
}

TEST_CASE("vGPU types and vGPUs look like NVIDIA's mdev parent") {
    NodeWithMonitor host;
    addL4WithVgpuTypes(host.node);
    CHECK(sequence(host.uevents.drain()) == "add pci 0000:e1:00.0; bind pci 0000:e1:00.0");

    const std::string type = host.typeDir(kL4, "nvidia-592");
    CHECK(files::text(type + "/name") == "NVIDIA L4-1Q\n");
    CHECK(files::text(type + "/available_instances") == "2\n");
    CHECK(files::text(type + "/device_api") == "vfio-pci\n");
    CHECK(files::text(type + "/description") == "num_heads=4, frl_config=60\n");
    CHECK(files::exists(type + "/create"));
    CHECK(files::list(type + "/devices").empty());
    CHECK_FALSE(files::exists(host.typeDir(kL4, "nvidia-593") + "/name"));
    CHECK(files::resolved(host.sys("class/mdev_bus/" + kL4)) == host.node.pathOf(kL4));
    CHECK_FALSE(files::exists(host.dev("vfio/50")));

    CHECK(host.node.createVgpu(kL4, "nvidia-592", "AA618089-8B16-4D01-A136-25A0F3C73123") == kVgpu1);
    const auto created = host.uevents.drain();
    const int group = host.node.iommuGroupOf(kVgpu1).value();
    CHECK(group > 50);
    CHECK(sequence(created) == fmt::format("add mdev {0}; add vfio {1}; bind mdev {0}", kVgpu1, group));
    const Uevent &add = find(created, "add mdev " + kVgpu1);
    CHECK(add.devpath == "/devices/pci0000:e1/0000:e1:00.0/" + kVgpu1);
    CHECK(add.property("MDEV_TYPE") == "nvidia-592");
    CHECK_FALSE(add.has("DRIVER"));
    const Uevent &bind = find(created, "bind mdev " + kVgpu1);
    CHECK(bind.property("DRIVER") == "nvidia-vgpu-vfio");
    CHECK(bind.driver == "nvidia-vgpu-vfio");

    const std::string vgpu = host.node.pathOf(kVgpu1);
    CHECK(vgpu == host.node.pathOf(kL4) + "/" + kVgpu1);
    CHECK(files::resolved(host.sys("bus/mdev/devices/" + kVgpu1)) == vgpu);
    CHECK(files::linkTarget(vgpu + "/mdev_type") == "../mdev_supported_types/nvidia-592");
    CHECK(files::resolved(vgpu + "/mdev_type") == type);
    CHECK(files::text(vgpu + "/mdev_type/name") == "NVIDIA L4-1Q\n");
    CHECK(files::resolved(vgpu + "/iommu_group") == host.sys(fmt::format("kernel/iommu_groups/{}", group)));
    CHECK(files::list(host.sys(fmt::format("kernel/iommu_groups/{}/devices", group))) ==
          std::vector<std::string>{kVgpu1});
    CHECK(files::resolved(vgpu + "/driver") == host.sys("bus/mdev/drivers/nvidia-vgpu-vfio"));
    CHECK(files::exists(vgpu + "/remove"));
    CHECK(files::resolved(type + "/devices/" + kVgpu1) == vgpu);
    CHECK(files::text(type + "/available_instances") == "1\n");
    CHECK(files::exists(host.dev(fmt::format("vfio/{}", group))));

    SUBCASE("each vGPU gets its own group, until the type runs out") {
        host.node.createVgpu(kL4, "nvidia-592", kVgpu2);
        host.uevents.drain();
        CHECK(host.node.iommuGroupOf(kVgpu2).value() == group + 1);
        CHECK(files::text(type + "/available_instances") == "0\n");
        CHECK_THROWS_WITH_AS(host.node.createVgpu(kL4, "nvidia-592"),
                             "no nvidia-592 instances left on 0000:e1:00.0 (available_instances is 0)",
                             std::runtime_error);
        CHECK_THROWS_AS(host.node.createVgpu(kL4, "nvidia-593", kVgpu1), std::runtime_error);
        CHECK_THROWS_AS(host.node.createVgpu(kL4, "nvidia-999"), std::runtime_error);
        CHECK_THROWS_AS(host.node.createVgpu(kL4, "nvidia-593", "not-a-uuid"), std::runtime_error);
        CHECK(host.uevents.drain().empty());
        CHECK(host.node.vgpus() == std::vector<std::string>{kVgpu1, kVgpu2});
    }

    SUBCASE("removing a vGPU gives the instance back") {
        host.node.removeVgpu(kVgpu1);
        CHECK(sequence(host.uevents.drain()) ==
              fmt::format("remove vfio {1}; unbind mdev {0}; remove mdev {0}", kVgpu1, group));
        CHECK_FALSE(files::exists(vgpu));
        CHECK_FALSE(files::exists(host.sys("bus/mdev/devices/" + kVgpu1)));
        CHECK_FALSE(files::exists(type + "/devices/" + kVgpu1));
        CHECK_FALSE(files::exists(host.sys(fmt::format("kernel/iommu_groups/{}", group))));
        CHECK_FALSE(files::exists(host.dev(fmt::format("vfio/{}", group))));
        CHECK(files::text(type + "/available_instances") == "2\n");
        CHECK(host.node.vgpus().empty());
        CHECK_THROWS_AS(host.node.removeVgpu(kVgpu1), std::runtime_error);
    }

    SUBCASE("unbinding the host driver takes the vGPUs and types away; rebinding brings the types back") {
        host.node.unbind(kL4);
        CHECK(sequence(host.uevents.drain()) ==
              fmt::format("remove vfio {1}; unbind mdev {0}; remove mdev {0}; unbind pci 0000:e1:00.0",
                          kVgpu1, group));
        CHECK_FALSE(files::exists(host.node.pathOf(kL4) + "/mdev_supported_types"));
        CHECK_FALSE(files::exists(host.sys("class/mdev_bus/" + kL4)));

        host.node.bind(kL4, "nvidia");
        CHECK(sequence(host.uevents.drain()) == "bind pci 0000:e1:00.0");
        CHECK(files::text(type + "/available_instances") == "2\n");
        CHECK(files::text(type + "/name") == "NVIDIA L4-1Q\n");
    }

    SUBCASE("unplugging the GPU removes its vGPUs first") {
        host.node.removePciFunction(kL4);
        CHECK(sequence(host.uevents.drain()) ==
              fmt::format("remove vfio {1}; unbind mdev {0}; remove mdev {0}; "
                          "unbind pci 0000:e1:00.0; remove pci 0000:e1:00.0",
                          kVgpu1, group));
        CHECK(files::list(host.sys("bus/mdev/devices")).empty());
        CHECK_FALSE(files::exists(host.sys("kernel/iommu_groups/50")));
    }
}

TEST_CASE("vGPU types need a host driver") {
    NodeWithMonitor host;
    host.node.addGpu(kT4, kT4Id, 12, 0);
    CHECK_THROWS_WITH_AS(host.node.addVgpuType(kT4, "nvidia-222", "GRID T4-1Q", 16),
                         doctest::Contains("must be bound to a host driver"), std::runtime_error);
}

TEST_CASE("a /dev/vfio node can vanish and come back under the daemon") {
    NodeWithMonitor host;
    host.node.addGpu(kT4, kT4Id, 12, 0);
    host.uevents.drain();

    host.node.deleteVfioNode(12);
    const auto removed = host.uevents.drain();
    CHECK(sequence(removed) == "remove vfio 12");
    CHECK_FALSE(files::exists(host.dev("vfio/12")));
    CHECK_FALSE(files::exists(host.sys("devices/virtual/vfio/12")));

    host.node.createVfioNode(12);
    CHECK(sequence(host.uevents.drain()) == "add vfio 12");
    CHECK(files::exists(host.dev("vfio/12")));

    CHECK_THROWS_AS(host.node.deleteVfioNode(99), std::runtime_error);

    // Unbinding after a manual delete must not send a second remove.
    host.node.deleteVfioNode(12);
    host.uevents.drain();
    host.node.unbind(kT4);
    CHECK(sequence(host.uevents.drain()) == "unbind pci 0000:65:00.0");
}

TEST_CASE("attributes change silently; AER recovery arrives as a change uevent") {
    NodeWithMonitor host;
    host.node.addGpu(kT4, kT4Id, 12, 0);
    host.uevents.drain();
    const std::string uevent = files::text(host.node.pathOf(kT4) + "/uevent");

    host.node.setAttribute(kT4, "power_state", "D3cold\n");
    CHECK(files::text(host.node.pathOf(kT4) + "/power_state") == "D3cold\n");
    CHECK(host.uevents.drain().empty());

    host.node.sendChange(kT4, {{"ERROR_EVENT", "BEGIN_RECOVERY"}, {"DEVICE_ONLINE", "0"}});
    const auto events = host.uevents.drain();
    REQUIRE(sequence(events) == "change pci 0000:65:00.0");
    CHECK(events[0].property("ERROR_EVENT") == "BEGIN_RECOVERY");
    CHECK(events[0].property("DEVICE_ONLINE") == "0");
    CHECK(events[0].property("PCI_SLOT_NAME") == kT4);
    // The recovery properties belong to that event only.
    CHECK(files::text(host.node.pathOf(kT4) + "/uevent") == uevent);

    CHECK_THROWS_AS(host.node.setAttribute(kT4, "../escape", "x"), std::runtime_error);
    CHECK_THROWS_AS(host.node.sendChange(kT4, {{"bad key", "x"}}), std::runtime_error);
    CHECK_THROWS_AS(host.node.setAttribute("0000:99:00.0", "power_state", "D0\n"), std::runtime_error);
}

TEST_CASE("with iommufd, VFIO functions get a vfio-dev cdev and /dev/iommu exists") {
    NodeWithMonitor host(SimNodeOptions{.iommufd = true}, {"pci", "vfio", "vfio-dev"});
    CHECK(files::exists(host.dev("iommu")));
    host.node.addGpu(kT4, kT4Id, 12, 0);
    host.node.addGpu("0000:ca:00.0", 0x20f1, 40, 1);
    CHECK(sequence(host.uevents.drain()) ==
          "add pci 0000:65:00.0; add vfio 12; add vfio-dev vfio0; bind pci 0000:65:00.0; "
          "add pci 0000:ca:00.0; add vfio 40; add vfio-dev vfio1; bind pci 0000:ca:00.0");
    CHECK(files::exists(host.node.pathOf(kT4) + "/vfio-dev/vfio0"));
    CHECK(files::exists(host.dev("vfio/devices/vfio0")));
    CHECK(files::exists(host.dev("vfio/devices/vfio1")));

    host.node.unbind(kT4);
    CHECK(sequence(host.uevents.drain()) ==
          "remove vfio-dev vfio0; remove vfio 12; unbind pci 0000:65:00.0");
    CHECK_FALSE(files::exists(host.node.pathOf(kT4) + "/vfio-dev"));
    CHECK_FALSE(files::exists(host.dev("vfio/devices/vfio0")));

    // The lowest free index is reused, as the kernel's IDA does.
    host.node.bind(kT4, "vfio-pci");
    CHECK(files::exists(host.node.pathOf(kT4) + "/vfio-dev/vfio0"));
}

TEST_CASE("an explicit vfio-dev index works without iommufd") {
    NodeWithMonitor host;
    PciFunctionSpec spec{.address = kT4, .device = kT4Id, .driver = "vfio-pci", .iommuGroup = 12, .vfioDevIndex = 7};
    host.node.addPciFunction(spec);
    CHECK(files::exists(host.node.pathOf(kT4) + "/vfio-dev/vfio7"));
    CHECK(files::exists(host.dev("vfio/devices/vfio7")));
    CHECK_FALSE(files::exists(host.dev("iommu")));
}

TEST_CASE("kernel emulation turns writes to create and remove into vGPUs") {
    NodeWithMonitor host;
    addL4WithVgpuTypes(host.node, 4);
    std::mutex reportMutex;
    std::vector<std::string> reports;
    host.node.setReporter([&](const std::string &line) {
        std::lock_guard lock(reportMutex);
        reports.push_back(line);
    });
    host.node.startKernelEmulation();
    host.uevents.drain();
    const std::string create = host.typeDir(kL4, "nvidia-592") + "/create";

    files::write(create, kVgpu1 + "\n");
    const auto created = host.uevents.take(3);
    const int group = host.node.iommuGroupOf(kVgpu1).value();
    CHECK(sequence(created) == fmt::format("add mdev {0}; add vfio {1}; bind mdev {0}", kVgpu1, group));
    CHECK(find(created, "bind mdev " + kVgpu1).driver == "nvidia-vgpu-vfio");
    {
        std::lock_guard lock(reportMutex);
        CHECK(reports.back() == "vgpu created uuid=" + kVgpu1 + " type=nvidia-592 parent=0000:e1:00.0");
    }

    // Garbage is ignored and the emulation carries on.
    files::write(create, "not-a-uuid\n");
    CHECK(host.uevents.drain(300ms).empty());
    files::write(create, kVgpu1 + "\n"); // taken already
    CHECK(host.uevents.drain(300ms).empty());
    files::write(host.node.pathOf(kVgpu1) + "/remove", "yes\n");
    CHECK(host.uevents.drain(300ms).empty());

    files::write(host.node.pathOf(kVgpu1) + "/remove", "1\n");
    CHECK(sequence(host.uevents.take(3)) ==
          fmt::format("remove vfio {1}; unbind mdev {0}; remove mdev {0}", kVgpu1, group));
    CHECK(host.node.vgpus().empty());

    // Types and vGPUs that appear later are watched as well.
    host.node.addVgpuType(kL4, "nvidia-594", "NVIDIA L4-4Q", 1);
    files::write(host.typeDir(kL4, "nvidia-594") + "/create", kVgpu2);
    CHECK(host.uevents.take(3).size() == 3);
    CHECK(host.node.vgpus() == std::vector<std::string>{kVgpu2});
    const std::string made = host.node.createVgpu(kL4, "nvidia-592");
    host.uevents.drain();
    files::write(host.node.pathOf(made) + "/remove", "1");
    CHECK(host.uevents.take(3).size() == 3);
    CHECK(host.node.vgpus() == std::vector<std::string>{kVgpu2});

    // After a rebind of the host driver the recreated type directories are watched again.
    host.node.unbind(kL4);
    host.node.bind(kL4, "nvidia");
    host.uevents.drain();
    files::write(create, kVgpu1);
    CHECK(host.uevents.take(3).size() == 3);

    host.node.stopKernelEmulation();
    files::write(host.node.pathOf(kVgpu1) + "/remove", "1");
    CHECK(host.uevents.drain(300ms).empty());
    CHECK(host.node.vgpus() == std::vector<std::string>{kVgpu1});
}

TEST_CASE("verbs from several threads and the emulation thread do not trip over each other") {
    NodeWithMonitor host;
    addL4WithVgpuTypes(host.node, 40);
    host.node.addGpu(kT4, kT4Id, 12, 0);
    host.node.startKernelEmulation();
    host.uevents.drain();
    const std::string create = host.typeDir(kL4, "nvidia-592") + "/create";

    std::atomic<int> failures{0};
    std::thread creator([&] {
        for (int i = 0; i < 10; ++i) {
            try {
                host.node.removeVgpu(host.node.createVgpu(kL4, "nvidia-592"));
            } catch (const std::exception &) {
                ++failures;
            }
        }
    });
    std::thread binder([&] {
        for (int i = 0; i < 10; ++i) {
            try {
                host.node.unbind(kT4);
                host.node.bind(kT4, "vfio-pci");
            } catch (const std::exception &) {
                ++failures;
            }
        }
    });
    std::thread writer([&] {
        for (int i = 0; i < 5; ++i) {
            const std::string uuid = fmt::format("00000000-0000-4000-8000-00000000000{}", i);
            files::write(create, uuid);
            // One write at a time: a create file holds one UUID, like the real one.
            for (int wait = 0; wait < 500 && !files::exists(host.sys("bus/mdev/devices/" + uuid)); ++wait)
                std::this_thread::sleep_for(10ms);
        }
    });
    // Read while they run, as a daemon would: the node paces itself to its monitors.
    const auto events = host.uevents.take(10 * 6 + 10 * 4 + 5 * 3, 20s);
    creator.join();
    binder.join();
    writer.join();
    CHECK(failures == 0);
    CHECK(events.size() == 10 * 6 + 10 * 4 + 5 * 3);
    CHECK(host.node.vgpus().size() == 5);
    CHECK(files::text(host.typeDir(kL4, "nvidia-592") + "/available_instances") == "35\n");
    CHECK(files::exists(host.dev("vfio/12")));
}

TEST_CASE("a monitor that stops reading delays the node, then misses events, but never kills it") {
    NodeWithMonitor host(SimNodeOptions{.monitorPatience = 50ms});
    host.node.addGpu(kT4, kT4Id, 12, 0, "");
    // Each unbind/bind pair is two events; twenty of them overflow any unread queue.
    for (int i = 0; i < 10; ++i) {
        host.node.bind(kT4, "snd_hda_intel");
        host.node.unbind(kT4);
    }
    const auto events = host.uevents.drain();
    CHECK(events.size() >= 10);
    CHECK(events.size() < 21);
    CHECK(events.front().summary() == "add pci 0000:65:00.0");
    // As from a kernel netlink socket, the loss is reported once, by a read
    // that fails with ENOBUFS.
    CHECK(host.uevents.overflows() == 1);
    // The monitor hears new events again once it has caught up.
    host.node.bind(kT4, "vfio-pci");
    CHECK(sequence(host.uevents.drain()) == "add vfio 12; bind pci 0000:65:00.0");
    CHECK(host.uevents.overflows() == 1);
}

TEST_CASE("a reported overflow wakes a monitor whose queue is empty, fails one read with ENOBUFS and leaves "
          "nothing else to read") {
    // A kernel netlink socket that dropped an event is readable at once, even
    // when its reader had emptied the queue just before the drop.
    SimNode node;
    const std::string path = node.rootDir() + "/event99";
    const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    REQUIRE(fd >= 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::snprintf(address.sun_path, sizeof address.sun_path, "%s", path.c_str());
    REQUIRE(bind(fd, reinterpret_cast<const sockaddr *>(&address), sizeof address) == 0);
    auto readable = [fd] {
        pollfd probe{fd, POLLIN, 0};
        return poll(&probe, 1, 0) == 1;
    };
    auto receive = [fd] {
        char buffer[256];
        iovec vector{buffer, sizeof buffer};
        msghdr message{};
        message.msg_iov = &vector;
        message.msg_iovlen = 1;
        errno = 0;
        const ssize_t received = recvmsg(fd, &message, 0);
        return std::make_pair(received, errno);
    };
    CHECK_FALSE(readable());

    reportOverflow(path);
    CHECK(readable());
    CHECK(receive() == std::make_pair(ssize_t{-1}, ENOBUFS));
    CHECK(receive() == std::make_pair(ssize_t{-1}, EAGAIN)); // the wake itself is never read
    CHECK_FALSE(readable());
    close(fd);
}

TEST_CASE("a node removes its sysfs and dev trees when it goes away") {
    std::string root;
    std::string dev;
    {
        SimNode node;
        addL4WithVgpuTypes(node);
        node.createVgpu(kL4, "nvidia-592", kVgpu1);
        node.startKernelEmulation();
        root = node.rootDir();
        dev = node.devRoot();
        CHECK(std::string(std::getenv("UMOCKDEV_DIR") ? std::getenv("UMOCKDEV_DIR") : "") == root);
        CHECK(files::exists(node.sysfsRoot() + "/bus/mdev/devices/" + kVgpu1));
    }
    CHECK_FALSE(files::exists(root));
    CHECK_FALSE(files::exists(dev));
    CHECK(std::getenv("UMOCKDEV_DIR") == nullptr);
}

// --- SR-IOV vGPU and Grace EGM ------------------------------------------------------

namespace {
const std::string kH200 = "0000:41:00.0";
constexpr std::uint16_t kH200Id = 0x2335;

// An H200 on nvidia that can make 4 VFs and offers two profiles.
void addH200(SimNode &node) {
    PciFunctionSpec pf{.address = kH200, .device = kH200Id, .driver = "nvidia", .iommuGroup = 70, .numaNode = 0};
    pf.sriovTotalVfs = 4;
    node.addPciFunction(pf);
    node.addSriovProfile({.pfAddress = kH200, .id = 1414, .name = "NVIDIA H200X-1-18C", .instances = 2});
    node.addSriovProfile({.pfAddress = kH200, .id = 1428, .name = "NVIDIA H200X-141C", .instances = 1});
}
// The kernel emulation acts on a write shortly after it; profile writes send
// no uevent to wait for, so wait for what the write leads to.
template <typename Condition> bool eventually(Condition condition) {
    for (int i = 0; i < 500; ++i) {
        if (condition())
            return true;
        std::this_thread::sleep_for(10ms);
    }
    return condition();
}
} // namespace

TEST_CASE("writing N into sriov_numvfs makes N VFs in the kernel's event order") {
    NodeWithMonitor host({.iommufd = true}, {"pci", "vfio", "vfio-dev"});
    addH200(host.node);
    host.uevents.drain();

    CHECK(host.node.setNumVfs(kH200, 2) == std::vector<std::string>{"0000:41:00.4", "0000:41:00.5"});
    const auto events = host.uevents.drain();
    CHECK(sequence(events) == "add pci 0000:41:00.4; change pci 0000:41:00.4; add vfio 71; add vfio-dev vfio0; "
                              "bind pci 0000:41:00.4; "
                              "add pci 0000:41:00.5; change pci 0000:41:00.5; add vfio 72; add vfio-dev vfio1; "
                              "bind pci 0000:41:00.5; change pci 0000:41:00.0");
    const std::string vf = host.sys("bus/pci/devices/0000:41:00.4");
    CHECK(files::text(vf + "/nvidia/current_vgpu_type") == "0\n");
    CHECK(files::text(vf + "/nvidia/creatable_vgpu_types") ==
          "ID    : vGPU Name\n1414  : NVIDIA H200X-1-18C\n1428  : NVIDIA H200X-141C\n");
    CHECK(files::text(vf + "/vendor") == "0x10de\n");
    CHECK(files::text(host.sys("bus/pci/devices/0000:41:00.0/sriov_numvfs")) == "2\n");
    CHECK(files::exists(host.dev("vfio/71")));
    CHECK(files::exists(host.dev("vfio/devices/vfio0")));
    CHECK(files::linkTarget(vf + "/physfn") == "../0000:41:00.0");
    CHECK(files::linkTarget(host.sys("bus/pci/devices/0000:41:00.0/virtfn1")) == "../0000:41:00.5");
    CHECK_THROWS_WITH_AS(host.node.setNumVfs(kH200, 3), doctest::Contains("EBUSY"), std::runtime_error);

    host.node.setNumVfs(kH200, 0);
    CHECK(sequence(host.uevents.drain()) ==
          "remove vfio-dev vfio1; remove vfio 72; unbind pci 0000:41:00.5; remove pci 0000:41:00.5; "
          "remove vfio-dev vfio0; remove vfio 71; unbind pci 0000:41:00.4; remove pci 0000:41:00.4");
    CHECK_FALSE(files::exists(vf));
    CHECK_FALSE(files::exists(host.dev("vfio/71")));
}

TEST_CASE("a profile written into current_vgpu_type sends no uevent and updates the card's catalogs") {
    NodeWithMonitor host({}, {"pci", "vfio"});
    addH200(host.node);
    host.uevents.drain();
    host.node.setNumVfs(kH200, 2);
    host.node.startKernelEmulation();
    host.uevents.drain();
    const std::string vf4 = host.sys("bus/pci/devices/0000:41:00.4/nvidia");
    const std::string vf5 = host.sys("bus/pci/devices/0000:41:00.5/nvidia");

    // As `echo 1428 > current_vgpu_type`: the emulation acts on the write.
    files::write(vf4 + "/current_vgpu_type", "1428\n");
    CHECK(eventually([&] { return files::text(vf5 + "/creatable_vgpu_types").find("1428") == std::string::npos; }));
    CHECK(files::text(vf4 + "/current_vgpu_type") == "1428\n");
    CHECK(files::text(vf4 + "/creatable_vgpu_types") == "ID    : vGPU Name\n");
    CHECK(files::text(vf5 + "/creatable_vgpu_types") == "ID    : vGPU Name\n1414  : NVIDIA H200X-1-18C\n");

    // The driver refuses a second profile over the first (EPERM) and the file keeps its value.
    CHECK_THROWS_WITH_AS(host.node.setVgpuProfile("0000:41:00.4", 1414), doctest::Contains("EPERM"),
                         std::runtime_error);
    CHECK(files::text(vf4 + "/current_vgpu_type") == "1428\n");
    host.node.setVgpuProfile("0000:41:00.4", 0);
    CHECK(files::text(vf5 + "/creatable_vgpu_types").find("1428") != std::string::npos);
    CHECK(host.uevents.drain().empty());
    host.node.stopKernelEmulation();
}

TEST_CASE("EGM regions appear with their node and either sysfs layout; a GPU may join silently") {
    NodeWithMonitor host({}, {"egm"});
    host.node.addEgmRegion({.name = "egm4", .gpus = {"0009:01:00.0"}});
    host.node.addEgmRegion({.name = "egm5", .gpus = {"0019:01:00.0"}, .linkLayout = true, .deviceNode = false});
    CHECK(sequence(host.uevents.drain()) == "add egm egm4; add egm egm5");
    CHECK(files::text(host.sys("class/egm/egm4/gpu_devices")) == "0009:01:00.0\n");
    CHECK(files::isLink(host.sys("class/egm/egm5/0019:01:00.0")));
    CHECK(files::exists(host.dev("egm4")));
    CHECK_FALSE(files::exists(host.dev("egm5")));

    host.node.addEgmGpu("egm4", "0009:02:00.0");
    CHECK(files::text(host.sys("class/egm/egm4/gpu_devices")) == "0009:01:00.0\n0009:02:00.0\n");
    CHECK(host.uevents.drain().empty());
}
