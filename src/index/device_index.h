// What is advertised, kept up to date one device at a time from derived
// devices (derivation.h): the resources with their devices, the `list` rows,
// and what changed since the last look.
//
// Thread safety: DeviceIndex is thread-compatible (the registry keeps it on
// the loop thread); deriveInventory is a pure function of its inputs.
#pragma once

#include "index/derivation.h"
#include "index/device_row.h"
#include "health/health_history.h"
#include "index/index_changes.h"
#include "sysfs/observation.h"
#include "naming/pci_names.h"
#include "index/resource.h"

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace kvgpu {

// Replacing a device touches only the resources it left and joined, so the
// cost of an event does not grow with the size of the node.
class DeviceIndex {
public:
    using Change = DeviceChange;

    // Replaces what is known of device `id`; nullopt forgets it.
    void set(const std::string &id, std::optional<DerivedDevice> derived);

    // What changed since the last call: per device, and per resource only the
    // devices that changed (generation left 0 for the caller to number).
    IndexChanges takeChanges();

    // The nvidia-bound SR-IOV VFs, whose profiles change without an event.
    const std::set<std::string> &profilePolledVfs() const { return profilePolled_; }

    // Advertised devices in an IOMMU group (health depends on its node).
    std::vector<std::string> idsInGroup(int group) const;
    std::vector<std::string> ids() const;
    Resource resource(const std::string &name) const;
    Inventory inventory() const;

private:
    struct ResourceState {
        DeviceKind kind;
        DeviceMap devices;
        std::size_t unhealthy = 0;
    };
    void insertAdvertised(const std::string &resource, const AdvertisedDevice &device);
    void eraseAdvertised(const std::string &resource, const std::string &id);

    std::map<std::string, DerivedDevice> devices_;
    std::map<std::string, ResourceState> resources_; // names stay once seen: an emptied resource lists nothing
    std::map<int, std::set<std::string>> groups_;
    std::map<std::string, std::string> repairs_;
    std::map<std::string, std::set<std::string>> touched_; // resource -> ids that joined, left or changed
    std::vector<Change> changes_;
    std::map<std::string, std::size_t> healthOf_; // id -> its Advertised or HealthChanged entry in changes_
    std::set<std::string> profilePolled_;
};

// The inventory of a whole node at once, built as the registry builds it one
// device at a time.
// `rules` (may be null) are the configured rules of the node.
Inventory deriveInventory(const NodeObservation &node, const HealthHistories &histories, PciNameSource &names,
                          const NodeRules *rules = nullptr);
// The same for a node seen once, with no health history before (`list`).
Inventory deriveInventory(const NodeObservation &node, PciNameSource &names, const NodeRules *rules = nullptr);

} // namespace kvgpu
