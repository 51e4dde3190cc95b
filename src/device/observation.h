// What the plugin observes on the node: NVIDIA PCI functions and mediated
// devices as sysfs shows them, and which /dev/vfio group nodes exist. These are
// facts only; src/device/inventory.h derives what is advertised from them.
//
// Thread safety: plain values.
#pragma once

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

// What the node has shown of a function's health over time: the verdicts
// that depend on history rather than on one reading.
struct HealthHistory {
    enum class Recovery { None, InProgress, Failed };
    Recovery recovery = Recovery::None;   // from ERROR_EVENT change uevents
    std::optional<long> aerFatalBaseline; // counter when the function was first seen bound
    std::string polledProblem;            // why the polled signals were last bad
    int goodReadsSince = 0;               // good reads since polledProblem was set
    std::string driver;                   // driver seen with this history
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

// Everything observed, keyed by PCI address or UUID.
struct NodeObservation {
    std::map<std::string, PciFunction> functions;           // NVIDIA functions only
    std::map<std::string, Mdev> mdevs;
    std::map<std::string, PciFunction> unreadableFunctions; // what could be read of them
    std::map<std::string, std::string> problems;            // address or UUID -> problem
    std::set<int> vfioGroupNodes;                           // N for each /dev/vfio/N present
    bool iommufd = false;                                   // <dev-root>/iommu exists
    std::map<int, std::vector<GroupMember>> groups;         // IOMMU groups of NVIDIA functions
    std::map<std::string, HealthHistory> history;           // by PCI address

    // Recovery needs this many consecutive good reads of the polled signals
    // (or an explicit recovery event), so a device does not flap.
    static constexpr int kGoodReadsToRecover = 2;

    // Records one observation, replacing whatever was known of that device,
    // and advances its health history (AER baseline, polled-signal hysteresis;
    // a new driver starts a new history).
    void apply(const PciObservation &observation, const std::string &address);
    // An AER/DPC recovery uevent: BEGIN_RECOVERY, SUCCESSFUL_RECOVERY or FAILED_RECOVERY.
    void recordErrorEvent(const std::string &address, const std::string &errorEvent);
    // New polled readings of a function (the health timer).
    void applyPolled(const std::string &address, const PolledHealth &polled);
    void apply(const MdevObservation &observation, const std::string &uuid);
};

} // namespace kvgpu
