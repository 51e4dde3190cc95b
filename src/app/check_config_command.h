// `kubevirt-gpu-device-plugin check-config FILE [--node-name N]`: validates a
// resource configuration as the daemon would, then prints, for this node,
// the rules in force and every device with the resource it would get and
// the rule that decided it. Exits 0 when the daemon would accept the file
// on this node, 1 (with the error) when not. The formatter is pure.
#pragma once

#include "config/rule_match.h"
#include "index/device_row.h"

#include <string>

namespace kvgpu {

struct CommonOptions;

std::string formatConfigCheck(const std::string &file, const std::string &hash, const std::string &nodeName,
                              const NodeRules &rules, const Inventory &inventory);

int runCheckConfigCommand(const CommonOptions &options, const std::string &file);

} // namespace kvgpu
