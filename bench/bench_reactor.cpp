// Reactor benchmark: runs the plugin binary against a simulated node and the
// test kubelet and prints how fast changes reach the kubelet, how fast the
// plugin starts, how much memory it holds and how often its loop wakes up when
// nothing happens. Not a pass/fail test: it prints a table (see README).
#include "daemon_process.h"
#include "sim_node.h"
#include "temp_tree.h"
#include "test_kubelet.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <condition_variable>
#include <map>
#include <tuple>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sys/stat.h>
#include <thread>

using namespace kvgpu::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

const char *kPciIds = "10de  NVIDIA Corporation\n"
                      "\t1eb8  TU104GL [Tesla T4]\n"
                      "\t20f1  GA100 [A100 PCIe 40GB]\n"
                      "\t27b8  AD104GL [L4]\n";
const std::string kA100 = "nvidia.com/GA100_A100_PCIE_40GB";
const std::string kL4x1Q = "nvidia.com/NVIDIA_L4-1Q";

// 16 passthrough GPUs (8 T4, 8 A100 over two NUMA nodes) and `parents` L4s
// carrying vGPU types.
std::string describeNode(int parents, int instancesPerType)
{
    std::string d;
    for (int i = 0; i < 16; ++i) {
        int bus = 0x10 + i;
        d += fmt::format("gpu 0000:{:02x}:00.0 id=10de:{} group={} numa={} parent=pci0000:{:02x}\n", bus,
                         i < 8 ? "1eb8" : "20f1", 100 + i, i % 2, bus);
    }
    // A T4 whose HD audio function shares its IOMMU group (health benchmark).
    d += "gpu 0000:30:00.0 id=10de:1eb8 group=300 numa=0 parent=pci0000:30\n";
    d += "function 0000:30:00.1 id=10de:10f8 class=0x040300 group=300 numa=0 driver=vfio-pci parent=pci0000:30\n";
    for (int p = 0; p < parents; ++p) {
        int bus = 0x80 + p;
        d += fmt::format("gpu 0000:{:02x}:00.0 id=10de:27b8 group={} numa={} driver=nvidia parent=pci0000:{:02x}\n",
                         bus, 200 + p, p % 2, bus);
        d += fmt::format("vgpu-type 0000:{:02x}:00.0 nvidia-592 name=\"NVIDIA L4-1Q\" instances={}\n", bus,
                         instancesPerType);
        d += fmt::format("vgpu-type 0000:{:02x}:00.0 nvidia-593 name=\"NVIDIA L4-2Q\" instances={}\n", bus,
                         instancesPerType);
    }
    return d;
}

struct Stats {
    std::vector<double> ms;
    double pct(double p) const
    {
        if (ms.empty())
            return 0;
        std::vector<double> v = ms;
        std::sort(v.begin(), v.end());
        size_t i = std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * static_cast<double>(v.size())));
        return v[i];
    }
    double max() const { return ms.empty() ? 0 : *std::max_element(ms.begin(), ms.end()); }
};

double msSince(Clock::time_point t0, Clock::time_point t1)
{
    return std::chrono::duration<double, std::milli>(t1 - t0).count();
}

// Waits for the kubelet to read a message in which `id` of `resource` has `health`.
class UpdateWaiter {
public:
    explicit UpdateWaiter(TestKubelet &kubelet)
    {
        kubelet.onUpdate([this](const std::string &resource, const TestKubelet::Update &update) {
            std::lock_guard lock(mutex_);
            if (resource != resource_ || seen_)
                return;
            for (const auto &d : update.devices)
                if (d.id == id_ && d.health == health_) {
                    seen_ = update.at;
                    cv_.notify_all();
                }
        });
    }
    void expect(std::string resource, std::string id, std::string health)
    {
        std::lock_guard lock(mutex_);
        resource_ = std::move(resource);
        id_ = std::move(id);
        health_ = std::move(health);
        seen_.reset();
    }
    std::optional<Clock::time_point> wait(std::chrono::milliseconds timeout)
    {
        std::unique_lock lock(mutex_);
        cv_.wait_for(lock, timeout, [&] { return seen_.has_value(); });
        return seen_;
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    std::string resource_, id_, health_;
    std::optional<Clock::time_point> seen_;
};

// Private memory: what the process alone holds, without the shared library
// pages that RSS also counts.
long privateKiB(pid_t pid)
{
    std::ifstream in(fmt::format("/proc/{}/smaps_rollup", pid));
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("Pss_Anon:", 0) == 0)
            return std::stol(line.substr(9));
    return -1;
}

