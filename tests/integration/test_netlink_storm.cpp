// The kernel-netlink suite: the plugin binary reads uevents from a real
// netlink socket, fed through the kernel's own uevent socket of a private
// network namespace (kernel_uevents.h), against a plain-directory node that
// changes in the kernel's order (plain_node.h). The receive buffer is the
// smallest the plugin accepts, so storms overflow it as they would on a busy
// node, and the kubelet must still hold exactly the node's truth at every
// checkpoint, without a SIGHUP.
//
// Skipped (exit 77) where a private network namespace is not allowed.
#include "daemon_process.h"
#include "monitor/uevent_monitor.h"
#include "kernel_uevents.h"
#include "plain_node.h"
#include "temp_tree.h"
#include "test_kubelet.h"
#include "timeouts.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <thread>

using namespace std::chrono_literals;
using namespace kvgpu::test;

namespace {

const std::string kT4 = "nvidia.com/TU104GL_TESLA_T4";
const std::string k1Q = "nvidia.com/GRID_T4-1Q";
const std::string k2Q = "nvidia.com/GRID_T4-2Q";
const std::vector<std::string> kPassthrough = {"0000:65:00.0", "0000:66:00.0", "0000:67:00.0", "0000:68:00.0"};
const std::vector<std::string> kParents = {"0000:b1:00.0", "0000:b2:00.0"};

void requireKernelUevents()
{
    if (std::optional<std::string> why = enterPrivateNetworkNamespace()) {
        std::fprintf(stderr, "SKIP: the kernel-netlink suite needs a private network namespace: %s\n",
                     why->c_str());
        std::fflush(stderr);
        std::_Exit(77);
    }
}

std::set<std::string> socketsIn(const std::string &dir)
{
    std::set<std::string> names;
    for (const auto &entry : std::filesystem::directory_iterator(dir))
        if (entry.is_socket())
            names.insert(entry.path().filename());
    return names;
}

// How often the plugin's log says `needle`.
size_t countInLog(const std::string &log, const std::string &needle)
{
    size_t count = 0;
    for (size_t at = log.find(needle); at != std::string::npos; at = log.find(needle, at + needle.size()))
        ++count;
    return count;
}

// A node with four passthrough T4s and two T4s on the nvidia driver offering
// two vGPU types, a kubelet, and the plugin listening with the smallest
// receive buffer it accepts.
class Stage {
public:
    Stage()
    {
        requireKernelUevents();
        node = std::make_unique<PlainNode>();
        int group = 10;
        for (const std::string &address : kPassthrough)
            node->addGpu(address, group++, "vfio-pci");
        for (const std::string &parent : kParents) {
            node->addGpu(parent, group++, "nvidia");
            node->addVgpuType(parent, "nvidia-222", "GRID T4-1Q");
            node->addVgpuType(parent, "nvidia-223", "GRID T4-2Q");
        }
        files.write("pci.ids", "10de  NVIDIA Corporation\n\t1eb8  TU104GL [Tesla T4]\n");
        files.mkdir("plugins");
        kubelet = std::make_unique<TestKubelet>(files.path("plugins"));
        kubelet->start();
    }

    std::string pluginDir() const { return files.path("plugins"); }

    void startPlugin(const std::string &logLevel = "info")
    {
        plugin = std::make_unique<DaemonProcess>(
            pluginBinary(),
            std::vector<std::string>{"--sysfs-root", node->sysfsRoot(), "--dev-root", node->devRoot(),
                                     "--plugin-dir", pluginDir(), "--pci-ids", files.path("pci.ids"),
                                     "--log-level", logLevel, "--probe-port", "0", "--health-interval", "0",
                                     "--metrics-port", "0",
                                     "--uevent-buffer", "4096"},
            files.path("plugin.log"));
    }

