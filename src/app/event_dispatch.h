// The one event path, and the one owner of change: every source hands its
// event here, only the dispatch changes the registry, and only the dispatch
// publishes what changed to the index's subscribers.
//
//   source                              enters through
//   kernel uevents (UeventMonitor)      uevent(), ueventBatchEnd()
//   /dev, /dev/vfio, /dev/vfio/devices  devChanged(), devBatchEnd()
//     (DevWatch)
//   the health timer (HealthPass)       readPolledHealth(), one GPU per loop turn
//   SR-IOV profiles (VgpuProfileWatch)  readVgpuProfiles()
//   the configuration (ConfigReloader)  checkRules(), applyRules()
//   SIGHUP, a uevent overflow           requestRescan()
//
// Each names what it touches, the registry re-reads exactly that, and the
// changes are published once per batch (a drained uevent queue, one inotify
// wake-up, one health read, one profile tick, one reload), never per event.
// Every publish has a generation, counted from 1 and logged at debug level
// ("published"), which tests use to tell that an event was processed.
//
// Rescans are coalesced: a request sets a flag and queues one run on the
// loop, however many requests arrive before it runs; stop() (SIGTERM) drops a
// queued run. A batch that ends while a rescan is queued is not published on
// its own: the rescan publishes it.
//
// applyUevent() is the mapping from one uevent to a reconcile step; the
// uevent fuzzer drives it directly.
//
// Threading contract: bound to the loop thread, like the registry it drives
// and the subscribers it calls.
#pragma once

#include "index/index_changes.h"
#include "index/registry.h"
#include "loop/event_loop.h"
#include "loop/lifeline.h"
#include "metrics/metrics.h"
#include "monitor/dev_watch.h"
#include "monitor/uevent_monitor.h"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kvgpu {

// What a uevent makes the registry re-read. Unknown subsystems and malformed
// names are ignored; nothing here throws.
void applyUevent(DeviceRegistry &registry, const Uevent &event);

// "EGM region" with its GPUs and device node (or what is wrong with it).
void logEgmRegion(const EgmRegion &region);

class EventDispatch final : public UeventMonitor::Sink, public DevWatch::Sink {
public:
    // Events, rescans, overflows and publishes are counted in `metrics`.
    EventDispatch(EventLoop &loop, DeviceRegistry &registry, Metrics &metrics = Metrics::none());
    EventDispatch(const EventDispatch &) = delete;
    EventDispatch &operator=(const EventDispatch &) = delete;

    // Every publish goes to every subscriber, in the order they subscribed.
    // A subscriber must outlive the dispatch or the loop's last turn.
    void subscribe(IndexSubscriber &subscriber) { subscribers_.push_back(&subscriber); }

    // The first full scan, logged with what it found, and published at once.
    void initialScan();

    void uevent(const Uevent &event) override;
    void ueventBatchEnd(UeventMonitor::BatchEnd end) override;
    void devChanged(DevWatch::Directory directory, DirectoryWatch::Change change, const std::string &name) override;
    void devBatchEnd() override;

    // The GPUs and NVSwitches whose health signals change without an event.
    std::vector<std::string> polledHealthTargets() const { return registry_.polledHealthTargets(); }
    // Re-reads those signals of one of them and publishes its verdict.
    void readPolledHealth(const std::string &address);
    // Re-reads the profile of every nvidia-bound SR-IOV VF and publishes the
    // VFs whose profile changed.
    void readVgpuProfiles();
    // Whether `rules` can apply to the devices on the node now.
    Result<void> checkRules(const NodeRules &rules) { return registry_.checkRules(rules); }
    // Makes `rules` the ones in force, re-derives every device and publishes the moves.
    void applyRules(std::shared_ptr<const NodeRules> rules);

    // Queues one full rescan (coalesced with every request until it runs).
    void requestRescan(const std::string &why);
    // Drops a queued rescan and publishes nothing from now on.
    void stop();

    // The generation of the last publish (0 before the first).
    std::uint64_t generation() const { return generation_; }

private:
    void noteEvent();
    // Ends a batch: publishes unless a queued rescan will.
    void endBatch();
    void publish();
    void runRescan();
    void reportProblem(const std::string &id);

    EventLoop &loop_;
    DeviceRegistry &registry_;
    Metrics &metrics_;
    std::vector<IndexSubscriber *> subscribers_;
    std::optional<std::chrono::steady_clock::time_point> firstEventAt_; // of the batch not yet published
    std::uint64_t generation_ = 0;
    bool rescanQueued_ = false;
    unsigned long rescanRequests_ = 0; // since the last run, for the log
    std::string rescanReason_;         // of the first of them
    bool stopped_ = false;
    Lifeline lifeline_; // a queued rescan runs only while the dispatch exists
};

} // namespace kvgpu
