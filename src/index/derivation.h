// Derives what one device amounts to from what is observed: whether it is
// advertised, under which resource, with what health and topology, and, when
// it is not, why not. This is the one place where policy about devices lives;
// it does no I/O (names come through PciNameSource).
//
// Thread safety: pure functions of their inputs (PciNameSource is used on the
// caller's thread).
#pragma once

#include "index/device_row.h"
#include "health/health_history.h"
#include "sysfs/observation.h"
#include "naming/pci_names.h"
#include "index/resource.h"
#include "naming/resource_naming.h"
#include "naming/rule_decision.h"

#include <optional>
#include <string>

namespace kvgpu {

// What one device amounts to: its `list` row and, when advertised, the
// resource and the device as ListAndWatch shows it.
struct DerivedDevice {
    DeviceRow row;
    DeviceKind kind = DeviceKind::Passthrough;
    std::string resource; // empty when not advertised
    std::string repair;   // what repairing the resource name changed, if anything
    DeviceApi api = DeviceApi::DevicePlugin; // the API that offers it, as the rules decide
    AdvertisedDevice device;
    // An SR-IOV VF bound to nvidia: its profile can change without an event,
    // so it is read on a timer (app/vgpu_profile_watch.h).
    bool profilePolled = false;
};

// `rules` (may be null) are the configured rules of this node: the first that
// matches an advertisable device names or excludes it.
DerivedDevice deriveFunction(const PciFunction &function, const NodeObservation &node,
                             const HealthHistories &histories, PciNameSource &names,
                             const NodeRules *rules = nullptr);
DerivedDevice deriveUnreadableFunction(const UnreadableFunction &unreadable);
DerivedDevice deriveMdev(const Mdev &mdev, const NodeObservation &node, const HealthHistories &histories,
                         PciNameSource &names, const NodeRules *rules = nullptr);
DerivedDevice deriveUnreadableMdev(const std::string &uuid, const std::string &problem);

// The derivation of one device of `node` by id: nullopt when the node has no
// such NVIDIA function or mdev.
std::optional<DerivedDevice> deriveDevice(const NodeObservation &node, const HealthHistories &histories,
                                          const std::string &id, PciNameSource &names,
                                          const NodeRules *rules = nullptr);

// Whether `rules` can apply to `node` as it is now; they cannot when a
// resource name would hold both passthrough GPUs and vGPUs (KubeVirt reads one
// variable prefix per resource) or be offered by both APIs, and the error
// says which.
Result<void> checkKinds(const NodeObservation &node, const HealthHistories &histories, PciNameSource &names,
                        const NodeRules &rules);

// The resource a device is advertised under, and what repairing its name
// changed (empty when nothing): the default names, kept when no configured
// rule names the device.
struct NamedResource {
    std::string name;
    std::string repair;
};
NamedResource passthroughResourceName(const PciFunction &function, PciNameSource &names);
NamedResource vgpuResourceName(const Mdev &mdev);
// An SR-IOV vGPU profile's resource: the profile name with runs of whitespace
// to '_', case kept, repaired as mdev names are ("NVIDIA H200X-1-18C" ->
// nvidia.com/NVIDIA_H200X-1-18C); the type id when nothing is left.
NamedResource sriovVgpuResourceName(const std::string &profileName, std::uint32_t typeId);

// The SR-IOV driver: VFs stay bound to it and carry their profile in its
// nvidia/ attribute group.
inline constexpr const char *kSriovVgpuDriver = "nvidia";

} // namespace kvgpu
