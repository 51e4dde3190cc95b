#include "health/health_history.h"

#include <fmt/format.h>

namespace kvgpu {

std::string polledProblem(const PolledHealth &polled, std::optional<long> aerFatalBaseline)
{
    if (polled.configVendor == 0xffff)
        return "fell off the bus: config space reads vendor 0xffff";
    if (polled.powerState == "error")
        return "power state is error";
    if (polled.aerFatal && aerFatalBaseline && *polled.aerFatal > *aerFatalBaseline)
        return fmt::format("{} fatal AER error(s) since it was bound", *polled.aerFatal - *aerFatalBaseline);
    return {};
}

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
               ++history.goodReadsSince >= HealthHistories::kGoodReadsToRecover) {
        history.polledProblem.clear();
        history.goodReadsSince = 0;
    }
}

} // namespace

HealthHistories HealthHistories::firstReading(const NodeObservation &node)
{
    HealthHistories histories;
    histories.followAll(node);
    return histories;
}

void HealthHistories::follow(const NodeObservation &node, const std::string &address)
{
    auto f = node.functions.find(address);
    if (f == node.functions.end()) {
        // Removed: whatever comes back starts afresh. An unreadable function
        // may be readable again on the next event and keeps what it had.
        if (!node.unreadableFunctions.contains(address))
            histories_.erase(address);
        return;
    }
    HealthHistory &h = histories_[address];
    if (h.driver != f->second.driver) {
        // Bound to another driver (or unbound): a failed recovery and old
        // AER errors belong to the previous binding.
        h = HealthHistory{};
        h.driver = f->second.driver;
    }
    if (!h.aerFatalBaseline)
        h.aerFatalBaseline = f->second.polled.aerFatal;
    advancePolled(h, f->second.polled);
}

void HealthHistories::followAll(const NodeObservation &node)
{
    std::erase_if(histories_, [&](const auto &entry) {
        return !node.functions.contains(entry.first) && !node.unreadableFunctions.contains(entry.first);
    });
    for (const auto &[address, f] : node.functions)
        follow(node, address);
}

void HealthHistories::followPolled(const NodeObservation &node, const std::string &address)
{
    auto f = node.functions.find(address);
    if (f == node.functions.end())
        return;
    advancePolled(histories_[address], f->second.polled);
}

void HealthHistories::recordErrorEvent(const NodeObservation &node, const std::string &address,
                                       const std::string &errorEvent)
{
    HealthHistory &h = histories_[address];
    if (errorEvent == "BEGIN_RECOVERY") {
        h.recovery = HealthHistory::Recovery::InProgress;
    } else if (errorEvent == "FAILED_RECOVERY") {
        h.recovery = HealthHistory::Recovery::Failed;
    } else if (errorEvent == "SUCCESSFUL_RECOVERY") {
        // An explicit recovery: the errors it recovered from are accounted for.
        h.recovery = HealthHistory::Recovery::None;
        h.polledProblem.clear();
        h.goodReadsSince = 0;
        if (auto f = node.functions.find(address); f != node.functions.end())
            h.aerFatalBaseline = f->second.polled.aerFatal;
    }
}

const HealthHistory *HealthHistories::find(const std::string &address) const
{
    auto it = histories_.find(address);
    return it == histories_.end() ? nullptr : &it->second;
}

} // namespace kvgpu
