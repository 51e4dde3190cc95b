#include "device/observation.h"

namespace kvgpu {

void NodeObservation::apply(const PciObservation &observation, const std::string &address)
{
    // `problems` is shared with mdevs: only a problem of this function goes.
    functions.erase(address);
    if (unreadableFunctions.erase(address))
        problems.erase(address);
    switch (observation.state) {
    case PciObservation::State::Absent:
    case PciObservation::State::NotNvidia:
        break;
    case PciObservation::State::Unreadable:
        unreadableFunctions[address] = observation.function;
        problems[address] = observation.problem;
        break;
    case PciObservation::State::Present:
        functions[address] = observation.function;
        break;
    }
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
