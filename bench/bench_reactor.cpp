// Reactor benchmark: runs the plugin binary against a simulated node and the
// test kubelet and prints how fast changes reach the kubelet, how fast the
// plugin starts, how much memory it holds and how often its loop wakes up when
// nothing happens, each beside its target; and the floor: the same hot-add
// lists written by a bare gRPC server (floor_server.cpp). Not a pass/fail
// test: it prints a table (see README).
#include "daemon_process.h"
#include "sim_node.h"
#include "temp_tree.h"
#include "test_kubelet.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#ifndef KVGPU_DEMO_NODE
#define KVGPU_DEMO_NODE "tests/support/node/demo-node.conf"
#endif

using namespace kvgpu::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

const char *kPciIds = "10de  NVIDIA Corporation\n"
                      "\t1eb8  TU104GL [Tesla T4]\n"
                      "\t20f1  GA100 [A100 PCIe 40GB]\n"
                      "\t26b9  AD102GL [L40S]\n"
                      "\t27b8  AD104GL [L4]\n";
const std::string kA100 = "nvidia.com/GA100_A100_PCIE_40GB";
const std::string kL4x1Q = "nvidia.com/NVIDIA_L4-1Q";
const std::string kFloor = "nvidia.com/FLOOR";
const std::vector<std::string> kResources = {"nvidia.com/TU104GL_TESLA_T4", kA100, "nvidia.com/AD102GL_L40S",
                                             kL4x1Q, "nvidia.com/NVIDIA_L4-2Q"};
// The demo's node (scripts/demo.sh), and its resources.
const std::vector<std::string> kDemoResources = {"nvidia.com/TU104GL_TESLA_T4", kA100, kL4x1Q,
                                                 "nvidia.com/NVIDIA_L4-2Q", "nvidia.com/NVIDIA_H200X-1-18C"};

