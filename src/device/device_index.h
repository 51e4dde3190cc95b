// What is advertised, kept up to date one device at a time from derived
// devices (derivation.h): the resources with their devices, the `list` rows,
// and what changed since the last look.
//
// Thread safety: DeviceIndex is thread-compatible (the registry keeps it on
// the loop thread); deriveInventory is a pure function of its inputs.
#pragma once

#include "device/derivation.h"
#include "device/device_row.h"
#include "device/health_history.h"
#include "device/observation.h"
#include "device/pci_names.h"
#include "device/resource.h"

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
    struct Change {
        enum class Kind { Advertised, Withdrawn, HealthChanged, Warnings };
        Kind kind;
        std::string id;
        std::string resource;
        bool healthy = true;
        std::string reason; // health reason
        std::string repair; // name repair, on the first device of a repaired name
        std::vector<std::string> warnings; // for Kind::Warnings
    };

    // Replaces what is known of device `id`; nullopt forgets it.
    void set(const std::string &id, std::optional<DerivedDevice> derived);

    // Resources whose device list changed since the last call, each built in full.
    std::map<std::string, Resource> takeChangedResources();
    std::vector<Change> takeChanges();

    // Advertised devices in an IOMMU group (health depends on its node).
    std::vector<std::string> idsInGroup(int group) const;
    std::vector<std::string> ids() const;
    Resource resource(const std::string &name) const;
    Inventory inventory() const;

private:
    struct ResourceState {
        DeviceKind kind;
        std::map<std::string, AdvertisedDevice> devices;
    };
    std::map<std::string, DerivedDevice> devices_;
    std::map<std::string, ResourceState> resources_; // names stay once seen: an emptied resource lists nothing
    std::map<int, std::set<std::string>> groups_;
    std::map<std::string, std::string> repairs_;
    std::set<std::string> touched_;
    std::vector<Change> changes_;
};

// The inventory of a whole node at once, built as the registry builds it one
// device at a time.
// `rules` (may be null) are the configured rules of the node.
Inventory deriveInventory(const NodeObservation &node, const HealthHistories &histories, PciNameSource &names,
                          const NodeRules *rules = nullptr);
// The same for a node seen once, with no health history before (`list`).
Inventory deriveInventory(const NodeObservation &node, PciNameSource &names, const NodeRules *rules = nullptr);

} // namespace kvgpu
