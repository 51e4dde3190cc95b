#include "sysfs/observation.h"

namespace kvgpu {

void NodeObservation::apply(const PciObservation &observation, const std::string &address)
{
    functions.erase(address);
    unreadableFunctions.erase(address);
    switch (observation.state) {
    case PciObservation::State::Absent:
    case PciObservation::State::NotNvidia:
        break;
    case PciObservation::State::Unreadable:
        unreadableFunctions[address] = UnreadableFunction{observation.function, observation.problem};
        break;
    case PciObservation::State::Present:
        functions[address] = observation.function;
        break;
    }
}

void NodeObservation::apply(const MdevObservation &observation, const std::string &uuid)
{
    mdevs.erase(uuid);
    unreadableMdevs.erase(uuid);
    switch (observation.state) {
    case MdevObservation::State::Absent:
        break;
    case MdevObservation::State::Unreadable:
        unreadableMdevs[uuid] = observation.problem;
        break;
    case MdevObservation::State::Present:
        mdevs[uuid] = observation.mdev;
        break;
    }
}

bool NodeObservation::applyPolled(const std::string &address, const PolledHealth &polled)
{
    auto f = functions.find(address);
    if (f == functions.end())
        return false;
    f->second.polled = polled;
    return true;
}

const std::string *NodeObservation::problemOf(const std::string &id) const
{
    if (auto f = unreadableFunctions.find(id); f != unreadableFunctions.end())
        return &f->second.problem;
    if (auto m = unreadableMdevs.find(id); m != unreadableMdevs.end())
        return &m->second;
    return nullptr;
}

} // namespace kvgpu
