// What the plugin observes on the node: NVIDIA PCI functions and mediated
// devices as sysfs shows them, and which /dev/vfio group nodes exist. These are
// facts only: what the node showed over time is health_history.h, and
// derivation.h derives what is advertised from both.
//
// Thread safety: plain values.
#pragma once

#include "sysfs/vgpu_types.h"

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace kvgpu {

inline constexpr std::uint16_t kNvidiaVendorId = 0x10de;

// Health signals of a PCI function that change without a uevent; read on
// every event that touches the function and by the slow health timer.
struct PolledHealth {
    std::string powerState;                  // D0..D3hot, D3cold, unknown, error; empty when absent
    std::optional<std::uint16_t> configVendor; // vendor id in config space; not read in D3cold
    std::optional<long> aerFatal;            // TOTAL_ERR_FATAL of aer_dev_fatal
    std::vector<std::string> unreadable;     // files that are there but cannot be read, with the reason
    bool operator==(const PolledHealth &) const = default;
};

// A member of an IOMMU group, whatever its vendor: group viability depends on
// every one of them.
struct GroupMember {
    std::string address;
    std::string driver;
    std::uint32_t classCode = 0;
    bool operator==(const GroupMember &) const = default;
};

struct PciFunction {
    std::string address;               // "0000:65:00.0"
    std::uint16_t vendor = 0;
    std::uint16_t device = 0;
    std::uint32_t classCode = 0;       // 24 bits, e.g. 0x030200
    std::string driver;                // empty when unbound
    int iommuGroup = -1;               // -1 when the link cannot be read
    std::string iommuGroupProblem;     // why iommuGroup is -1
    int numaNode = -1;                 // -1 = unknown
    std::vector<std::string> pciePath; // ancestors under /sys/devices, top first, self excluded
    std::string vfioDevice;            // "vfio3" when vfio-dev/vfio3 exists (iommufd), else empty
    std::vector<std::string> mdevTypes;// type ids under mdev_supported_types
    PolledHealth polled;               // signals that change without an event
    std::optional<std::string> resetMethod; // nullopt: no reset_method file
    std::string linkSpeed, maxLinkSpeed, linkWidth, maxLinkWidth; // empty when unknown
    std::vector<std::string> unreadable; // optional entries that are there but cannot be read, with the reason
    // SR-IOV (vGPU 17+): a PF has sriov_totalvfs, a VF has a physfn link and,
    // while bound to nvidia, the nvidia/ attribute group with its profile.
    int sriovTotalVfs = -1;                       // -1: not an SR-IOV PF
    int sriovNumVfs = 0;
    std::string physfn;                           // a VF's PF; empty for anything else
    std::optional<std::uint32_t> currentVgpuType; // nvidia/current_vgpu_type; nullopt without the file
    std::string vgpuTypeProblem;                  // why current_vgpu_type could not be read
    std::vector<VgpuType> creatableVgpuTypes;     // nvidia/creatable_vgpu_types
};

// The name of an SR-IOV vGPU type that no catalog on the node shows any more,
// as the daemon remembered it or NVML told it (vgpu_name_book.h).
struct RecalledVgpuName {
    std::string name;
    std::string source; // "names learned earlier", "NVML"
};

struct Mdev {
    std::string uuid;
    std::string parentAddress;
    std::uint16_t parentVendor = 0;
    std::string typeId;                // "nvidia-222"
    std::string typeName;              // contents of the type's name file; empty if there is none
    int iommuGroup = -1;
    int numaNode = -1;                 // the parent's
    std::vector<std::string> pciePath; // the parent's path, parent included
    std::string driver;
    std::string vfioDevice;
};

// One observation of one PCI function, as a reconcile step sees it.
struct PciObservation {
    enum class State { Absent, NotNvidia, Unreadable, Present };
    State state = State::Absent;
    PciFunction function; // partly filled when Unreadable
    std::string problem;  // why it is Unreadable, naming the file
};

struct MdevObservation {
    enum class State { Absent, Unreadable, Present };
    State state = State::Absent;
    Mdev mdev;
    std::string problem;
};

// What could be read of a PCI function that cannot be read whole, and why not.
struct UnreadableFunction {
    PciFunction function; // partly filled
    std::string problem;  // names the file
};

// Everything observed, keyed by PCI address or UUID. Each device is in at most
// one map of its kind: present or unreadable.
struct NodeObservation {
    std::map<std::string, PciFunction> functions;                  // NVIDIA functions only
    std::map<std::string, Mdev> mdevs;
    std::map<std::string, UnreadableFunction> unreadableFunctions; // by address
    std::map<std::string, std::string> unreadableMdevs;            // UUID -> problem
    std::set<int> vfioGroupNodes;                                  // N for each /dev/vfio/N present
    bool iommufd = false;                                          // <dev-root>/iommu exists
    std::map<int, std::vector<GroupMember>> groups;                // IOMMU groups of NVIDIA functions
    // SR-IOV vGPU names from outside the node's catalogs, by (PF, type id),
    // and what was tried besides the catalogs (for "name unknown").
    std::map<std::pair<std::string, std::uint32_t>, RecalledVgpuName> recalledVgpuNames;
    std::vector<std::string> vgpuNameFallbacks;

    // Records one observation, replacing whatever was known of that device.
    void apply(const PciObservation &observation, const std::string &address);
    void apply(const MdevObservation &observation, const std::string &uuid);
    // New polled readings of a function (the health timer); false when no
    // such function is present.
    bool applyPolled(const std::string &address, const PolledHealth &polled);

    // Why the device of this name, of either kind, could not be read; nullptr
    // when it could (or is not known).
    const std::string *problemOf(const std::string &id) const;
};

} // namespace kvgpu
