// What one publish of the device index tells its subscribers, and the
// interface they implement. The index is the one source of what is
// advertised; every consumer of it (the kubelet's device plugin API, the
// SR-IOV profile watch, and next the DRA side) is a subscriber that receives
// what changed, once per batch of events, from EventDispatch.
//
// Threading contract: changes are delivered on the loop thread; a subscriber
// that hands them to other threads copies what it needs.
#pragma once

#include "index/resource.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace kvgpu {

// One device that was advertised, withdrawn, changed health or has warnings.
struct DeviceChange {
    enum class Kind { Advertised, Withdrawn, HealthChanged, Warnings };
    Kind kind;
    std::string id;
    std::string resource;
    bool healthy = true;
    std::string reason;                // health reason
    std::string repair;                // name repair, on the first device of a repaired name
    std::vector<std::string> warnings; // for Kind::Warnings
};

// What changed in one resource since the previous publish. A subscriber that
// keeps a resource's whole list applies it (applyDelta); nobody copies the
// whole list per change.
struct ResourceDelta {
    DeviceKind kind = DeviceKind::Passthrough;
    std::vector<AdvertisedDevice> set;  // added or changed, sorted by id
    std::vector<std::string> removed;   // ids that left the resource, sorted
    std::size_t healthy = 0;            // the resource's devices after the change
    std::size_t unhealthy = 0;

    bool operator==(const ResourceDelta &) const = default;
};

// A resource's devices by id, as a subscriber keeps them.
using DeviceMap = std::map<std::string, AdvertisedDevice>;

// Brings `devices` from the list before `delta` to the list after it.
void applyDelta(DeviceMap &devices, const ResourceDelta &delta);
// The change as the subscriber of one API sees it: a device the other API
// offers now is removed from its view, as a device that left is.
ResourceDelta restrictTo(ResourceDelta delta, DeviceApi api);
// Whether every device `delta` sets is offered by `api` (then restrictTo
// would change nothing, and the delta is used as it is).
bool allOfferedBy(const ResourceDelta &delta, DeviceApi api);
// The resource `name` as a whole list.
Resource toResource(const std::string &name, DeviceKind kind, const DeviceMap &devices);

struct IndexChanges {
    // Counts publishes from 1; tests and logs use it to tell that an event
    // was processed (see EventDispatch).
    std::uint64_t generation = 0;
    // Per device, in the order they happened.
    std::vector<DeviceChange> devices;
    // Resources whose lists changed, by name: only the devices that changed.
    // A resource that lost its last device stays, with no devices.
    std::map<std::string, ResourceDelta> resources;
    // How many SR-IOV VFs are bound to nvidia now: their profiles change
    // without an event (vgpu_profile_watch.h). Kept by the index as devices
    // are set, so reading it costs nothing.
    std::size_t profilePolledVfs = 0;
};

class IndexSubscriber {
public:
    virtual ~IndexSubscriber() = default;
    // Called after every batch of events, also when nothing changed (then
    // `changes.resources` and `changes.devices` are empty).
    virtual void indexChanged(const IndexChanges &changes) = 0;
};

} // namespace kvgpu