    // The kubelet's newest list of every resource is the node's truth, every
    // device Healthy, and a resource the node no longer has is empty.
    bool kubeletHoldsTheTruth(std::chrono::milliseconds timeout)
    {
        const std::map<std::string, std::set<std::string>> truth = node->expected();
        return kubelet->waitFor(
            [&](const TestKubelet &k) {
                std::set<std::string> resources;
                for (const auto &registration : k.registrations())
                    resources.insert(registration.resource);
                for (const auto &[resource, ids] : truth)
                    if (!resources.contains(resource))
                        return false;
                for (const std::string &resource : resources) {
                    std::optional<std::vector<TestKubelet::Device>> latest = k.latest(resource);
                    std::set<std::string> held;
                    for (const TestKubelet::Device &device : latest.value_or(std::vector<TestKubelet::Device>{})) {
                        if (device.health != "Healthy")
                            return false;
                        held.insert(device.id);
                    }
                    auto expected = truth.find(resource);
                    if (held != (expected == truth.end() ? std::set<std::string>{} : expected->second))
                        return false;
                }
                return true;
            },
            timeout);
    }

    // What the kubelet holds against the truth, for a failure message.
    std::string difference() const
    {
        std::string text;
        for (const auto &[resource, ids] : node->expected()) {
            auto latest = kubelet->latest(resource);
            text += fmt::format("{}: node has {}, kubelet holds {}\n", resource, ids.size(),
                                latest ? latest->size() : 0);
        }
        return text + plugin->report();
    }

    std::unique_ptr<PlainNode> node;
    TempTree files;
    std::unique_ptr<TestKubelet> kubelet;
    std::unique_ptr<DaemonProcess> plugin;
};

// Changes the node at random until `events` uevents have been sent: vGPUs
// created and removed, passthrough GPUs moved between vfio-pci and nvidia,
// and bursts of change events that alter nothing.
class Storm {
public:
    explicit Storm(PlainNode &node) : node_(node) {}

    void blow(unsigned long events, const std::atomic<bool> *calm = nullptr)
    {
        const unsigned long until = node_.eventsSent() + events;
        while (node_.eventsSent() < until && !(calm && *calm)) {
            int dice = pick(0, 9);
            if (dice < 3 && node_.vgpus().size() < 48) {
                node_.createVgpu(kParents[pick(0, 1)], pick(0, 1) ? "nvidia-222" : "nvidia-223");
            } else if (dice < 5 && !node_.vgpus().empty()) {
                std::vector<std::string> vgpus = node_.vgpus();
                node_.removeVgpu(vgpus[static_cast<size_t>(pick(0, static_cast<int>(vgpus.size()) - 1))]);
            } else if (dice < 6) {
                const std::string &gpu = kPassthrough[static_cast<size_t>(pick(0, 3))];
                std::string next = node_.driverOf(gpu) == "vfio-pci" ? "nvidia" : "vfio-pci";
                node_.unbind(gpu);
                node_.bind(gpu, next);
            } else {
                std::vector<std::string> gpus = node_.gpus();
                for (int i = 0; i < 20; ++i)
                    node_.touch(gpus[static_cast<size_t>(pick(0, static_cast<int>(gpus.size()) - 1))]);
            }
        }
    }

private:
    int pick(int low, int high) { return std::uniform_int_distribution<int>(low, high)(random_); }

    PlainNode &node_;
    std::mt19937 random_{20261201};
};

// The plugin's own UeventMonitor on a loop of the test, for the moments that
// a whole daemon cannot pin down.
class Listener final : public kvgpu::UeventMonitor::Sink {
public:
    Listener()
    {
        requireKernelUevents();
        monitor = std::make_unique<kvgpu::UeventMonitor>(
            loop,
            kvgpu::UeventMonitor::Config{.source = kvgpu::UeventMonitor::Source::Kernel, .receiveBufferBytes = 4096},
            *this);
    }
    void uevent(const kvgpu::Uevent &event) override
    {
        heard.push_back(event.sysname);
        if (until && until(event.sysname, nullptr))
            loop.stop();
    }
    void ueventBatchEnd(kvgpu::UeventMonitor::BatchEnd end) override
    {
        ends.push_back(end);
        if (end == kvgpu::UeventMonitor::BatchEnd::Lost && !heardAtLoss)
            heardAtLoss = heard.size();
        if (until && until({}, &end))
            loop.stop();
    }
    ~Listener() override
    {
        monitor.reset();
        loop.close();
    }

