// Which configured rule decides a device: the rules in force on a node (those
// of every `nodes` entry whose glob matches the node's name, in file order,
// before the global ones), and the first of them whose every given key
// matches the device.
//
// Pure functions; thread-safe.
#pragma once

#include "config/resource_config.h"

#include <cstdint>
#include <string>
#include <memory>
#include <string_view>
#include <vector>

namespace kvgpu {

// What a rule can match on, for one device.
struct DeviceFacts {
    DeviceKind kind = DeviceKind::Passthrough;
    PciDeviceId pciId;         // a GPU's own id; a vGPU's parent GPU's id (zero when unknown)
    std::string model;         // pci.ids name of a GPU; profile (type) name of a vGPU
    std::string address;       // PCI address of a GPU; UUID of a vGPU
    std::string parentAddress; // a vGPU's parent GPU; empty for a GPU
    int numaNode = -1;
};

// The rules of one node, in the order they are tried, and the API that offers
// a device no rule decides. Each rule's `api` is resolved: set from the node
// entry's default, then the file's, then device-plugin.
struct NodeRules {
    std::vector<ResourceRule> rules;
    DeviceApi api = DeviceApi::DevicePlugin;
    // While a reload moves devices between the APIs: the rules before it. A
    // device that the two give to different APIs is offered by neither until
    // the old API has withdrawn it (app/config_reloader.h).
    std::shared_ptr<const NodeRules> previous;
};

// Node entries apply only when the node has a name: with an empty name only
// the global rules are in force. The first node entry that matches and sets
// `api` gives the node's default API, else the file's `api`.
NodeRules rulesForNode(const ResourceConfig &config, std::string_view nodeName);

bool ruleMatches(const DeviceMatch &match, const DeviceFacts &device);

// The first rule that matches, or nullptr: the device keeps its default name.
const ResourceRule *firstMatchingRule(const NodeRules &rules, const DeviceFacts &device);

} // namespace kvgpu