long loopContextSwitches(pid_t pid)
{
    std::ifstream in(fmt::format("/proc/{}/task/{}/status", pid, pid));
    std::string line;
    long total = 0;
    while (std::getline(in, line))
        if (line.rfind("voluntary_ctxt_switches:", 0) == 0 || line.rfind("nonvoluntary_ctxt_switches:", 0) == 0)
            total += std::stol(line.substr(line.find(':') + 1));
    return total;
}

void row(const std::string &what, const std::string &value, const std::string &target)
{
    std::printf("%-58s %-36s %s\n", what.c_str(), value.c_str(), target.c_str());
    std::fflush(stdout);
}

std::string latency(const Stats &s)
{
    return fmt::format("p50 {:.3f}  p99 {:.3f}  max {:.3f} ms", s.pct(50), s.pct(99), s.max());
}

void removeSockets(const std::string &dir)
{
    for (const auto &entry : std::filesystem::directory_iterator(dir))
        if (entry.is_socket())
            std::filesystem::remove(entry.path());
}

} // namespace

int main(int argc, char **argv)
{
    int hotAdds = 1000, healthFlips = 200, groupFlips = 100, restarts = 20, vgpusAtStart = 1024, idleSeconds = 10;
    CLI::App app{"Reactor benchmark: latency from node events to the kubelet, start-up, memory, idle wake-ups"};
    app.add_option("--hot-adds", hotAdds, "vGPU hot-adds to time")->capture_default_str();
    app.add_option("--health-flips", healthFlips, "/dev/vfio node deletions to time")->capture_default_str();
    app.add_option("--group-flips", groupFlips, "group member rebinds to time")->capture_default_str();
    app.add_option("--restarts", restarts, "kubelet restarts to time")->capture_default_str();
    app.add_option("--vgpus", vgpusAtStart, "vGPUs on the node for the start-up run")->capture_default_str();
    app.add_option("--idle-seconds", idleSeconds, "idle period for counting loop wake-ups")->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    TempTree files;
    files.write("pci.ids", kPciIds);
    files.mkdir("plugins");
    const std::string pluginDir = files.path("plugins");

    int parents = 8;
    int perParent = (vgpusAtStart + parents - 1) / parents;
    auto node = SimNode::fromDescription(describeNode(parents, perParent + hotAdds));
    for (int i = 0; i < vgpusAtStart; ++i)
        node->createVgpu(fmt::format("0000:{:02x}:00.0", 0x80 + i % parents), i % 2 ? "nvidia-593" : "nvidia-592");

    TestKubelet kubelet(pluginDir);
    kubelet.start();
    std::vector<std::string> flags = {"--sysfs-root", node->sysfsRoot(), "--dev-root", node->devRoot(),
                                      "--plugin-dir", pluginDir, "--pci-ids", files.path("pci.ids"),
                                      "--log-level", "warn", "--probe-port", "0"};

    std::printf("%-58s %-36s %s\n", "measurement", "result", "target");

    // Start-up: fork → every resource's first complete list read by the kubelet.
    const size_t expectedDevices = 17 + static_cast<size_t>(vgpusAtStart);
    auto t0 = Clock::now();
    DaemonProcess plugin(pluginBinary(), flags, files.path("plugin.log"));
    bool complete = kubelet.waitFor(
        [&](const TestKubelet &k) {
            size_t n = 0;
            for (const char *r : {"nvidia.com/TU104GL_TESLA_T4", "nvidia.com/GA100_A100_PCIE_40GB",
                                  "nvidia.com/NVIDIA_L4-1Q", "nvidia.com/NVIDIA_L4-2Q"})
                if (auto l = k.latest(r))
                    n += l->size();
            return n == expectedDevices;
        },
        30s);
    auto t1 = Clock::now();
    if (!complete) {
        std::fprintf(stderr, "plugin never listed every device:\n%s\n", plugin.log().c_str());
        return 1;
    }
    row(fmt::format("process start → full ListAndWatch ({} devices)", expectedDevices),
        fmt::format("{:.1f} ms", msSince(t0, t1)), "≤ 100 ms");
    std::this_thread::sleep_for(500ms);
    row("RSS after start-up", fmt::format("{:.1f} MB", static_cast<double>(plugin.rssKiB()) / 1024.0), "≤ 20 MB");
    row("  of which private (anonymous) memory",
        fmt::format("{:.1f} MB", static_cast<double>(privateKiB(plugin.pid())) / 1024.0),
        "(the rest: gRPC, protobuf, libcrypto, libstdc++ pages)");

    long before = loopContextSwitches(plugin.pid());
    std::this_thread::sleep_for(std::chrono::seconds(idleSeconds));
    long after = loopContextSwitches(plugin.pid());
    row(fmt::format("loop thread wake-ups in {} s idle", idleSeconds), std::to_string(after - before), "0");

    UpdateWaiter waiter(kubelet);

    // uevent → ListAndWatch. Creating a vGPU sends three uevents: mdev add,
    // vfio add (its group node), mdev bind; the vGPU is usable, and advertised,
    // after the bind. Timed from the moment each uevent left the simulator to
    // the moment the kubelet read the list with the new vGPU healthy.
    std::mutex sentMutex;
    std::map<std::string, Clock::time_point> sent; // action -> time, for the vGPU being created
    std::string creating;
    node->setUeventHook([&](const std::string &devpath, const std::string &action) {
        std::lock_guard lock(sentMutex);
        bool mine = !creating.empty() && devpath.size() >= creating.size() &&
                    devpath.compare(devpath.size() - creating.size(), creating.size(), creating) == 0;
        if (mine)
            sent.emplace(action, Clock::now());
    });
    Stats fromBind, fromAdd;
    for (int i = 0; i < hotAdds; ++i) {
        std::string uuid = fmt::format("{:08x}-0000-4000-8000-{:012x}", 0xbe000000u + static_cast<unsigned>(i), i);
        {
            std::lock_guard lock(sentMutex);
            creating = uuid;
            sent.clear();
        }
        waiter.expect(kL4x1Q, uuid, "Healthy");
        node->createVgpu("0000:80:00.0", "nvidia-592", uuid);
        auto seen = waiter.wait(5s);
        if (!seen) {
            std::fprintf(stderr, "vGPU %s never reached the kubelet\n", uuid.c_str());
            return 1;
        }
        std::lock_guard lock(sentMutex);
        fromBind.ms.push_back(msSince(sent.at("bind"), *seen));
        fromAdd.ms.push_back(msSince(sent.at("add"), *seen));
    }
    node->setUeventHook(nullptr);
    row(fmt::format("vGPU bind uevent sent → ListAndWatch read ({}x)", hotAdds), latency(fromBind),
        "p50 ≤ 0.5, p99 ≤ 2 ms");
    row(fmt::format("vGPU first uevent (mdev add) sent → read ({}x)", hotAdds), latency(fromAdd),
        "(includes the simulator's work between the three events)");

    // /dev/vfio node deleted → Unhealthy read, and re-created → Healthy read.
    Stats unhealthy, healthy;
    const int group = 108; // the first A100
    const std::string a100 = "0000:18:00.0";
    for (int i = 0; i < healthFlips; ++i) {
        waiter.expect(kA100, a100, "Unhealthy");
        auto start = Clock::now();
        std::filesystem::remove(node->devRoot() + fmt::format("/vfio/{}", group));
        auto seen = waiter.wait(5s);
        if (!seen)
            return std::fprintf(stderr, "Unhealthy never reached the kubelet\n"), 1;
        unhealthy.ms.push_back(msSince(start, *seen));
        waiter.expect(kA100, a100, "Healthy");
        start = Clock::now();
        std::ofstream(node->devRoot() + fmt::format("/vfio/{}", group)).close();
        seen = waiter.wait(5s);
        if (!seen)
            return std::fprintf(stderr, "Healthy never reached the kubelet\n"), 1;
        healthy.ms.push_back(msSince(start, *seen));
    }
    row(fmt::format("/dev/vfio/N deleted → Unhealthy read ({}x)", healthFlips), latency(unhealthy), "");
    row(fmt::format("/dev/vfio/N re-created → Healthy read ({}x)", healthFlips), latency(healthy), "");

    // Health: binding a group member to a host driver makes the GPU's group not
    // viable; unbinding it makes the group viable again. Timed from that uevent.
    Stats toUnhealthy, toHealthy;
    const std::string gpu = "0000:30:00.0", audio = "0000:30:00.1", kT4 = "nvidia.com/TU104GL_TESLA_T4";
    std::map<std::string, Clock::time_point> memberEvent;
    node->setUeventHook([&](const std::string &devpath, const std::string &action) {
        if (devpath.size() >= audio.size() && devpath.compare(devpath.size() - audio.size(), audio.size(), audio) == 0) {
            std::lock_guard lock(sentMutex);
            memberEvent[action] = Clock::now();
        }
    });
    node->unbind(audio); // from vfio-pci: the group stays viable
    for (int i = 0; i < groupFlips; ++i) {
        waiter.expect(kT4, gpu, "Unhealthy");
        node->bind(audio, "snd_hda_intel");
        auto seen = waiter.wait(5s);
        if (!seen)
            return std::fprintf(stderr, "Unhealthy never reached the kubelet\n"), 1;
        {
            std::lock_guard lock(sentMutex);
            toUnhealthy.ms.push_back(msSince(memberEvent.at("bind"), *seen));
        }
        waiter.expect(kT4, gpu, "Healthy");
        node->unbind(audio);
        seen = waiter.wait(5s);
        if (!seen)
            return std::fprintf(stderr, "Healthy never reached the kubelet\n"), 1;
        std::lock_guard lock(sentMutex);
        toHealthy.ms.push_back(msSince(memberEvent.at("unbind"), *seen));
    }
    node->setUeventHook(nullptr);
    row(fmt::format("audio bound to snd_hda_intel → Unhealthy read ({}x)", groupFlips), latency(toUnhealthy), "");
    row(fmt::format("audio unbound from it → Healthy read ({}x)", groupFlips), latency(toHealthy), "");

    // kubelet.sock re-created → every resource registered again.
    Stats reregister;
    for (int i = 0; i < restarts; ++i) {
        kubelet.stop();
        removeSockets(pluginDir);
        size_t count = kubelet.registrations().size();
        auto start = Clock::now();
        kubelet.start();
        if (!kubelet.waitFor([&](const TestKubelet &k) { return k.registrations().size() >= count + 4; }, 10s))
            return std::fprintf(stderr, "re-registration incomplete:\n%s\n", plugin.log().c_str()), 1;
        reregister.ms.push_back(msSince(start, kubelet.registrations().back().at));
    }
    row(fmt::format("kubelet.sock created → all 4 registrations ({}x)", restarts), latency(reregister), "");
    return 0;
}
