#include "app/daemon.h"

#include "base/log.h"
#include "base/strings.h"
#include "device/registry.h"
#include "monitor/directory_watch.h"
#include "monitor/uevent_monitor.h"
#include "plugin/plugin_manager.h"

#include <csignal>
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

// Logs what changed in what is advertised, one line per device.
void logChanges(const std::map<std::string, Resource> &before, const std::map<std::string, Resource> &after)
{
    auto index = [](const std::map<std::string, Resource> &resources) {
        std::map<std::pair<std::string, std::string>, const AdvertisedDevice *> out;
        for (const auto &[name, resource] : resources)
            for (const AdvertisedDevice &d : resource.devices)
                out[{name, d.id}] = &d;
        return out;
    };
    auto old = index(before), now = index(after);
    for (const auto &[key, device] : now) {
        auto it = old.find(key);
        if (it == old.end())
            log::info("device advertised", {{"device", key.second}, {"resource", key.first},
                                            {"health", device->healthy ? kHealthy : kUnhealthy}});
        else if (it->second->healthy != device->healthy)
            log::info("device health changed", {{"device", key.second}, {"resource", key.first},
                                                {"health", device->healthy ? kHealthy : kUnhealthy},
                                                {"reason", device->healthReason}});
    }
    for (const auto &[key, device] : old)
        if (!now.contains(key))
            log::info("device withdrawn", {{"device", key.second}, {"resource", key.first}});
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

        // The monitor is enabled before the first scan so that nothing that
        // happens during the scan is lost; replaying it is harmless.
        startUeventMonitor();
        watchPluginDir();
        watchDevTree();

        registry_.rescan();
        log::info("initial scan done", {{"sysfs", common_.sysfsRoot},
                                        {"functions", std::to_string(registry_.observation().functions.size())},
                                        {"mdevs", std::to_string(registry_.observation().mdevs.size())}});
        for (const auto &[id, problem] : registry_.observation().problems)
            log::warn("cannot read device; skipping", {{"device", id}, {"problem", problem}});
        publish();

        loop_.run();

        uevents_.reset();
        pluginDirWatch_.reset();
        devWatches_.clear();
        signals_.clear();
        plugins_.shutdown();
        return loop_.close() == 0 ? 0 : 1;
    }

private:
    void stop(const char *why)
    {
        log::info("stopping", {{"signal", why}});
        plugins_.shutdown();
        loop_.stop();
    }

    void publish()
    {
        if (!registry_.changed())
            return;
        const Inventory &inventory = registry_.inventory();
        for (const auto &[name, repair] : inventory.nameRepairs)
            if (loggedRepairs_.insert(name).second)
                log::warn("resource name repaired", {{"resource", name}, {"detail", repair}});
        logChanges(advertised_, inventory.resources);
        advertised_ = inventory.resources;
        plugins_.update(inventory.resources);
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
        if (event.subsystem == "pci") {
            registry_.reconcilePciFunction(event.sysname);
        } else if (event.subsystem == "mdev") {
            registry_.reconcileMdev(event.sysname);
        } else if (event.subsystem == "vfio") {
            if (auto group = parseDecimal(event.sysname); group && *group >= 0 && *group <= 0x7fffffff)
                registry_.reconcileVfioNode(static_cast<int>(*group));
            else
                registry_.reconcileDevNodes();
        }
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
            if (auto group = parseDecimal(name); group && *group >= 0 && *group <= 0x7fffffff)
                registry_.reconcileVfioNode(static_cast<int>(*group));
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
    std::unique_ptr<UeventMonitor> uevents_;
    std::unique_ptr<DirectoryWatch> pluginDirWatch_;
    std::map<std::string, std::unique_ptr<DirectoryWatch>> devWatches_;
    std::vector<std::unique_ptr<SignalWatcher>> signals_;
    std::map<std::string, Resource> advertised_;
    std::set<std::string> loggedRepairs_;
};

} // namespace

int runDaemon(const CommonOptions &common, const ServeOptions &serve)
{
    Daemon daemon(common, serve);
    return daemon.run();
}

} // namespace kvgpu
