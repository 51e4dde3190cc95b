#include "app/event_dispatch.h"

#include "base/log.h"
#include "base/strings.h"
#include "device/sysfs_parse.h"

namespace kvgpu {

namespace {

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

} // namespace

void logEgmRegion(const EgmRegion &region)
{
    if (region.problem.empty())
        log::info("EGM region",
                  {{"region", region.name}, {"gpus", join(region.gpus, ",")}, {"node", "/dev/" + region.name}});
    else
        log::warn("EGM region",
                  {{"region", region.name}, {"gpus", join(region.gpus, ",")}, {"problem", region.problem}});
}

void applyUevent(DeviceRegistry &registry, const Uevent &event)
{
    if (event.subsystem == "pci") {
        std::string errorEvent;
        if (auto it = event.properties.find("ERROR_EVENT"); it != event.properties.end())
            errorEvent = it->second;
        if (!errorEvent.empty())
            log::warn("PCIe error recovery event", {{"device", event.sysname}, {"event", errorEvent}});
        bool rebound = event.action == "add" || event.action == "remove" || event.action == "bind" ||
                       event.action == "unbind";
        registry.reconcilePciFunction(event.sysname, errorEvent, rebound);
    } else if (event.subsystem == "mdev") {
        registry.reconcileMdev(event.sysname);
    } else if (event.subsystem == "vfio") {
        // /dev/vfio/<N> for a group; anything else (the container node,
        // iommufd cdevs) is re-read as a whole.
        if (std::optional<int> group = parseGroupNumber(event.sysname))
            registry.reconcileVfioNode(*group);
        else
            registry.reconcileDevNodes();
    } else if (event.subsystem == "egm") {
        // EGM regions change nothing advertised; they are re-read at Allocate.
        // The log says what the node has now.
        if (const EgmRegion *region = registry.reconcileEgmRegion(event.sysname))
            logEgmRegion(*region);
        else
            log::info("EGM region removed", {{"region", event.sysname}});
    }
}

EventDispatch::EventDispatch(EventLoop &loop, DeviceRegistry &registry, Publish publish, Metrics &metrics)
    : loop_(loop), registry_(registry), publish_(std::move(publish)), metrics_(metrics)
{
}

void EventDispatch::initialScan()
{
    metrics_.rescan("start");
    registry_.rescan();
    const NodeObservation &node = registry_.observation();
    log::info("initial scan done", {{"functions", std::to_string(node.functions.size())},
                                    {"mdevs", std::to_string(node.mdevs.size())}});
    for (const auto &[id, unreadable] : node.unreadableFunctions)
        log::warn("cannot read device; skipping", {{"device", id}, {"problem", unreadable.problem}});
    for (const auto &[id, problem] : node.unreadableMdevs)
        log::warn("cannot read device; skipping", {{"device", id}, {"problem", problem}});
    publish();
}

void EventDispatch::uevent(const Uevent &event)
{
    log::debug("uevent", {{"action", event.action}, {"subsystem", event.subsystem}, {"device", event.sysname}});
    metrics_.ueventReceived(event.subsystem, event.action);
    if (!firstEventAt_)
        firstEventAt_ = std::chrono::steady_clock::now();
    applyUevent(registry_, event);
    reportProblem(event.sysname);
}

void EventDispatch::ueventBatchEnd(UeventMonitor::BatchEnd end)
{
    if (end == UeventMonitor::BatchEnd::Lost) {
        // The queue is empty again, so a scan now sees everything the
        // dropped events would have said.
        metrics_.overflow("uevent");
        requestRescan("uevents lost");
        return;
    }
    if (!rescanQueued_)
        publish();
}

void EventDispatch::devChanged(DevDirectory directory, DirectoryWatch::Change change, const std::string &name)
{
    log::debug("device node changed", {{"name", name}});
    if (!firstEventAt_)
        firstEventAt_ = std::chrono::steady_clock::now();
    if (change == DirectoryWatch::Change::Overflow)
        metrics_.overflow("inotify");
    bool unknown = change == DirectoryWatch::Change::Overflow || change == DirectoryWatch::Change::DirectoryGone;
    switch (directory) {
    case DevDirectory::Vfio:
        if (std::optional<int> group = parseGroupNumber(name); group && !unknown)
            registry_.reconcileVfioNode(*group);
        else
            registry_.reconcileDevNodes(); // the container node, or more than one entry
        break;
    case DevDirectory::Dev:
        // Of all of /dev only iommufd and the vfio directory are device state.
        if (unknown || name == "iommu" || name == "vfio")
            registry_.reconcileDevNodes();
        break;
    case DevDirectory::VfioDevices:
        registry_.reconcileDevNodes();
        break;
    }
}

void EventDispatch::devBatchEnd()
{
    if (!rescanQueued_)
        publish();
}

void EventDispatch::healthRead()
{
    if (!rescanQueued_)
        publish();
}

void EventDispatch::rulesChanged()
{
    if (!rescanQueued_)
        publish();
}

void EventDispatch::requestRescan(const std::string &why)
{
    if (stopped_)
        return;
    log::debug("rescan requested", {{"reason", why}});
    if (rescanRequests_++ == 0)
        rescanReason_ = why;
    if (rescanQueued_)
        return;
    rescanQueued_ = true;
    std::weak_ptr<EventDispatch *> self = self_;
    loop_.post([self] {
        if (std::shared_ptr<EventDispatch *> alive = self.lock())
            (*alive)->runRescan();
    });
}

void EventDispatch::runRescan()
{
    rescanQueued_ = false;
    if (stopped_)
        return;
    log::info("rescanning every device",
              {{"reason", rescanReason_}, {"requests", std::to_string(rescanRequests_)}});
    rescanRequests_ = 0;
    metrics_.rescan(rescanReason_ == "uevents lost" ? "overflow" : rescanReason_ == "SIGHUP" ? "sighup" : "other");
    registry_.rescan();
    publish();
}

void EventDispatch::stop()
{
    stopped_ = true;
    rescanQueued_ = false;
}

void EventDispatch::publish()
{
    if (stopped_)
        return;
    for (const DeviceIndex::Change &change : registry_.takeChanges())
        logChange(change);
    std::map<std::string, Resource> changed = registry_.takeChangedResources();
    if (!changed.empty()) {
        metrics_.resourcesPublished(changed);
        publish_(std::move(changed));
    }
    if (firstEventAt_) {
        metrics_.eventToPublish(std::chrono::steady_clock::now() - *firstEventAt_);
        firstEventAt_.reset();
    }
    if (published_)
        published_();
    // Every publish, once its subscribers have it, whether or not a list
    // changed: a test that must show that nothing happened waits for the
    // generation of a later event instead of sleeping.
    log::debug("published", {{"generation", std::to_string(++generation_)}});
}

void EventDispatch::reportProblem(const std::string &id)
{
    if (const std::string *problem = registry_.observation().problemOf(id))
        log::warn("cannot read device; skipping", {{"device", id}, {"problem", *problem}});
}

} // namespace kvgpu
