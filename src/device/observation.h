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

    // Records one observation, replacing whatever was known of that device.
    void apply(const PciObservation &observation, const std::string &address);
    void apply(const MdevObservation &observation, const std::string &uuid);
};

} // namespace kvgpu
