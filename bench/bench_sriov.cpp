// SR-IOV vGPU benchmark: how fast the kubelet hears of VF events and of profile
// writes (which send no uevent, so the profile watch's interval bounds them),
// and what the watch costs while idle. Simulated node: one H200 with 64 VFs on
// nvidia, half of them carrying a profile; the test kubelet reads every message.
#include "daemon_process.h"
#include "sim_node.h"
#include "temp_tree.h"
#include "test_kubelet.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <functional>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include <unistd.h>

using namespace kvgpu::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

const std::string kPf = "0000:41:00.0";
const std::string kProfile = "nvidia.com/NVIDIA_H200X-1-18C";

std::string describeNode(int vfs)
{
    std::string text = fmt::format("gpu {} id=10de:2335 group=70 numa=0 driver=nvidia sriov-vfs={} vf-offset=4\n"
                                   "sriov-profile {} 1414 name=\"NVIDIA H200X-1-18C\" instances={}\n"
                                   "vfs {} count={}\n",
                                   kPf, vfs, kPf, vfs, kPf, vfs);
    return text;
}

std::string vfAddress(int i)
{
    const int devfn = 4 + i; // PF 41:00.0, offset 4, stride 1
    return fmt::format("0000:41:{:02x}.{}", devfn / 8, devfn % 8);
}

struct Stats {
    std::vector<double> ms;
    double pct(double p) const
    {
        if (ms.empty())
            return 0;
        std::vector<double> v = ms;
        std::sort(v.begin(), v.end());
        return v[std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * static_cast<double>(v.size())))];
    }
    double max() const { return ms.empty() ? 0 : *std::max_element(ms.begin(), ms.end()); }
    std::string text() const { return fmt::format("p50 {:.3f}  p99 {:.3f}  max {:.3f} ms", pct(50), pct(99), max()); }
};

double msBetween(Clock::time_point a, Clock::time_point b)
{
    return std::chrono::duration<double, std::milli>(b - a).count();
}

