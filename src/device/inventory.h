// Derives what is advertised from what is observed: which resources exist,
// which devices each one lists with what health and topology, and, for every
// device that is not advertised, why not. This is the one place where policy
// about devices lives; it does no I/O (names come through PciNameSource).
//
// Thread safety: pure function of its inputs. The resulting values are
// immutable once built and may be shared between threads.
#pragma once

#include "device/observation.h"
#include "device/pci_names.h"
#include "device/resource_naming.h"

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace kvgpu {

inline constexpr const char *kHealthy = "Healthy";
inline constexpr const char *kUnhealthy = "Unhealthy";

struct AdvertisedDevice {
    std::string id;                    // PCI address or mdev UUID
    bool healthy = true;
    std::string healthReason;          // why it is unhealthy; empty when healthy
    int numaNode = -1;
    int iommuGroup = -1;
    std::vector<std::string> pciePath; // topology above the device, top first

    bool operator==(const AdvertisedDevice &) const = default;
};

struct Resource {
    std::string name;                  // "nvidia.com/TU104GL_TESLA_T4"
    DeviceKind kind = DeviceKind::Passthrough;
    std::vector<AdvertisedDevice> devices; // sorted by id

    bool operator==(const Resource &) const = default;
};

// One line of `list`: every NVIDIA PCI function and every mdev.
struct DeviceRow {
    std::string id;
    std::string kind;        // "pci" or "mdev"
    std::string ids;         // "10de:1eb8"; for an mdev, the type id
    std::string model;       // pci.ids name or vGPU type name; "" when unknown
    std::string driver;
    std::string deviceClass; // "display", "audio", ... ; "vgpu" for an mdev
    int iommuGroup = -1;
    int numaNode = -1;
    std::string resource;    // advertised under; empty when not advertised
    std::string reason;      // why not advertised, or why unhealthy
    std::string health;      // "Healthy"/"Unhealthy" when advertised
    std::vector<std::string> warnings; // reported, not unhealthy (no reset method, slow link)
};

struct Inventory {
    std::map<std::string, Resource> resources; // by name
    std::vector<DeviceRow> rows;               // sorted: PCI functions by address, then mdevs by UUID
    std::map<std::string, std::string> nameRepairs; // resource name -> what was repaired
};

// What one device amounts to: its `list` row and, when advertised, the
// resource and the device as ListAndWatch shows it.
struct DerivedDevice {
    DeviceRow row;
    DeviceKind kind = DeviceKind::Passthrough;
    std::string resource; // empty when not advertised
    std::string repair;   // what repairing the resource name changed, if anything
    AdvertisedDevice device;
};

DerivedDevice deriveFunction(const PciFunction &function, const NodeObservation &node, PciNameSource &names);
DerivedDevice deriveUnreadableFunction(const PciFunction &function, const std::string &problem);
DerivedDevice deriveMdev(const Mdev &mdev, const NodeObservation &node);
DerivedDevice deriveUnreadableMdev(const std::string &uuid, const std::string &problem);

// The derivation of one device of `node` by id: nullopt when the node has no
// such NVIDIA function or mdev.
std::optional<DerivedDevice> deriveDevice(const NodeObservation &node, const std::string &id, PciNameSource &names);

// What is advertised, kept up to date one device at a time. Replacing a
// device touches only the resources it left and joined, so the cost of an
// event does not grow with the size of the node.
//
// Thread safety: thread-compatible (the registry keeps it on the loop thread).
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

// A short human label for a PCI class code ("display", "3D controller",
// "audio", "USB", "serial bus", "bridge (NVSwitch)", "class 0x0b40").
std::string classLabel(std::uint32_t classCode);

// Whether a function of this class is a resource of its own (display
// controllers and NVSwitches) rather than a companion that travels with its
// IOMMU group.
bool isAdvertisedClass(std::uint32_t classCode);

// The resource a device is advertised under, and what repairing its name
// changed (empty when nothing). The same rules serve discovery and Allocate's
// re-check of a vGPU's type.
struct NamedResource {
    std::string name;
    std::string repair;
};
NamedResource passthroughResourceName(const PciFunction &function, PciNameSource &names);
NamedResource vgpuResourceName(const Mdev &mdev);

Inventory deriveInventory(const NodeObservation &node, PciNameSource &names);

} // namespace kvgpu
