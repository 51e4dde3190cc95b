#include "app/daemon.h"

#include "app/config_reloader.h"
#include "app/health_pass.h"
#include "app/probe_server.h"
#include "app/event_dispatch.h"
#include "base/log.h"
#include "base/strings.h"
#include "dra/dra_side.h"
#include "app/vgpu_profile_watch.h"
#include "index/registry.h"
#include "metrics/metrics_server.h"
#include "metrics/prometheus_metrics.h"
#include "monitor/dev_watch.h"
#include "monitor/uevent_monitor.h"
#include "plugin/kubelet_watch.h"
#include "plugin/plugin_manager.h"

#include <atomic>
#include <csignal>
#include <future>
#include <sys/stat.h>

#include <fmt/format.h>

namespace kvgpu {

namespace {

bool isDirectory(const std::string &path)
{
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// How long a reload that moves devices between the APIs waits for DRA to
// withdraw them before the device plugin API offers them.
constexpr std::chrono::milliseconds kWithdrawalWait{30000};

class Daemon {
public:
    Daemon(const CommonOptions &common, const ServeOptions &serve)
        : common_(common), serve_(serve), names_(common.pciIds), metrics_(serve.version),
          registry_(SysfsTree(common.sysfsRoot), DevTree(common.devRoot), names_),
          plugins_(loop_,
                   PluginConfig{common.pluginDir, SysfsTree(common.sysfsRoot), DevTree(common.devRoot), &metrics_}),
          dra_(loop_, dra::DraSideConfig{serve.dra, common.nodeName, SysfsTree(common.sysfsRoot),
                                         DevTree(common.devRoot), &metrics_}),
          events_(loop_, registry_, metrics_),
          profileWatch_(loop_, events_, serve.vgpuProfileInterval)
    {
        // The index's subscribers: the kubelet's device plugin API, then DRA
        // (so that a device moving to DRA has left the device plugin API
        // first), and the SR-IOV profile watch, which starts and stops with
        // the VFs.
        events_.subscribe(plugins_);
        events_.subscribe(dra_);
        events_.subscribe(profileWatch_);
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
            // A monitor whose socket could not be re-opened gets another try.
            if (uevents_ && !uevents_->ensureListening())
                log::error("still no uevent monitor: devices added later are not seen until SIGHUP");
            events_.requestRescan("SIGHUP");
            if (config_)
                config_->reload();
        }));

        if (!common_.configPath.empty() && !loadConfig())
            return 1;
        if (serve_.probePort != 0 && !startProbes())
            return 1;
        if (serve_.metricsPort != 0 && !startMetrics())
            return 1;

        // The monitor is enabled before the first scan so that nothing that
        // happens during the scan is lost; replaying it is harmless.
        startUeventMonitor();
        watchPluginDir();
        devWatch_ = std::make_unique<DevWatch>(loop_, common_.devRoot, events_);

        if (!common_.stateDir.empty())
            registry_.keepVgpuNamesIn(common_.stateDir + "/" + kVgpuNameFile);
        log::info("scanning", {{"sysfs", common_.sysfsRoot}, {"node", common_.nodeName}});
        events_.initialScan();
        for (const EgmRegion &region : registry_.egmRegions())
            logEgmRegion(region);
        if (config_) {
            if (Result<void> fits = config_->checkAtStart(); !fits) {
                log::error("the configuration does not fit this node", {{"error", fits.error()}});
                return 1;
            }
            config_->watch(loop_);
            config_->setWithdrawalWait([this](std::function<void()> next) {
                dra_.whenPublished(kWithdrawalWait, [next = std::move(next)](bool published) {
                    if (!published)
                        log::warn("the DRA side could not withdraw moving devices in time; offering them by "
                                  "their new API anyway",
                                  {{"waited_s", std::to_string(kWithdrawalWait.count() / 1000)}});
                    next();
                });
            });
            // With nothing to offer yet, DRA still publishes the node's
            // (empty) pool and registers with the kubelet.
            if (offersDra(config_->rules()))
                dra_.start("the configuration offers devices through DRA");
        }
        startHealthTimer();

        loop_.run();