// The time the kubelet read the first list of the profile's resource for
// which `holds` is true.
class ListWaiter {
public:
    explicit ListWaiter(TestKubelet &kubelet)
    {
        kubelet.onUpdate([this](const std::string &resource, const TestKubelet::Update &update) {
            std::lock_guard lock(mutex_);
            if (resource != kProfile || seen_ || !holds_)
                return;
            std::vector<std::string> ids;
            for (const auto &d : update.devices)
                ids.push_back(d.id);
            if (holds_(ids)) {
                seen_ = update.at;
                cv_.notify_all();
            }
        });
    }
    void expect(std::function<bool(const std::vector<std::string> &)> holds)
    {
        std::lock_guard lock(mutex_);
        holds_ = std::move(holds);
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
    std::function<bool(const std::vector<std::string> &)> holds_;
    std::optional<Clock::time_point> seen_;
};

bool has(const std::vector<std::string> &ids, const std::string &id)
{
    return std::find(ids.begin(), ids.end(), id) != ids.end();
}

// utime + stime of the whole process, in milliseconds.
double cpuMs(pid_t pid)
{
    std::ifstream in(fmt::format("/proc/{}/stat", pid));
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::istringstream fields(text.substr(text.rfind(')') + 2));
    std::string field;
    long utime = 0, stime = 0;
    for (int i = 3; fields >> field; ++i) {
        if (i == 14)
            utime = std::stol(field);
        if (i == 15) {
            stime = std::stol(field);
            break;
        }
    }
    return static_cast<double>(utime + stime) * 1000.0 / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

long loopWakeups(pid_t pid)
{
    std::ifstream in(fmt::format("/proc/{}/task/{}/status", pid, pid));
    std::string line;
    long total = 0;
    while (std::getline(in, line))
        if (line.rfind("voluntary_ctxt_switches:", 0) == 0 || line.rfind("nonvoluntary_ctxt_switches:", 0) == 0)
            total += std::stol(line.substr(line.find(':') + 1));
    return total;
}

void row(const std::string &what, const std::string &value)
{
    std::printf("%-62s %s\n", what.c_str(), value.c_str());
    std::fflush(stdout);
}

} // namespace

int main(int argc, char **argv)
{
    int vfs = 64, unbinds = 20, profileWrites = 20, idleSeconds = 60;
    int intervalMs = 1000;
    CLI::App app{"SR-IOV vGPU benchmark: VF events and profile writes to the kubelet, the profile watch's cost"};
    app.add_option("--vfs", vfs, "VFs on the simulated H200")->capture_default_str();
    app.add_option("--unbinds", unbinds, "VF unbind/bind cycles to time")->capture_default_str();
    app.add_option("--profile-writes", profileWrites, "profile set/clear cycles to time")->capture_default_str();
    app.add_option("--interval-ms", intervalMs, "--vgpu-profile-interval of the plugin, in ms")
        ->capture_default_str()
        ->check(CLI::Range(1, 600000));
    app.add_option("--idle-seconds", idleSeconds, "idle period for the watch's CPU")->capture_default_str();
    CLI11_PARSE(app, argc, argv);
    const std::string interval = fmt::format("{}ms", intervalMs);
    // Writes land at a random phase of the watch's timer, as an admin's would;
    // written right after the last change was seen they would all wait a whole
    // interval.
    std::mt19937 random(1);
    std::uniform_int_distribution<int> phase(0, intervalMs - 1);

    TempTree files;
    files.write("pci.ids", "10de  NVIDIA Corporation\n\t2335  GH100 [H200 SXM 141GB]\n");
    files.mkdir("plugins");
    auto node = SimNode::fromDescription(describeNode(vfs));
    // Half the VFs carry the profile; the others are there to be written.
    for (int i = 0; i < vfs / 2; ++i)
        node->setVgpuProfile(vfAddress(i), 1414);
    node->startKernelEmulation();

    TestKubelet kubelet(files.path("plugins"));
    kubelet.start();
    ListWaiter waiter(kubelet);
    std::vector<std::string> flags = {"--sysfs-root", node->sysfsRoot(), "--dev-root", node->devRoot(),
                                      "--plugin-dir", files.path("plugins"), "--pci-ids", files.path("pci.ids"),
                                      "--log-level", "warn", "--probe-port", "0", "--vgpu-profile-interval",
                                      interval};
    waiter.expect([&](const std::vector<std::string> &ids) { return static_cast<int>(ids.size()) == vfs / 2; });
    DaemonProcess plugin(pluginBinary(), flags, files.path("plugin.log"));
    if (!waiter.wait(30s)) {
        std::fprintf(stderr, "the plugin never listed the VFs:\n%s\n", plugin.log().c_str());
        return 1;
    }
    std::printf("%-62s %s\n", "measurement", "result");
    row("VFs on nvidia / with a profile", fmt::format("{} / {}", vfs, vfs / 2));

    // A VF leaving nvidia: unbind uevent → the list without it read. Binding
    // it back gives a VF without a profile (the driver destroys the vGPU on
    // unbind), which changes no list; its profile is written again after.
    std::mutex sentMutex;
    std::optional<Clock::time_point> unbindSent;
    const std::string vf = vfAddress(0);
    node->setUeventHook([&](const std::string &devpath, const std::string &action) {
        if (action == "unbind" && devpath.size() >= vf.size() &&
            devpath.compare(devpath.size() - vf.size(), vf.size(), vf) == 0) {
            std::lock_guard lock(sentMutex);
            unbindSent = Clock::now();
        }
    });
    Stats unbind;
    const std::string profileFile = node->pathOf(vf) + "/nvidia/current_vgpu_type";
    for (int i = 0; i < unbinds; ++i) {
        waiter.expect([&](const std::vector<std::string> &ids) { return !has(ids, vf); });
        node->unbind(vf);
        auto seen = waiter.wait(5s);
        if (!seen)
            return std::fprintf(stderr, "unbind of %s never reached the kubelet\n", vf.c_str()), 1;
        {
            std::lock_guard lock(sentMutex);
            unbind.ms.push_back(msBetween(*unbindSent, *seen));
        }
        waiter.expect([&](const std::vector<std::string> &ids) { return has(ids, vf); });
        node->bind(vf, "nvidia");
        node->setVgpuProfile(vf, 1414);
        if (!waiter.wait(10s))
            return std::fprintf(stderr, "%s never came back\n", vf.c_str()), 1;
    }
    node->setUeventHook(nullptr);
    row(fmt::format("VF unbind uevent sent → withdrawn list read ({}x)", unbinds), unbind.text());

    // Profile written (no uevent) → the list with the VF read, and cleared →
    // without it. Bounded by the interval: on average half of it.
    Stats set, cleared;
    const std::string target = vfAddress(vfs - 1);
    const std::string targetFile = node->pathOf(target) + "/nvidia/current_vgpu_type";
    for (int i = 0; i < profileWrites; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(phase(random)));
        waiter.expect([&](const std::vector<std::string> &ids) { return has(ids, target); });
        auto start = Clock::now();
        std::ofstream(targetFile) << "1414\n";
        auto seen = waiter.wait(10s);
        if (!seen)
            return std::fprintf(stderr, "profile write never reached the kubelet\n"), 1;
        set.ms.push_back(msBetween(start, *seen));
        std::this_thread::sleep_for(std::chrono::milliseconds(phase(random)));
        waiter.expect([&](const std::vector<std::string> &ids) { return !has(ids, target); });
        start = Clock::now();
        std::ofstream(targetFile) << "0\n";
        seen = waiter.wait(10s);
        if (!seen)
            return std::fprintf(stderr, "profile clear never reached the kubelet\n"), 1;
        cleared.ms.push_back(msBetween(start, *seen));
    }
    row(fmt::format("profile written → advertised read ({}x, interval {})", profileWrites, interval), set.text());
    row(fmt::format("profile cleared → withdrawn read ({}x, interval {})", profileWrites, interval), cleared.text());

    // The watch's cost while nothing changes.
    std::this_thread::sleep_for(500ms);
    const double cpu0 = cpuMs(plugin.pid());
    const long wake0 = loopWakeups(plugin.pid());
    std::this_thread::sleep_for(std::chrono::seconds(idleSeconds));
    const double cpu = cpuMs(plugin.pid()) - cpu0;
    const long wakeups = loopWakeups(plugin.pid()) - wake0;
    row(fmt::format("CPU of the profile watch, {} VFs, {} s idle (interval {})", vfs, idleSeconds, interval),
        fmt::format("{:.0f} ms ({:.3f} % of one core), {} loop wake-ups", cpu, cpu / (10.0 * idleSeconds), wakeups));
    node->stopKernelEmulation();
    return 0;
}