// 16 passthrough GPUs (4 T4, 4 L40S, 8 A100 over two NUMA nodes) and `parents`
// L4s carrying vGPU types: five resources.
std::string describeNode(int parents, int instancesPerType)
{
    std::string d;
    for (int i = 0; i < 16; ++i) {
        int bus = 0x10 + i;
        d += fmt::format("gpu 0000:{:02x}:00.0 id=10de:{} group={} numa={} parent=pci0000:{:02x}\n", bus,
                         i < 4 ? "1eb8" : i < 8 ? "26b9" : "20f1", 100 + i, i % 2, bus);
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

// Watches what the kubelet reads, for every phase of the benchmark. Installed
// once (the kubelet's hook runs on its stream threads, so the watcher lives as
// long as the kubelet).
class KubeletWatch {
public:
    explicit KubeletWatch(TestKubelet &kubelet)
    {
        kubelet.onUpdate([this](const std::string &resource, const TestKubelet::Update &update) {
            std::lock_guard lock(mutex_);
            if (resource == resource_ && !seen_)
                for (const auto &d : update.devices)
                    if (d.id == id_ && d.health == health_) {
                        seen_ = update.at;
                        cv_.notify_all();
                    }
            if (armed_.count(resource)) {
                Reads &r = reads_[resource];
                if (r.count++ == 0)
                    r.first = update.at;
                r.last = update.at;
                r.size = update.devices.size();
                cv_.notify_all();
            }
        });
    }

    // Waits for a message in which `id` of `resource` has `health`.
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

    // Counts the messages of these resources from now on.
    struct Reads {
        int count = 0;
        Clock::time_point first, last;
        size_t size = 0;
    };
    void arm(std::vector<std::string> resources)
    {
        std::lock_guard lock(mutex_);
        armed_ = std::set<std::string>(resources.begin(), resources.end());
        reads_.clear();
    }
    // Waits until `done` holds for the reads since arm().
    std::optional<std::map<std::string, Reads>>
    waitReads(const std::function<bool(const std::map<std::string, Reads> &)> &done, std::chrono::milliseconds timeout)
    {
        std::unique_lock lock(mutex_);
        if (!cv_.wait_for(lock, timeout, [&] { return done(reads_); }))
            return std::nullopt;
        return reads_;
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    std::string resource_, id_, health_;
    std::optional<Clock::time_point> seen_;
    std::set<std::string> armed_;
    std::map<std::string, Reads> reads_;
};

// Every armed resource has been read at least once.
bool allRead(const std::map<std::string, KubeletWatch::Reads> &reads, size_t resources)
{
    return reads.size() == resources;
}

Clock::time_point lastFirstRead(const std::map<std::string, KubeletWatch::Reads> &reads)
{
    Clock::time_point t{};
    for (const auto &[name, r] : reads)
        t = std::max(t, r.first);
    return t;
}

// VmRSS and its split: private (this process's alone: its heap, stacks, the
// pages of its binary it touched) against shared (library pages other
// processes may map too); anonymous against file-backed.
struct Memory {
    long rssKiB = -1, privateKiB = 0, sharedKiB = 0, anonKiB = -1, fileKiB = -1;
};

std::optional<long> field(const std::string &line, const char *key)
{
    size_t n = std::strlen(key);
    if (line.compare(0, n, key) != 0)
        return std::nullopt;
    return std::stol(line.substr(n));
}

Memory memoryOf(pid_t pid)
{
    Memory m;
    std::ifstream status(fmt::format("/proc/{}/status", pid));
    for (std::string line; std::getline(status, line);) {
        if (auto v = field(line, "VmRSS:"))
            m.rssKiB = *v;
        if (auto v = field(line, "RssAnon:"))
            m.anonKiB = *v;
        if (auto v = field(line, "RssFile:"))
            m.fileKiB = *v;
    }
    std::ifstream rollup(fmt::format("/proc/{}/smaps_rollup", pid));
    for (std::string line; std::getline(rollup, line);) {
        for (const char *key : {"Private_Clean:", "Private_Dirty:"})
            if (auto v = field(line, key))
                m.privateKiB += *v;
        for (const char *key : {"Shared_Clean:", "Shared_Dirty:"})
            if (auto v = field(line, key))
                m.sharedKiB += *v;
    }
    return m;
}

std::string mib(long kib) { return fmt::format("{:.1f} MiB", static_cast<double>(kib) / 1024.0); }

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
    std::printf("%-68s %-36s %s\n", what.c_str(), value.c_str(), target.c_str());
    std::fflush(stdout);
}

std::string latency(const Stats &s)
{
    return fmt::format("p50 {:.3f}  p99 {:.3f}  max {:.3f} ms", s.pct(50), s.pct(99), s.max());
}


std::string ratio(const Stats &ours, const Stats &floor)
{
    auto r = [](double a, double b) { return b > 0 ? a / b : 0.0; };
    return fmt::format("p50 {:.2f}x  p99 {:.2f}x", r(ours.pct(50), floor.pct(50)), r(ours.pct(99), floor.pct(99)));
}

void removeSockets(const std::string &dir)
{
    for (const auto &entry : std::filesystem::directory_iterator(dir))
        if (entry.is_socket())
            std::filesystem::remove(entry.path());
}

void memoryRows(const std::string &where, const Memory &m, const std::string &target, int threads)
{
    row(fmt::format("RSS after start-up ({})", where), mib(m.rssKiB), target);
    row("  private / shared", fmt::format("{} / {}", mib(m.privateKiB), mib(m.sharedKiB)),
        "(shared: pages other processes may map too)");
    row("  anonymous / file-backed", fmt::format("{} / {}", mib(m.anonKiB), mib(m.fileKiB)),
        fmt::format("(anonymous: heap and stacks; {} threads)", threads));
}

// Stops a daemon the way the kubelet's pod would, so that it removes its sockets.
void stopDaemon(DaemonProcess &daemon)
{
    daemon.signal(SIGTERM);
    daemon.waitExit(5s);
}

// The floor server (floor_server.cpp), fed one byte per message on its stdin.
class FloorServer {
public:
    FloorServer(const std::string &pluginDir, const std::string &listsFile)
    {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0)
            throw std::runtime_error("pipe2 failed");
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, fds[0], STDIN_FILENO);
        std::string binary = binaryPath();
        std::vector<std::string> args = {binary, pluginDir, kFloor, listsFile};
        std::vector<char *> argv;
        for (std::string &a : args)
            argv.push_back(a.data());
        argv.push_back(nullptr);
        // Without the umockdev preload: the floor reads no simulated device.
        std::vector<char *> envp;
        for (char **e = environ; *e; ++e)
            if (std::strncmp(*e, "LD_PRELOAD=", 11) != 0)
                envp.push_back(*e);
        envp.push_back(nullptr);
        int failed = posix_spawn(&pid_, binary.c_str(), &actions, nullptr, argv.data(), envp.data());
        posix_spawn_file_actions_destroy(&actions);
        ::close(fds[0]);
        trigger_ = fds[1];
        if (failed != 0)
            throw std::runtime_error("cannot start " + binary);
    }
    ~FloorServer()
    {
        ::close(trigger_); // EOF: the server stops
        int status = 0;
        ::waitpid(pid_, &status, 0);
    }
    FloorServer(const FloorServer &) = delete;
    FloorServer &operator=(const FloorServer &) = delete;

    bool sendNext() { return ::write(trigger_, "x", 1) == 1; }

    // $KVGPU_FLOOR_BINARY, or the one next to this benchmark.
    static std::string binaryPath()
    {
        if (const char *path = std::getenv("KVGPU_FLOOR_BINARY"))
            return path;
        return (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "bench-floor-server").string();
    }

private:
    pid_t pid_ = -1;
    int trigger_ = -1;
};

} // namespace

