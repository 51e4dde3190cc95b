// The stage for end-to-end stories: a simulated GPU node (umockdev), the test
// kubelet, and the plugin binary running against both, with verbs that read
// like the stories the tests tell.
//
// The test process must run with LD_PRELOAD=libumockdev-preload.so.0 (meson
// sets it); the plugin child inherits it and UMOCKDEV_DIR, so it receives the
// node's uevents.
#pragma once

#include "daemon_process.h"
#include "sim_node.h"
#include "temp_tree.h"
#include "test_kubelet.h"
#include "timeouts.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace kvgpu::test {

using namespace std::chrono_literals;

// Names as our pci.ids below gives them.
inline const std::string kT4 = "nvidia.com/TU104GL_TESLA_T4";
inline const std::string kA100 = "nvidia.com/GA100_A100_PCIE_40GB";
inline const std::string kA100x80 = "nvidia.com/GA100_A100_PCIE_80GB";
inline const std::string kL4x1Q = "nvidia.com/NVIDIA_L4-1Q";
inline const std::string kL4x2Q = "nvidia.com/NVIDIA_L4-2Q";

// Two T4s with their audio functions behind one switch (NUMA 0), an A100 (NUMA
// 1), an L4 on the nvidia driver with two vGPU types (NUMA unknown), and a
// non-NVIDIA device.
inline const char *kStandardNode = R"(
bridge   pci0000:64/0000:64:00.0
bridge   pci0000:64/0000:64:00.0/0000:65:00.0
gpu      0000:67:00.0 id=10de:1eb8 group=20 numa=0 parent=pci0000:64/0000:64:00.0/0000:65:00.0
function 0000:67:00.1 id=10de:10f8 class=0x040300 group=20 numa=0 driver=vfio-pci parent=pci0000:64/0000:64:00.0/0000:65:00.0
gpu      0000:68:00.0 id=10de:1eb8 group=21 numa=0 parent=pci0000:64/0000:64:00.0/0000:65:00.0
function 0000:68:00.1 id=10de:10f8 class=0x040300 group=21 numa=0 driver=vfio-pci parent=pci0000:64/0000:64:00.0/0000:65:00.0
gpu      0000:ca:00.0 id=10de:20f1 group=40 numa=1 parent=pci0000:c9
gpu      0000:e1:00.0 id=10de:27b8 group=50 numa=-1 driver=nvidia parent=pci0000:e0
vgpu-type 0000:e1:00.0 nvidia-592 name="NVIDIA L4-1Q" instances=2400
vgpu-type 0000:e1:00.0 nvidia-593 name="NVIDIA L4-2Q" instances=12
vgpu     aa618089-8b16-4d01-a136-25a0f3c73123 parent=0000:e1:00.0 type=nvidia-592
device   0000:00:1f.3 id=8086:a348 class=0x040300 group=5 driver=snd_hda_intel parent=pci0000:00
)";

inline const char *kPciIds = "10de  NVIDIA Corporation\n"
                             "\t10f8  TU104 HD Audio Controller\n"
                             "\t1eb8  TU104GL [Tesla T4]\n"
                             "\t20b5  GA100 [A100 PCIe 80GB]\n"
                             "\t20f1  GA100 [A100 PCIe 40GB]\n"
                             "\t27b8  AD104GL [L4]\n";

class PluginFixture {
public:
    explicit PluginFixture(const char *description = kStandardNode, SimNodeOptions options = {})
        : node(SimNode::fromDescription(description, options))
    {
        files.write("pci.ids", kPciIds);
        files.mkdir("plugins");
        kubelet = std::make_unique<TestKubelet>(pluginDir());
    }

    std::string pluginDir() const { return files.path("plugins"); }

    std::vector<std::string> flags(std::vector<std::string> extra = {}) const
    {
        std::vector<std::string> f = {"--sysfs-root", node->sysfsRoot(), "--dev-root", node->devRoot(),
                                      "--plugin-dir", pluginDir(), "--pci-ids", files.path("pci.ids"),
                                      "--log-level", "debug", "--probe-port", "0",
                                      "--metrics-port", std::to_string(metricsPort)};
        f.insert(f.end(), extra.begin(), extra.end());
        return f;
    }