    // Runs the loop until `condition` holds for an event or a batch end, or
    // the timeout passes; false on timeout.
    bool runUntil(std::function<bool(const std::string &sysname, const kvgpu::UeventMonitor::BatchEnd *end)> condition,
                  std::chrono::milliseconds timeout)
    {
        bool timedOut = false;
        until = std::move(condition);
        kvgpu::Timer deadline(loop);
        deadline.start(static_cast<uint64_t>(timeout.count()), 0, [&] {
            timedOut = true;
            loop.stop();
        });
        loop.run();
        until = nullptr;
        return !timedOut;
    }

    kvgpu::EventLoop loop;
    std::unique_ptr<kvgpu::UeventMonitor> monitor;
    std::vector<std::string> heard;
    std::vector<kvgpu::UeventMonitor::BatchEnd> ends;
    std::optional<size_t> heardAtLoss; // how many uevents had been heard when the first loss was reported
    std::function<bool(const std::string &, const kvgpu::UeventMonitor::BatchEnd *)> until;
};

} // namespace

TEST_CASE("an overflow that epoll reports before any read: the monitor drains, reports the loss once and keeps "
          "listening")
{
    Listener listener;
    REQUIRE(listener.monitor->listen());
    // The loop is not running: the socket fills and takes the error, so the
    // first thing epoll says about it is POLLERR.
    KernelUevents kernel;
    for (int i = 0; i < 500; ++i)
        kernel.send("change", "/devices/pci0000:00/0000:00:01.0/0000:65:00.0", "pci");

    using End = kvgpu::UeventMonitor::BatchEnd;
    bool lost = listener.runUntil([](const std::string &, const End *end) { return end && *end == End::Lost; },
                                  scaled(5s));
    CHECK_MESSAGE(lost, "no loss reported after " << listener.heard.size() << " uevents");
    CHECK(listener.heard.size() < 500);
    CHECK(std::count(listener.ends.begin(), listener.ends.end(), End::Lost) == 1);
    // The loss was reported once the queue was empty: the storm's last
    // uevent was heard before it, and the next one is the first after it.
    const size_t heardOfTheStorm = listener.heard.size();
    CHECK(listener.heardAtLoss == heardOfTheStorm);

    kernel.send("add", "/devices/pci0000:00/0000:00:01.0/0000:99:00.0", "pci");
    bool heard = listener.runUntil([](const std::string &sysname, const End *) { return sysname == "0000:99:00.0"; },
                                   scaled(5s));
    CHECK_MESSAGE(heard, "a uevent after the overflow was not heard");
    CHECK(listener.heard.size() == heardOfTheStorm + 1);
    CHECK(listener.monitor->listening());
}

TEST_CASE("a monitor that is not listening (its socket could not be re-opened) listens again on SIGHUP's "
          "ensureListening, and reports the gap as a loss")
{
    Listener listener;
    // What a failed re-open leaves: no socket.
    REQUIRE_FALSE(listener.monitor->listening());
    REQUIRE(listener.monitor->ensureListening());
    using End = kvgpu::UeventMonitor::BatchEnd;
    CHECK(listener.ends == std::vector<End>{End::Lost}); // what happened without a socket is unknown

    KernelUevents kernel;
    kernel.send("add", "/devices/pci0000:00/0000:00:01.0/0000:99:00.0", "pci");
    CHECK(listener.runUntil([](const std::string &sysname, const End *) { return sysname == "0000:99:00.0"; },
                            scaled(5s)));
}

