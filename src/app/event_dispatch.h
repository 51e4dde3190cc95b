// The one event path. Every source of change enters here: uevents, inotify
// changes of /dev, /dev/vfio and /dev/vfio/devices, rescan requests (SIGHUP,
// a uevent overflow) and the health pass (health_pass.h), which reads into the
// registry itself, one device per loop turn, and reports each read here. Each names what it touches, the
// registry re-reads exactly that, and the changes are published once per
// batch (a drained uevent queue, one inotify wake-up), never per event.
//
// Rescans are coalesced: a request sets a flag and queues one run on the
// loop, however many requests arrive before it runs; stop() (SIGTERM) drops a
// queued run. A batch that ends while a rescan is queued is not published on
// its own: the rescan publishes it.
//
// applyUevent() is the mapping from one uevent to a reconcile step; the
// uevent fuzzer drives it directly.
//
// Threading contract: bound to the loop thread, like the registry it drives.
#pragma once

#include "device/registry.h"
#include "loop/event_loop.h"
#include "metrics/metrics.h"
#include "monitor/directory_watch.h"
#include "monitor/uevent_monitor.h"

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace kvgpu {

// What a uevent makes the registry re-read. Unknown subsystems and malformed
// names are ignored; nothing here throws.
void applyUevent(DeviceRegistry &registry, const Uevent &event);

// "EGM region" with its GPUs and device node (or what is wrong with it).
void logEgmRegion(const EgmRegion &region);

class EventDispatch {
public:
    // The /dev directories whose entries are device state.
    enum class DevDirectory { Dev, Vfio, VfioDevices };
    // Receives the resources whose lists changed, in full (the plugin manager).
    using Publish = std::function<void(std::map<std::string, Resource>)>;

    // Events, rescans, overflows and publishes are counted in `metrics`.
    EventDispatch(EventLoop &loop, DeviceRegistry &registry, Publish publish, Metrics &metrics = Metrics::none());
    EventDispatch(const EventDispatch &) = delete;
    EventDispatch &operator=(const EventDispatch &) = delete;

    // The first full scan, logged with what it found, and published at once.
    void initialScan();

    void uevent(const Uevent &event);
    void ueventBatchEnd(UeventMonitor::BatchEnd end);
    void devChanged(DevDirectory directory, DirectoryWatch::Change change, const std::string &name);
    void devBatchEnd();
    // The health pass re-read the polled signals of a device: publish its verdict.
    void healthRead();
    // The SR-IOV profile watch re-read VFs and some changed: publish them.
    void profilesRead() { healthRead(); }
    // Runs after every publish (whether or not a list changed), e.g. for the
    // profile watch to start or stop with the VFs.
    void onPublished(std::function<void()> hook) { published_ = std::move(hook); }
    // The configured rules changed and every device was re-derived: publish the moves.
    void rulesChanged();

    // Queues one full rescan (coalesced with every request until it runs).
    void requestRescan(const std::string &why);
    // Drops a queued rescan and publishes nothing from now on.
    void stop();

private:
    void publish();
    void runRescan();
    void reportProblem(const std::string &id);

    EventLoop &loop_;
    DeviceRegistry &registry_;
    Publish publish_;
    Metrics &metrics_;
    std::optional<std::chrono::steady_clock::time_point> firstEventAt_; // of the batch not yet published
    bool rescanQueued_ = false;
    unsigned long rescanRequests_ = 0; // since the last run, for the log
    std::string rescanReason_;         // of the first of them
    bool stopped_ = false;
    std::function<void()> published_;
    unsigned long generation_ = 0; // publishes so far, logged with each
    // Lets a queued rescan see that the dispatch is gone.
    std::shared_ptr<EventDispatch *> self_ = std::make_shared<EventDispatch *>(this);
};

} // namespace kvgpu
