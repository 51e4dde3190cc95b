// End to end with bad input on the node: FIFOs where a GPU's vendor file,
// another GPU's health files, a vGPU's type name and pci.ids should be. A
// plain open(2) of any of them would wait for a writer for ever; the plugin
// must instead skip or degrade exactly those, serve everything else, keep
// running its health pass, and stop cleanly on SIGTERM.
#include "daemon_process.h"
#include "odd_files.h"
#include "temp_tree.h"
#include "test_kubelet.h"
#include "timeouts.h"

#include <doctest/doctest.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>

using namespace std::chrono_literals;
using kvgpu::test::DaemonProcess;
using kvgpu::test::FakePci;
using kvgpu::test::Oddity;
using kvgpu::test::TempTree;
using kvgpu::test::TestKubelet;
using kvgpu::test::scaled;

namespace {

// Without a usable pci.ids, a T4 is advertised under its device id.
const std::string kT4ById = "nvidia.com/1eb8";
const std::string kVgpu = "aa618089-8b16-4d01-a136-25a0f3c73123";

using Devices = std::vector<TestKubelet::Device>;

} // namespace

TEST_CASE("FIFOs in place of attributes and of pci.ids: the rest is served and SIGTERM still stops the plugin")
{
    TempTree sys, dev, plugins, files;
    FakePci healthy{.address = "0000:65:00.0", .group = 12, .numa = 0};
    FakePci noVendor{.address = "0000:66:00.0", .group = 13, .numa = 0};
    FakePci noHealthFiles{.address = "0000:67:00.0", .group = 14, .numa = 0};
    FakePci parent{.address = "0000:b1:00.0", .driver = "nvidia", .group = 40, .numa = 0, .parents = "pci0000:b0"};
    for (const FakePci &f : {healthy, noVendor, noHealthFiles, parent})
        addPci(sys, f);
    addMdev(sys, parent, kVgpu, "nvidia-222", std::string("GRID T4-1Q"), 101);
    for (const char *node : {"vfio", "12", "13", "14", "101"})
        dev.write(std::string("vfio/") + node, "");

    replaceWith(sys, devicePath(noVendor) + "/vendor", Oddity::Fifo);
    replaceWith(sys, devicePath(noHealthFiles) + "/config", Oddity::Fifo);
    replaceWith(sys, devicePath(noHealthFiles) + "/power_state", Oddity::Fifo);
    replaceWith(sys, devicePath(parent) + "/mdev_supported_types/nvidia-222/name", Oddity::Fifo);
    replaceWith(files, "pci.ids", Oddity::Fifo);

    TestKubelet kubelet(plugins.root());
    kubelet.start();
    DaemonProcess plugin(kvgpu::test::pluginBinary(),
                         {"--sysfs-root", sys.root(), "--dev-root", dev.root(), "--plugin-dir", plugins.root(),
                          "--pci-ids", files.path("pci.ids"), "--log-level", "debug", "--probe-port", "0",
                          "--metrics-port", "0", "--health-interval", "1"},
                         files.path("plugin.log"));

    // Served: the healthy GPU and the one whose health files cannot be read,
    // under the device id since the names are gone.
    REQUIRE_MESSAGE(kubelet.waitFor(
                        [](const TestKubelet &k) {
                            auto latest = k.latest(kT4ById);
                            return latest && latest->size() == 2;
                        },
                        scaled(10s)),
                    plugin.log());
    CHECK(*kubelet.latest(kT4ById) ==
          Devices{{"0000:65:00.0", "Healthy", {0}}, {"0000:67:00.0", "Healthy", {0}}});
    CHECK_FALSE(kubelet.latest("nvidia.com/GRID_T4-1Q"));

    // Each degradation is in the log with its reason, naming the file.
    std::string log = plugin.log();
    CHECK(log.find("pci.ids database not usable") != std::string::npos);
    CHECK(log.find(files.path("pci.ids") + ": it is a FIFO, not a regular file") != std::string::npos);
    CHECK(log.find("device=0000:66:00.0") != std::string::npos);
    CHECK(log.find("bus/pci/devices/0000:66:00.0/vendor: it is a FIFO") != std::string::npos);
    CHECK(log.find("bus/pci/devices/0000:67:00.0/config: it is a FIFO") != std::string::npos);
    CHECK(log.find(kVgpu + "/mdev_type/name: it is a FIFO") != std::string::npos);

    // The health pass reads the FIFO'd files again, and gets through them.
    REQUIRE_MESSAGE(plugin.waitForLog("health pass done", scaled(5s)), plugin.log());

    plugin.signal(SIGTERM);
    std::optional<int> status = plugin.waitExit(scaled(2s));
    REQUIRE_MESSAGE(status, plugin.log());
    CHECK_MESSAGE(*status == 0, plugin.log());
    for (const auto &entry : std::filesystem::directory_iterator(plugins.root()))
        CHECK(entry.path().filename() == "kubelet.sock");
}
