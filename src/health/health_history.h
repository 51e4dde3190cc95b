// What the node has shown of each function's health over time: the verdicts
// that depend on history rather than on one reading. A polled problem (fell off
// the bus, power state error, fatal AER errors since the function was bound)
// holds until kGoodReadsToRecover good reads in a row or a successful recovery
// event, so that a device does not flap; recovery events (AER/DPC uevents)
// leave a state that sysfs does not show.
//
// The history follows the observation: whoever applies an observation to a
// NodeObservation then calls follow() (or followPolled()) for that function.
//
// Thread safety: plain values, thread-compatible.
#pragma once

#include "sysfs/observation.h"

#include <map>
#include <optional>
#include <string>

namespace kvgpu {

// What the polled signals say right now; empty when they are fine.
std::string polledProblem(const PolledHealth &polled, std::optional<long> aerFatalBaseline);

// The history of one PCI function, for as long as it keeps its driver.
struct HealthHistory {
    enum class Recovery { None, InProgress, Failed };
    Recovery recovery = Recovery::None;   // from ERROR_EVENT change uevents
    std::optional<long> aerFatalBaseline; // counter when the function was first seen bound
    std::string polledProblem;            // why the polled signals were last bad
    int goodReadsSince = 0;               // good reads since polledProblem was set
    std::string driver;                   // driver seen with this history
};

// The histories of every function, by PCI address.
class HealthHistories {
public:
    // Recovery needs this many consecutive good reads of the polled signals
    // (or an explicit recovery event).
    static constexpr int kGoodReadsToRecover = 2;

    // The histories of a node seen once, with nothing before (`list`, a fresh scan).
    static HealthHistories firstReading(const NodeObservation &node);

    // After a new observation of `address` was applied to `node`: a present
    // function's history takes the reading (a new driver starts a new history;
    // the AER baseline is its first counter), an unreadable one keeps its
    // history, and a function gone (or not NVIDIA) loses it.
    void follow(const NodeObservation &node, const std::string &address);
    // The same for every function after a rescan applied them all.
    void followAll(const NodeObservation &node);
    // After new polled readings were applied (the health timer).
    void followPolled(const NodeObservation &node, const std::string &address);
    // An AER/DPC recovery uevent: BEGIN_RECOVERY, SUCCESSFUL_RECOVERY or
    // FAILED_RECOVERY. A successful one takes the counters `node` holds now.
    void recordErrorEvent(const NodeObservation &node, const std::string &address, const std::string &errorEvent);
    // Starts the function's history afresh (it was added, removed, bound or unbound).
    void forget(const std::string &address) { histories_.erase(address); }

    // nullptr when nothing is recorded for the function.
    const HealthHistory *find(const std::string &address) const;

private:
    std::map<std::string, HealthHistory> histories_;
};

} // namespace kvgpu