TEST_CASE("a storm of 100,000 uevents through an overflowing socket: the kubelet holds the truth at every "
          "checkpoint, and a later event is still heard")
{
    Stage stage;
    stage.startPlugin();
    REQUIRE_MESSAGE(stage.kubeletHoldsTheTruth(scaled(10s)), stage.difference());

    Storm storm(*stage.node);
    std::chrono::steady_clock::duration blowing{}, converging{};
    for (int checkpoint = 1; checkpoint <= 4; ++checkpoint) {
        auto started = std::chrono::steady_clock::now();
        storm.blow(25000);
        auto blown = std::chrono::steady_clock::now();
        INFO("checkpoint " << checkpoint << " after " << stage.node->eventsSent() << " uevents");
        REQUIRE_MESSAGE(stage.kubeletHoldsTheTruth(scaled(20s)), stage.difference());
        blowing += blown - started;
        converging += std::chrono::steady_clock::now() - blown;
    }
    auto ms = [](auto d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
    std::string log = stage.plugin->log();
    MESSAGE(stage.node->eventsSent() << " uevents sent in " << ms(blowing) << " ms, the kubelet held the truth "
                                     << ms(converging) << " ms after the last of each checkpoint; overflows reported: "
                                     << countInLog(log, "uevent receive buffer overflowed")
                                     << ", rescans: " << countInLog(log, "rescanning every device"));
    // The storm did overflow the socket, so the convergence above is the rescan's.
    CHECK(countInLog(log, "uevent receive buffer overflowed") > 0);
    CHECK(log.find("SIGHUP") == std::string::npos);

    // The monitor still listens: one vGPU, announced once, is heard.
    std::string last = stage.node->createVgpu(kParents[0], "nvidia-222");
    CHECK_MESSAGE(stage.kubeletHoldsTheTruth(scaled(5s)), stage.difference());
    CHECK(stage.kubelet->latest(k1Q).has_value());
}

TEST_CASE("SIGTERM during a storm: the plugin exits 0 within a second and removes its sockets")
{
    Stage stage;
    stage.startPlugin();
    REQUIRE_MESSAGE(stage.kubeletHoldsTheTruth(scaled(10s)), stage.difference());
    REQUIRE(socketsIn(stage.pluginDir()).size() > 1);

    std::atomic<bool> calm{false};
    std::atomic<unsigned long> sent{0};
    std::thread wind([&] {
        Storm storm(*stage.node);
        while (!calm) {
            storm.blow(1000, &calm);
            sent = stage.node->eventsSent();
        }
    });
    while (sent < 20000)
        std::this_thread::sleep_for(1ms);

    auto signalled = std::chrono::steady_clock::now();
    stage.plugin->signal(SIGTERM);
    std::optional<int> exit = stage.plugin->waitExit(scaled(1s));
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - signalled);
    calm = true;
    wind.join();

    MESSAGE("exit after " << took.count() << " ms, " << sent.load() << " uevents into the storm");
    CHECK_MESSAGE(exit == 0, stage.plugin->report());
    CHECK(socketsIn(stage.pluginDir()) == std::set<std::string>{"kubelet.sock"});
}

TEST_CASE("2,000 SIGHUPs coalesce into few rescans, and a SIGTERM after them exits within a second")
{
    Stage stage;
    // Enough vGPUs that each rescan costs something.
    for (int i = 0; i < 120; ++i)
        stage.node->createVgpu(kParents[static_cast<size_t>(i % 2)], i % 3 ? "nvidia-222" : "nvidia-223");
    stage.startPlugin("debug");
    REQUIRE_MESSAGE(stage.kubeletHoldsTheTruth(scaled(10s)), stage.difference());

    // Paced, so that the kernel delivers most of them one by one instead of
    // merging them into one pending signal.
    for (int i = 0; i < 2000; ++i) {
        stage.plugin->signal(SIGHUP);
        std::this_thread::sleep_for(100us);
    }
    auto signalled = std::chrono::steady_clock::now();
    stage.plugin->signal(SIGTERM);
    std::optional<int> exit = stage.plugin->waitExit(scaled(1s));
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - signalled);

    std::string log = stage.plugin->log();
    size_t requests = countInLog(log, "msg=\"rescan requested\" reason=SIGHUP");
    size_t rescans = countInLog(log, "msg=\"rescanning every device\"");
    MESSAGE("SIGTERM exit after " << took.count() << " ms; SIGHUPs received: " << requests << ", rescans run: "
                                  << rescans);
    CHECK_MESSAGE(exit == 0, stage.plugin->report());
    REQUIRE(requests > 1);
    CHECK(rescans < requests);
}