int main(int argc, char **argv)
{
    int hotAdds = 1000, healthFlips = 200, groupFlips = 100, restarts = 20, vgpusAtStart = 1024, idleSeconds = 10,
        starts = 5;
    std::string demoNode = KVGPU_DEMO_NODE, demoPciIds = "/usr/share/misc/pci.ids";
    CLI::App app{"Reactor benchmark: latency from node events to the kubelet, start-up, memory, idle wake-ups"};
    app.add_option("--hot-adds", hotAdds, "vGPU hot-adds to time")->capture_default_str();
    app.add_option("--health-flips", healthFlips, "/dev/vfio node deletions to time")->capture_default_str();
    app.add_option("--group-flips", groupFlips, "group member rebinds to time")->capture_default_str();
    app.add_option("--restarts", restarts, "kubelet restarts to time")->capture_default_str();
    app.add_option("--starts", starts, "plugin start-ups to time on each node")->capture_default_str();
    app.add_option("--vgpus", vgpusAtStart, "vGPUs on the node for the start-up run")->capture_default_str();
    app.add_option("--idle-seconds", idleSeconds, "idle period for counting loop wake-ups")->capture_default_str();
    app.add_option("--demo-node", demoNode, "node description of the demo's node")->capture_default_str();
    app.add_option("--demo-pci-ids", demoPciIds, "pci.ids the plugin reads on the demo node (the demo's default)")
        ->capture_default_str();
    CLI11_PARSE(app, argc, argv);
    starts = std::max(starts, 1);

    TempTree files;
    files.write("pci.ids", kPciIds);
    files.mkdir("plugins");
    files.mkdir("demo-plugins");
    const std::string pluginDir = files.path("plugins");
    if (::access(demoPciIds.c_str(), R_OK) != 0)
        demoPciIds = files.path("pci.ids");

    std::printf("%-68s %-36s %s\n", "measurement", "result", "target");

    // The demo's node: process start → every resource registered and listed; RSS.
    {
        auto node = SimNode::fromDescriptionFile(demoNode);
        TestKubelet kubelet(files.path("demo-plugins"));
        kubelet.start();
        KubeletWatch watch(kubelet);
        std::vector<std::string> flags = {"--sysfs-root", node->sysfsRoot(), "--dev-root", node->devRoot(),
                                          "--plugin-dir", files.path("demo-plugins"), "--pci-ids", demoPciIds,
                                          "--log-level", "warn", "--probe-port", "0"};
        Stats registered, listed;
        for (int i = 0; i < starts; ++i) {
            size_t before = kubelet.registrations().size();
            watch.arm(kDemoResources);
            auto t0 = Clock::now();
            DaemonProcess plugin(pluginBinary(), flags, files.path("demo.log"));
            auto reads = watch.waitReads([&](const auto &r) { return allRead(r, kDemoResources.size()); }, 10s);
            if (!reads)
                return std::fprintf(stderr, "demo node: not every resource listed:\n%s\n", plugin.log().c_str()), 1;
            auto regs = kubelet.registrations();
            if (regs.size() < before + kDemoResources.size())
                return std::fprintf(stderr, "demo node: not every resource registered\n"), 1;
            registered.ms.push_back(msSince(t0, regs.back().at));
            listed.ms.push_back(msSince(t0, lastFirstRead(*reads)));
            if (i + 1 == starts) {
                std::this_thread::sleep_for(500ms);
                row(fmt::format("demo node: process start → all {} registered ({}x)", kDemoResources.size(), starts),
                    latency(registered), "p50 ≤ 20 ms");
                row(fmt::format("demo node: process start → all {} listed ({}x)", kDemoResources.size(), starts),
                    latency(listed), "");
                memoryRows("demo node", memoryOf(plugin.pid()), "≤ 12 MiB", plugin.threads());
            }
            stopDaemon(plugin);
        }
        kubelet.stop();
    }

    int parents = 8;
    int perParent = (vgpusAtStart + parents - 1) / parents;
    auto node = SimNode::fromDescription(describeNode(parents, perParent + hotAdds));
    for (int i = 0; i < vgpusAtStart; ++i)
        node->createVgpu(fmt::format("0000:{:02x}:00.0", 0x80 + i % parents), i % 2 ? "nvidia-593" : "nvidia-592");

    TestKubelet kubelet(pluginDir);
    kubelet.start();
    KubeletWatch waiter(kubelet);
    std::vector<std::string> flags = {"--sysfs-root", node->sysfsRoot(), "--dev-root", node->devRoot(),
                                      "--plugin-dir", pluginDir, "--pci-ids", files.path("pci.ids"),
                                      "--log-level", "warn", "--probe-port", "0",
                                      "--metrics-port", "0"};

    // Start-up: fork → every resource's complete list read by the kubelet. The
    // last plugin started serves the rest of the benchmark.
    const size_t expectedDevices = 17 + static_cast<size_t>(vgpusAtStart);
    auto complete = [&](const std::map<std::string, KubeletWatch::Reads> &reads) {
        size_t n = 0;
        for (const auto &[name, r] : reads)
            n += r.size;
        return reads.size() == kResources.size() && n == expectedDevices;
    };
    Stats startup;
    std::unique_ptr<DaemonProcess> daemon;
    for (int i = 0; i < starts; ++i) {
        if (daemon)
            stopDaemon(*daemon);
        waiter.arm(kResources);
        auto t0 = Clock::now();
        daemon = std::make_unique<DaemonProcess>(pluginBinary(), flags, files.path("plugin.log"));
        auto reads = waiter.waitReads(complete, 30s);
        if (!reads)
            return std::fprintf(stderr, "plugin never listed every device:\n%s\n", daemon->log().c_str()), 1;
        Clock::time_point t1{};
        for (const auto &[name, r] : *reads)
            t1 = std::max(t1, r.last);
        startup.ms.push_back(msSince(t0, t1));
    }
    DaemonProcess &plugin = *daemon;
    row(fmt::format("process start → full ListAndWatch ({} devices, {}x)", expectedDevices, starts), latency(startup),
        "p50 ≤ 30 ms");
    std::this_thread::sleep_for(500ms);
    memoryRows(fmt::format("{} devices", expectedDevices), memoryOf(plugin.pid()), "≤ 14 MiB", plugin.threads());

    long before = loopContextSwitches(plugin.pid());
    std::this_thread::sleep_for(std::chrono::seconds(idleSeconds));
    long after = loopContextSwitches(plugin.pid());
    row(fmt::format("loop thread wake-ups in {} s idle", idleSeconds), std::to_string(after - before), "0");

    // What the kubelet holds before the hot-adds: the floor's first list.
    const std::vector<TestKubelet::Device> listBefore =
        kubelet.latest(kL4x1Q).value_or(std::vector<TestKubelet::Device>{});
    std::vector<std::string> added;

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
        added.push_back(uuid);
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
    row(fmt::format("vGPU bind uevent sent → ListAndWatch read ({}x, {}→{} devices)", hotAdds, listBefore.size(),
                    listBefore.size() + added.size()),
        latency(fromBind), "p50 ≤ 0.3, p99 ≤ 1 ms");
    row(fmt::format("vGPU first uevent (mdev add) sent → read ({}x)", hotAdds), latency(fromAdd),
        "(includes the simulator's work between the three events)");

    // The floor: a bare gRPC server writes the very same lists, serialised
    // before the clock starts, to the same kubelet; timed from the byte that
    // tells it to write (the uevent's counterpart) to the kubelet's read.
    Stats floor;
    {
        std::string lists = fmt::format("{}\n", listBefore.size());
        for (const TestKubelet::Device &d : listBefore)
            lists += fmt::format("{} {} {}\n", d.id, d.health, d.numaNodes.empty() ? -1 : d.numaNodes.front());
        for (const std::string &id : added)
            lists += id + "\n";
        files.write("floor-lists", lists);
        waiter.arm({kFloor});
        FloorServer server(pluginDir, files.path("floor-lists"));
        if (!waiter.waitReads([](const auto &r) { return r.size() == 1; }, 30s))
            return std::fprintf(stderr, "the floor server never listed its devices\n"), 1;
        for (int i = 0; i < static_cast<int>(added.size()); ++i) {
            auto start = Clock::now();
            if (!server.sendNext())
                return std::fprintf(stderr, "the floor server stopped\n"), 1;
            auto reads = waiter.waitReads(
                [&](const auto &r) { return r.count(kFloor) && r.at(kFloor).count == i + 2; }, 5s);
            if (!reads)
                return std::fprintf(stderr, "the floor server's list %d never arrived\n", i + 1), 1;
            floor.ms.push_back(msSince(start, reads->at(kFloor).last));
        }
    }
    row(fmt::format("floor: bare gRPC server, same lists pre-serialised ({}x)", floor.ms.size()), latency(floor), "");
    row("hot-add latency / floor", ratio(fromBind, floor), "p50 ≤ 1.3x, p99 ≤ 2x");

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
    // viable; unbinding it makes the group viable again. Timed from the first
    // uevent the rebind sends (the daemon may act on any of them: each re-reads
    // the group).
    Stats toUnhealthy, toHealthy;
    const std::string gpu = "0000:30:00.0", audio = "0000:30:00.1", kT4 = "nvidia.com/TU104GL_TESLA_T4";
    std::optional<Clock::time_point> memberEvent;
    node->setUeventHook([&](const std::string &devpath, const std::string &) {
        if (devpath.size() >= audio.size() && devpath.compare(devpath.size() - audio.size(), audio.size(), audio) == 0) {
            std::lock_guard lock(sentMutex);
            if (!memberEvent)
                memberEvent = Clock::now();
        }
    });
    node->unbind(audio); // from vfio-pci: the group stays viable
    auto firstMemberEvent = [&] {
        std::lock_guard lock(sentMutex);
        return memberEvent.value_or(Clock::now());
    };
    auto forgetMemberEvent = [&] {
        std::lock_guard lock(sentMutex);
        memberEvent.reset();
    };
    for (int i = 0; i < groupFlips; ++i) {
        waiter.expect(kT4, gpu, "Unhealthy");
        forgetMemberEvent();
        node->bind(audio, "snd_hda_intel");
        auto seen = waiter.wait(5s);
        if (!seen)
            return std::fprintf(stderr, "Unhealthy never reached the kubelet\n"), 1;
        toUnhealthy.ms.push_back(msSince(firstMemberEvent(), *seen));
        waiter.expect(kT4, gpu, "Healthy");
        forgetMemberEvent();
        node->unbind(audio);
        seen = waiter.wait(5s);
        if (!seen)
            return std::fprintf(stderr, "Healthy never reached the kubelet\n"), 1;
        toHealthy.ms.push_back(msSince(firstMemberEvent(), *seen));
    }
    node->setUeventHook(nullptr);
    row(fmt::format("audio bound to snd_hda_intel → Unhealthy read ({}x)", groupFlips), latency(toUnhealthy), "");
    row(fmt::format("audio unbound from it → Healthy read ({}x)", groupFlips), latency(toHealthy), "");

    // Kubelet restart (kubelet.sock re-created, our sockets deleted, as the
    // kubelet does) → every resource registered again and its list read.
    Stats relisted;
    for (int i = 0; i < restarts; ++i) {
        kubelet.stop();
        removeSockets(pluginDir);
        waiter.arm(kResources);
        auto start = Clock::now();
        kubelet.start();
        auto reads = waiter.waitReads([&](const auto &r) { return allRead(r, kResources.size()); }, 10s);
        if (!reads)
            return std::fprintf(stderr, "not every resource re-listed:\n%s\n", plugin.log().c_str()), 1;
        relisted.ms.push_back(msSince(start, lastFirstRead(*reads)));
    }
    row(fmt::format("kubelet restart → all {} resources re-listed ({}x)", kResources.size(), restarts),
        latency(relisted), "p50 ≤ 5, p99 ≤ 20 ms");
    return 0;
}
