#include "dra/dra_side.h"

#include "base/log.h"
#include "dra/claim_preparer.h"
#include "dra/kubelet_plugin.h"
#include "dra/slice_publisher.h"
#include "kube/access.h"
#include "kube/client.h"

#include <ctime>
#include <filesystem>

#include <fmt/format.h>

namespace kvgpu::dra {

DraSide::DraSide(EventLoop &loop, DraSideConfig config)
    : loop_(loop), config_(std::move(config)), snapshot_(std::make_shared<const DevicesByName>())
{
}

DraSide::~DraSide() { stop(); }

void DraSide::indexChanged(const IndexChanges &changes)
{
    if (!pool_.apply(changes))
        return;
    ++version_;
    if (!started())
        start("a device is offered through DRA");
    publish();
}

void DraSide::publish()
{
    {
        std::lock_guard lock(snapshotMutex_);
        snapshot_ = std::make_shared<const DevicesByName>(pool_.devices());
    }
    if (!started())
        return;
    publisher_->want(pool_.devices(), version_);
    std::vector<DeviceHealthEntry> health;
    const std::int64_t now = std::time(nullptr);
    for (const auto &[name, device] : pool_.devices())
        health.push_back(DeviceHealthEntry{
            .pool = config_.nodeName,
            .device = name,
            .health = device.device.healthy ? DeviceHealthEntry::Healthy : DeviceHealthEntry::Unhealthy,
            .message = device.device.healthReason,
            .lastUpdated = now});
    plugin_->setHealth(std::move(health));
}

void DraSide::start(const char *why)
{
    if (started())
        return;
    Result<void> started = startOnce();
    if (!started) {
        // Said once per distinct problem: a reload or the next device tries again.
        if (started.error() != lastStartError_)
            log::error("cannot start the DRA side; devices configured for DRA are not offered (the device "
                       "plugin side is not affected)",
                       {{"error", started.error()}, {"why", why}});
        lastStartError_ = started.error();
        stop();
        return;
    }
    lastStartError_.clear();
    log::info("DRA side started", {{"driver", config_.options.driverName}, {"node", config_.nodeName},
                                   {"why", why}});
    publish();
}

Result<void> DraSide::startOnce()
{
    const DraOptions &options = config_.options;
    if (config_.nodeName.empty())
        return Error{"DRA needs the node's name for its ResourceSlices: set NODE_NAME (the DaemonSet does) or "
                     "--node-name"};
    Result<kube::ClusterAccess> access = options.kubeconfig.empty()
                                             ? kube::inClusterAccess(kube::environmentForInCluster())
                                             : kube::loadKubeconfig(options.kubeconfig);
    if (!access)
        return Error{fmt::format("no access to the API server ({}); outside a pod give --kubeconfig, in a pod "
                                 "mount the service account token (manifests/dra/)",
                                 access.error())};
    Result<std::unique_ptr<kube::Client>> client = kube::Client::create(std::move(access).value());
    if (!client)
        return Error{client.error()};
    client_ = std::move(client).value();

    const std::string dataDir = options.pluginsDir + "/" + options.driverName;
    std::error_code ec;
    for (const std::string &dir : {dataDir, options.cdiDir}) {
        std::filesystem::create_directories(dir, ec);
        if (ec)
            return Error{fmt::format("cannot create {}: {}", dir, ec.message())};
    }
    auto snapshot = [this] {
        std::lock_guard lock(snapshotMutex_);
        return snapshot_;
    };
    ClaimPreparerOptions preparerOptions{.driver = options.driverName,
                                         .nodeName = config_.nodeName,
                                         .pluginDataDir = dataDir,
                                         .cdiDir = options.cdiDir,
                                         .sysfs = config_.sysfs,
                                         .dev = config_.dev,
                                         .metrics = config_.metrics};
    Result<std::unique_ptr<ClaimPreparer>> preparer = ClaimPreparer::create(*client_, preparerOptions, snapshot);
    if (!preparer) {
        // A damaged checkpoint is kept for inspection; the claims it held are
        // prepared again on the kubelet's next call.
        const std::string path = ClaimPreparer::checkpointPath(dataDir);
        std::filesystem::rename(path, path + ".damaged", ec);
        log::error("the DRA checkpoint is damaged; starting without it",
                   {{"error", preparer.error()}, {"kept_as", path + ".damaged"}});
        preparer = ClaimPreparer::create(*client_, preparerOptions, snapshot);
        if (!preparer)
            return Error{preparer.error()};
    }
    preparer_ = std::move(preparer).value();

    Metrics *metrics = config_.metrics;
    publisher_ = std::make_unique<SlicePublisher>(
        *client_, SlicePublisherOptions{
                      .driver = options.driverName,
                      .nodeName = config_.nodeName,
                      .synced = [metrics](std::uint64_t version, std::size_t slices, std::size_t devices,
                                          const std::string &) {
                          if (metrics)
                              metrics->draSlicesSynced(version != 0, slices, devices);
                      }});

    KubeletPluginOptions pluginOptions{.driverName = options.driverName,
                                       .pluginDir = dataDir,
                                       .registryDir = options.registryDir,
                                       .registrationChanged = [this, metrics](bool registered, const std::string &) {
                                           registered_ = registered;
                                           if (metrics)
                                               metrics->draRegistered(registered);
                                       }};
    Result<std::unique_ptr<KubeletPlugin>> plugin = KubeletPlugin::start(pluginOptions, *preparer_);
    if (!plugin)
        return Error{plugin.error()};
    plugin_ = std::move(plugin).value();
    publisher_->want(pool_.devices(), version_);
    publisher_->start();
    return {};
}

bool DraSide::ready() const { return !started() || registered_; }

void DraSide::whenPublished(std::chrono::milliseconds timeout, std::function<void(bool)> done)
{
    if (!started()) {
        done(true);
        return;
    }
    waiters_.emplace_back([this, version = version_, timeout, done = std::move(done)]() mutable {
        bool published = publisher_->waitPublished(version, timeout);
        loop_.post([done = std::move(done), published] { done(published); });
    });
}

void DraSide::stop()
{
    // The registration socket goes first (the kubelet stops calling), then
    // the calls in flight are answered, then the publisher's threads end.
    if (plugin_)
        plugin_->stop();
    if (publisher_)
        publisher_->stop();
    for (std::thread &waiter : waiters_)
        waiter.join();
    waiters_.clear();
    plugin_.reset();
    publisher_.reset();
    preparer_.reset();
    client_.reset();
    registered_ = false;
}

} // namespace kvgpu::dra
