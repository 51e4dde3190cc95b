#include "app/daemon.h"

#include "app/health_pass.h"
#include "app/probe_server.h"
#include "app/uevent_dispatch.h"
#include "base/log.h"
#include "base/strings.h"
#include "device/registry.h"
#include "device/sysfs_parse.h"
#include "monitor/directory_watch.h"
#include "monitor/uevent_monitor.h"
#include "plugin/plugin_manager.h"

#include <atomic>
#include <csignal>
#include <future>
#include <set>
#include <sys/stat.h>

#include <fmt/format.h>

namespace kvgpu {

namespace {

bool isDirectory(const std::string &path)
{
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

void logChange(const DeviceIndex::Change &change)
{
    using Kind = DeviceIndex::Change::Kind;
    const char *health = change.healthy ? kHealthy : kUnhealthy;
    switch (change.kind) {
    case Kind::Advertised:
        if (!change.repair.empty())
            log::warn("resource name repaired", {{"resource", change.resource}, {"detail", change.repair}});
        log::info("device advertised", {{"device", change.id}, {"resource", change.resource}, {"health", health}});
        break;
    case Kind::Withdrawn:
        log::info("device withdrawn", {{"device", change.id}, {"resource", change.resource}});
        return;
    case Kind::HealthChanged:
        log::info("device health changed", {{"device", change.id}, {"resource", change.resource}, {"health", health}});
        break;
    case Kind::Warnings:
        for (const std::string &warning : change.warnings)
            log::warn("device warning", {{"device", change.id}, {"warning", warning}});
        return;
    }
    if (!change.healthy)
        log::warn("device unhealthy", {{"device", change.id}, {"reason", change.reason}});
}

class Daemon {
public:
    Daemon(const CommonOptions &common, const ServeOptions &serve)
        : common_(common), serve_(serve), names_(common.pciIds),
          registry_(SysfsTree(common.sysfsRoot), DevTree(common.devRoot), names_),
          plugins_(loop_, PluginConfig{common.pluginDir, SysfsTree(common.sysfsRoot), DevTree(common.devRoot)})
    {
    }

    int run()
    {
        if (!isDirectory(common_.pluginDir)) {
            log::error("the kubelet plugin directory does not exist; is --plugin-dir right?",
                       {{"path", common_.pluginDir}});
            return 1;
        }
        if (!isDirectory(common_.sysfsRoot + "/bus/pci/devices")) {
            log::error("not a sysfs tree (no bus/pci/devices); is --sysfs-root right?",
                       {{"path", common_.sysfsRoot}});
            return 1;
        }
        signals_.push_back(std::make_unique<SignalWatcher>(loop_, SIGTERM, [this] { stop("SIGTERM"); }));
        signals_.push_back(std::make_unique<SignalWatcher>(loop_, SIGINT, [this] { stop("SIGINT"); }));
        signals_.push_back(std::make_unique<SignalWatcher>(loop_, SIGHUP, [this] {
            log::info("SIGHUP: rescanning every device");
            registry_.rescan();
            publish();
        }));

        if (serve_.probePort != 0 && !startProbes())
            return 1;

        // The monitor is enabled before the first scan so that nothing that
        // happens during the scan is lost; replaying it is harmless.
        startUeventMonitor();
        watchPluginDir();
        watchDevTree();

        registry_.rescan();
        log::info("initial scan done", {{"sysfs", common_.sysfsRoot},
                                        {"functions", std::to_string(registry_.observation().functions.size())},
                                        {"mdevs", std::to_string(registry_.observation().mdevs.size())}});
        for (const auto &[id, unreadable] : registry_.observation().unreadableFunctions)
            log::warn("cannot read device; skipping", {{"device", id}, {"problem", unreadable.problem}});
        for (const auto &[id, problem] : registry_.observation().unreadableMdevs)
            log::warn("cannot read device; skipping", {{"device", id}, {"problem", problem}});
        publish();
        startHealthTimer();

        loop_.run();

        probes_.reset(); // its checks post to the loop: stop it while the loop can still drop posts
        healthPass_.reset();
        uevents_.reset();
        pluginDirWatch_.reset();
        devWatches_.clear();
        signals_.clear();
        plugins_.shutdown();
        return loop_.close() == 0 ? 0 : 1;
    }

private:
    // Liveness: a task posted to the loop runs within a second. Readiness:
    // every resource is registered with the kubelet (asked on the loop too).
    bool startProbes()
    {
        std::string error;
        probes_ = ProbeServer::start(fmt::format("0.0.0.0:{}", serve_.probePort),
                                     {.live = [this] { return askLoop([] { return true; }); },
                                      .ready = [this] { return askLoop([this] { return plugins_.allRegistered(); }); }},
                                     error);
        if (!probes_)
            log::error("cannot serve the health probes; is --probe-port free?",
                       {{"port", std::to_string(serve_.probePort)}, {"error", error}});
        return probes_ != nullptr;
    }

    // Runs `question` on the loop and waits up to a second for the answer; a
    // loop that does not answer in time is not alive.
    bool askLoop(std::function<bool()> question)
    {
        auto answer = std::make_shared<std::promise<bool>>();
        std::future<bool> future = answer->get_future();
        loop_.post([answer, question = std::move(question)] { answer->set_value(question()); });
        // Waits in slices so that a shutdown is not held up by a probe.
        for (int slice = 0; slice < 20 && !stopping_; ++slice)
            if (future.wait_for(std::chrono::milliseconds(50)) == std::future_status::ready)
                return future.get();
        return false;
    }

    // Signals without uevents (power state, config space, AER counters) are
    // re-read on a slow timer, one device per loop turn; every event re-reads
    // them for its device too.
    void startHealthTimer()
    {
        if (serve_.healthIntervalSeconds == 0)
            return;
        uint64_t ms = static_cast<uint64_t>(serve_.healthIntervalSeconds) * 1000;
        healthPass_ = std::make_unique<HealthPass>(loop_, registry_, ms, [this] { publish(); });
    }

    void stop(const char *why)
    {
        log::info("stopping", {{"signal", why}});
        stopping_ = true;
        plugins_.shutdown();
        loop_.stop();
    }

    void publish()
    {
        for (const DeviceIndex::Change &change : registry_.takeChanges())
            logChange(change);
        std::map<std::string, Resource> changed = registry_.takeChangedResources();
        if (!changed.empty())
            plugins_.update(std::move(changed));
    }

    void startUeventMonitor()
    {
        std::string error;
        UeventMonitor::Source source =
            serve_.udevSource == "udev" ? UeventMonitor::Source::Udev : UeventMonitor::Source::Kernel;
        uevents_ = UeventMonitor::create(
            loop_, source, serve_.ueventBufferBytes,
            {[this](const Uevent &event) { onUevent(event); }, [this] { publish(); },
             [this] { registry_.rescan(); }},
            error);
        if (!uevents_)
            log::error("no uevent monitor: devices added later will not be seen until SIGHUP",
                       {{"error", error}});
    }

    void onUevent(const Uevent &event)
    {
        log::debug("uevent", {{"action", event.action}, {"subsystem", event.subsystem}, {"device", event.sysname}});
        applyUevent(registry_, event);
        if (const std::string *problem = registry_.observation().problemOf(event.sysname))
            log::warn("cannot read device; skipping", {{"device", event.sysname}, {"problem", *problem}});
        // Published once the monitor's queue is drained, so a burst of events
        // becomes one update per resource.
    }

    void watchPluginDir()
    {
        std::string error;
        pluginDirWatch_ = DirectoryWatch::create(
            loop_, common_.pluginDir,
            [this](DirectoryWatch::Change change, const std::string &name) {
                if (change == DirectoryWatch::Change::Created && name == "kubelet.sock")
                    plugins_.kubeletSocketCreated();
                else if (change == DirectoryWatch::Change::Deleted)
                    plugins_.socketDeleted(name);
                else if (change == DirectoryWatch::Change::DirectoryGone)
                    log::error("the kubelet plugin directory was removed; registration cannot recover "
                               "until the plugin restarts", {{"path", common_.pluginDir}});
            },
            error);
        if (!pluginDirWatch_)
            log::error("cannot watch the plugin directory: a kubelet restart will not be noticed",
                       {{"error", error}});
    }

    // /dev/vfio (group nodes), /dev/vfio/devices (iommufd cdevs) and /dev
    // itself (for /dev/iommu and /dev/vfio appearing after us).
    void watchDevTree()
    {
        for (const std::string &dir : {common_.devRoot, common_.devRoot + "/vfio", common_.devRoot + "/vfio/devices"}) {
            if (!isDirectory(dir) || devWatches_.contains(dir))
                continue;
            std::string error;
            auto watch = DirectoryWatch::create(
                loop_, dir,
                [this, dir](DirectoryWatch::Change change, const std::string &name) { onDevChange(dir, change, name); },
                error);
            if (!watch) {
                log::warn("cannot watch a /dev directory; node changes there will be missed", {{"error", error}});
                continue;
            }
            devWatches_[dir] = std::move(watch);
        }
    }

    void onDevChange(const std::string &dir, DirectoryWatch::Change change, const std::string &name)
    {
        if (dir == common_.devRoot + "/vfio") {
            if (std::optional<int> group = parseGroupNumber(name))
                registry_.reconcileVfioNode(*group);
            else
                registry_.reconcileDevNodes();
        } else {
            registry_.reconcileDevNodes();
        }
        if (change == DirectoryWatch::Change::DirectoryGone) {
            // The watch died with its directory; drop it outside its own callback.
            loop_.post([this, dir] {
                devWatches_.erase(dir);
                watchDevTree();
            });
        } else if (change == DirectoryWatch::Change::Created && dir != common_.devRoot + "/vfio/devices") {
            loop_.post([this] { watchDevTree(); }); // a directory we wait for may have appeared
        }
        publish();
    }

    const CommonOptions common_;
    const ServeOptions serve_;
    EventLoop loop_;
    PciIdsDatabase names_;
    DeviceRegistry registry_;
    PluginManager plugins_;
    std::unique_ptr<ProbeServer> probes_;
    std::atomic<bool> stopping_{false};
    std::unique_ptr<UeventMonitor> uevents_;
    std::unique_ptr<HealthPass> healthPass_;
    std::unique_ptr<DirectoryWatch> pluginDirWatch_;
    std::map<std::string, std::unique_ptr<DirectoryWatch>> devWatches_;
    std::vector<std::unique_ptr<SignalWatcher>> signals_;
};

} // namespace

int runDaemon(const CommonOptions &common, const ServeOptions &serve)
{
    Daemon daemon(common, serve);
    return daemon.run();
}

} // namespace kvgpu