        probes_.reset(); // its checks post to the loop: stop it while the loop can still drop posts
        metricsServer_.reset();
        config_.reset();
        healthPass_.reset();
        profileWatch_.stop();
        dra_.stop();
        uevents_.reset();
        pluginDirWatch_.reset();
        devWatch_.reset();
        signals_.clear();
        plugins_.shutdown();
        // Register calls are cancelled and servers stop on their own threads;
        // their sockets are gone once this returns.
        plugins_.awaitStopped(std::chrono::seconds(2));
        return loop_.close() == 0 ? 0 : 1;
    }

private:
    // Read before anything starts: a configuration that cannot be used is an
    // error to exit with, not something to find out on the first device.
    bool loadConfig()
    {
        config_ = std::make_unique<ConfigReloader>(common_.configPath, common_.nodeName, metrics_, events_);
        if (Result<void> loaded = config_->loadAtStart(); !loaded) {
            log::error("cannot use the configuration", {{"error", loaded.error()}});
            return false;
        }
        return true;
    }

    // Scrapes are served by the exposer's own thread from the metrics' atomics.
    bool startMetrics()
    {
        auto server = MetricsServer::start(fmt::format("0.0.0.0:{}", serve_.metricsPort), metrics_.registry());
        if (!server) {
            log::error("cannot serve the metrics; is --metrics-port free?",
                       {{"port", std::to_string(serve_.metricsPort)}, {"error", server.error()}});
            return false;
        }
        metricsServer_ = std::move(server).value();
        return true;
    }

    // Liveness: a task posted to the loop runs within a second, and the plugin
    // directory is still there. Readiness: every resource is registered with
    // the kubelet (asked on the loop too).
    bool startProbes()
    {
        auto server = ProbeServer::start(fmt::format("0.0.0.0:{}", serve_.probePort),
                                         {.live = [this] { return askLoop([this] { return plugins_.live(); }); },
                                          .ready = [this] {
                                              return askLoop([this] { return plugins_.allRegistered() && dra_.ready(); });
                                          }});
        if (!server) {
            log::error("cannot serve the health probes; is --probe-port free?",
                       {{"port", std::to_string(serve_.probePort)}, {"error", server.error()}});
            return false;
        }
        probes_ = std::move(server).value();
        return true;
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
        healthPass_ = std::make_unique<HealthPass>(loop_, events_, ms);
    }

    void stop(const char *why)
    {
        log::info("stopping", {{"signal", why}});
        stopping_ = true;
        events_.stop(); // SIGTERM pre-empts queued rescans
        plugins_.shutdown();
        loop_.stop();
    }

    void startUeventMonitor()
    {
        UeventMonitor::Config config{
            .source = serve_.udevSource == "udev" ? UeventMonitor::Source::Udev : UeventMonitor::Source::Kernel,
            .receiveBufferBytes = serve_.ueventBufferBytes};
        uevents_ = std::make_unique<UeventMonitor>(loop_, config, events_);
        Result<int> listening = uevents_->listen();
        if (!listening)
            log::error("no uevent monitor: devices added later are not seen until SIGHUP",
                       {{"error", listening.error()}});
        else
            log::debug("uevent monitor listening", {{"receive_buffer", std::to_string(*listening)}});
    }

    void watchPluginDir()
    {
        auto watch = KubeletWatch::create(loop_, common_.pluginDir, plugins_);
        if (!watch)
            log::error("a kubelet restart will not be noticed", {{"error", watch.error()}});
        else
            pluginDirWatch_ = std::move(watch).value();
    }

    const CommonOptions common_;
    const ServeOptions serve_;
    EventLoop loop_;
    PciIdsDatabase names_;
    PrometheusMetrics metrics_;
    DeviceRegistry registry_;
    PluginManager plugins_;
    dra::DraSide dra_;
    EventDispatch events_;
    VgpuProfileWatch profileWatch_;
    std::unique_ptr<ProbeServer> probes_;
    std::unique_ptr<MetricsServer> metricsServer_;
    std::unique_ptr<ConfigReloader> config_;
    std::atomic<bool> stopping_{false};
    std::unique_ptr<UeventMonitor> uevents_;
    std::unique_ptr<HealthPass> healthPass_;
    std::unique_ptr<KubeletWatch> pluginDirWatch_;
    std::unique_ptr<DevWatch> devWatch_;
    std::vector<std::unique_ptr<SignalWatcher>> signals_;
};

} // namespace

int runDaemon(const CommonOptions &common, const ServeOptions &serve)
{
    // Before any thread exists, so that every thread inherits the mask and the
    // signals reach the loop's signalfds, and a SIGTERM sent during start-up
    // waits for the loop rather than killing the process.
    blockSignals({SIGTERM, SIGINT, SIGHUP});
    // A peer that closes a connection while we write to it (the API server
    // under OpenSSL's writes, a kubelet) is an error of that call, never a
    // reason to die.
    std::signal(SIGPIPE, SIG_IGN);
    Daemon daemon(common, serve);
    return daemon.run();
}

} // namespace kvgpu