    void startPlugin(std::vector<std::string> extra = {})
    {
        plugin = std::make_unique<DaemonProcess>(pluginBinary(), flags(std::move(extra)), files.path("plugin.log"));
    }

    // Waits until the kubelet's newest list for `resource` holds exactly `ids`.
    // Every wait's bound is scaled for the sanitizer stages (timeouts.h). A
    // wait that fails prints what the kubelet holds and the plugin's log.
    bool kubeletSees(const std::string &resource, std::vector<std::string> ids, std::chrono::milliseconds timeout = 5s)
    {
        std::sort(ids.begin(), ids.end());
        bool seen = kubelet->waitFor(
            [&](const TestKubelet &k) {
                auto latest = k.latest(resource);
                if (!latest)
                    return false;
                std::vector<std::string> got;
                for (const auto &d : *latest)
                    got.push_back(d.id);
                std::sort(got.begin(), got.end());
                return got == ids;
            },
            scaled(timeout));
        if (!seen)
            waitFailed(fmt::format("the kubelet's list of {} to be {}", resource, listed(ids)), resource);
        return seen;
    }

    std::optional<std::string> healthOf(const std::string &resource, const std::string &id) const
    {
        auto latest = kubelet->latest(resource);
        if (latest)
            for (const auto &d : *latest)
                if (d.id == id)
                    return d.health;
        return std::nullopt;
    }

    bool kubeletSeesHealth(const std::string &resource, const std::string &id, const std::string &health,
                           std::chrono::milliseconds timeout = 5s)
    {
        bool seen =
            kubelet->waitFor([&](const TestKubelet &) { return healthOf(resource, id) == health; }, scaled(timeout));
        if (!seen)
            waitFailed(fmt::format("{} of {} to be {}", id, resource, health), resource);
        return seen;
    }

    // "[a b c]", or its first ten and how many there are.
    static std::string listed(const std::vector<std::string> &items)
    {
        const size_t shown = std::min<size_t>(items.size(), 10);
        std::string text = fmt::format("[{}", fmt::join(items.begin(), items.begin() + static_cast<long>(shown), " "));
        if (shown < items.size())
            text += fmt::format(" ... ({} in all)", items.size());
        return text + "]";
    }

    // On stderr: what a wait waited for, what the kubelet holds of `resource`,
    // and how the plugin is with the end of its log.
    void waitFailed(const std::string &what, const std::string &resource)
    {
        std::string held = "nothing";
        if (auto latest = kubelet->latest(resource)) {
            std::vector<std::string> devices;
            for (const auto &d : *latest)
                devices.push_back(d.id + "=" + d.health);
            held = listed(devices);
        }
        fmt::print(stderr, "waited in vain for {}; the kubelet holds {}\n{}\n", what, held,
                   plugin ? plugin->report() : std::string("(no plugin started)"));
    }

    std::string log() const { return plugin ? plugin->log() : std::string(); }

    // Sends a uevent that changes nothing (a change of `bystander`, by default
    // the standard node's non-NVIDIA device) and waits until the plugin has
    // published after processing it. Uevents are processed in order, so all
    // the node sent before has then been processed, and what it changed was
    // handed to the kubelet's streams: the way to show that something did not
    // happen without sleeping.
    bool caughtUp(std::chrono::milliseconds timeout = 5s, const std::string &bystander = "0000:00:1f.3")
    {
        const std::string heard = "msg=uevent action=change subsystem=pci device=" + bystander;
        const size_t before = plugin->logCount(heard);
        node->sendChange(bystander, {});
        bool caught = plugin->waitForPublishAfter(heard, scaled(timeout), before);
        if (!caught)
            fmt::print(stderr, "waited in vain for the plugin to process a change of {}\n{}\n", bystander,
                       plugin->report());
        return caught;
    }

    int metricsPort = 0; // off unless a test scrapes
    std::unique_ptr<SimNode> node;
    TempTree files;
    std::unique_ptr<TestKubelet> kubelet;
    std::unique_ptr<DaemonProcess> plugin;
};

} // namespace kvgpu::test
