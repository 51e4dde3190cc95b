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
};

struct Inventory {
    std::map<std::string, Resource> resources; // by name
    std::vector<DeviceRow> rows;               // sorted: PCI functions by address, then mdevs by UUID
    std::map<std::string, std::string> nameRepairs; // resource name -> what was repaired
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
