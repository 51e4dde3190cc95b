// The resource configuration (--config FILE) as values: rules that rename or
// exclude devices, globally and per node. The YAML form is parsed and
// validated in config_parser.h; rules are matched in rule_match.h.
//
// Thread safety: plain values; immutable once built, shareable between threads.
#pragma once

#include "config/glob.h"
#include "model/device_api.h"
#include "model/device_kind.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kvgpu {

// Where something is in the file; 1-based, 0 when unknown.
struct SourcePosition {
    int line = 0;
    int column = 0;
};

struct PciDeviceId {
    std::uint16_t vendor = 0;
    std::uint16_t device = 0;
    bool operator==(const PciDeviceId &) const = default;
};

// Every given key must match; a key that is absent matches every device.
struct DeviceMatch {
    std::optional<DeviceKind> kind;
    std::vector<PciDeviceId> deviceIds;   // a vGPU matches by its parent GPU's id
    std::optional<Glob> model;            // pci.ids name of a GPU, profile (type) name of a vGPU
    std::vector<std::string> addresses;   // lower case; PCI addresses (a vGPU: its parent's) or vGPU UUIDs
    std::vector<int> numaNodes;           // -1 matches devices whose NUMA node is unknown
};

struct ResourceRule {
    std::string name;  // the full resource name ("nvidia.com/passthrough-gpu"); empty when exclude
    bool exclude = false;
    DeviceMatch match;
    std::optional<DeviceApi> api; // `api:`; unset: the node entry's, then the file's, then device-plugin
    std::string path;  // where it is in the file: "resources[0]", "nodes[1].resources[0]"
    SourcePosition position;

    // "resources[0] (line 3)": how `list` and check-config name the rule.
    std::string describe() const;
};

struct NodeSection {
    Glob name; // glob on the node name
    std::optional<DeviceApi> api; // the default of this entry's rules and of its node's other devices
    std::vector<ResourceRule> resources;
    SourcePosition position;
};

struct ResourceConfig {
    int version = 1;
    std::optional<DeviceApi> api; // the default of the whole file
    std::vector<ResourceRule> resources;
    std::vector<NodeSection> nodes;
};

} // namespace kvgpu
