#include "device/observation.h"

#include "device/health.h"

namespace kvgpu {

namespace {
// One more reading of the polled signals: a bad one (re)starts the count, good
// ones count towards recovery.
void advancePolled(HealthHistory &history, const PolledHealth &polled)
{
    std::string problem = polledProblem(polled, history.aerFatalBaseline);
    if (!problem.empty()) {
        history.polledProblem = std::move(problem);
        history.goodReadsSince = 0;
    } else if (!history.polledProblem.empty() &&
               ++history.goodReadsSince >= NodeObservation::kGoodReadsToRecover) {
        history.polledProblem.clear();
        history.goodReadsSince = 0;
    }
}
} // namespace

void NodeObservation::apply(const PciObservation &observation, const std::string &address)
{
    // `problems` is shared with mdevs: only a problem of this function goes.
    functions.erase(address);
    if (unreadableFunctions.erase(address))
        problems.erase(address);
    switch (observation.state) {
    case PciObservation::State::Absent:
    case PciObservation::State::NotNvidia:
        history.erase(address); // removed: whatever comes back starts afresh
        break;
    case PciObservation::State::Unreadable:
        unreadableFunctions[address] = observation.function;
        problems[address] = observation.problem;
        break;
    case PciObservation::State::Present: {
        const PciFunction &f = functions[address] = observation.function;
        HealthHistory &h = history[address];
        if (h.driver != f.driver) {
            // Bound to another driver (or unbound): a failed recovery and old
            // AER errors belong to the previous binding.
            h = HealthHistory{};
            h.driver = f.driver;
        }
        if (!h.aerFatalBaseline)
            h.aerFatalBaseline = f.polled.aerFatal;
        advancePolled(h, f.polled);
        break;
    }
    }
}

void NodeObservation::recordErrorEvent(const std::string &address, const std::string &errorEvent)
{
    HealthHistory &h = history[address];
    if (errorEvent == "BEGIN_RECOVERY") {
        h.recovery = HealthHistory::Recovery::InProgress;
    } else if (errorEvent == "FAILED_RECOVERY") {
        h.recovery = HealthHistory::Recovery::Failed;
    } else if (errorEvent == "SUCCESSFUL_RECOVERY") {
        // An explicit recovery: the errors it recovered from are accounted for.
        h.recovery = HealthHistory::Recovery::None;
        h.polledProblem.clear();
        h.goodReadsSince = 0;
        if (auto f = functions.find(address); f != functions.end())
            h.aerFatalBaseline = f->second.polled.aerFatal;
    }
}

void NodeObservation::applyPolled(const std::string &address, const PolledHealth &polled)
{
    auto f = functions.find(address);
    if (f == functions.end())
        return;
    f->second.polled = polled;
    advancePolled(history[address], polled);
}

void NodeObservation::apply(const MdevObservation &observation, const std::string &uuid)
{
    // An event can name the wrong kind of device (a PCI address in an mdev
    // event): that must not drop the problem of the PCI function of that name.
    mdevs.erase(uuid);
    if (!unreadableFunctions.contains(uuid))
        problems.erase(uuid);
    switch (observation.state) {
    case MdevObservation::State::Absent:
        break;
    case MdevObservation::State::Unreadable:
        problems[uuid] = observation.problem;
        break;
    case MdevObservation::State::Present:
        mdevs[uuid] = observation.mdev;
        break;
    }
}

} // namespace kvgpu
