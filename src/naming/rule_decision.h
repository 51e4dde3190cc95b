// How the configured rules (--config) take part in derivation: what a rule
// can see of a device, and what the first matching rule makes of the
// resource it would get by default. Without rules nothing changes.
//
// Pure functions; thread-safe (PciNameSource is used on the caller's thread).
#pragma once

#include "config/rule_match.h"
#include "sysfs/observation.h"
#include "naming/pci_names.h"

#include <string>

namespace kvgpu {

DeviceFacts factsOfFunction(const PciFunction &function, PciNameSource &names);
// A vGPU matches deviceIds by its parent GPU's id, read from the node.
DeviceFacts factsOfMdev(const Mdev &mdev, const NodeObservation &node);
// An SR-IOV vGPU VF matches deviceIds by its own id (the PF's, on every card
// seen so far), model by its profile name, addresses by its own or its PF's.
DeviceFacts factsOfSriovVf(const PciFunction &vf, const std::string &profileName);

struct RuleDecision {
    bool excluded = false;
    std::string resource; // the rule's name; empty when no rule named the device
    std::string rule;     // which rule decided ("resources[0] (line 3)"); empty when none did
    DeviceApi api = DeviceApi::DevicePlugin; // the API that offers the device
    // Withheld while a reload moves it from `from` to `api` (NodeRules::previous).
    bool moving = false;
    DeviceApi from = DeviceApi::DevicePlugin;
};

// The first rule of `rules` (may be null: no configuration) that matches `device`.
RuleDecision decideByRules(const NodeRules *rules, const DeviceFacts &device);

} // namespace kvgpu
