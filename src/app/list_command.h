// `kubevirt-gpu-device-plugin list`: one scan, then every NVIDIA PCI function
// and every mdev with the resource it is advertised under, or why it is not,
// and the Grace EGM regions. The formatters are pure so they are tested on
// fixed inventories.
#pragma once

#include "base/result.h"
#include "config/rule_match.h"
#include "index/device_row.h"
#include "sysfs/egm.h"

#include <memory>
#include <string>
#include <vector>

namespace kvgpu {

std::string formatDeviceTable(const Inventory &inventory);
// The devices, the resources and the EGM regions, each region with its GPUs.
std::string formatDeviceJson(const Inventory &inventory, const std::vector<EgmRegion> &egmRegions);
// Grace EGM regions with their GPUs and device node; "" when there are none.
std::string formatEgmRegions(const std::vector<EgmRegion> &regions);

struct CommonOptions;
class DeviceRegistry;
class PciNameSource;

// The node seen once, the way the daemon sees it at start: a DeviceRegistry
// over --sysfs-root and --dev-root, recalling vGPU profile names from
// --state-dir (and NVML), with `rules` (may be null) in force, after its
// rescan. `list` and `check-config` both look through this, so neither can
// show a node other than the one the daemon advertises. `names` must outlive
// the registry. Fails when --sysfs-root is not a sysfs tree.
Result<std::unique_ptr<DeviceRegistry>> scanNodeOnce(const CommonOptions &options, PciNameSource &names,
                                                     std::shared_ptr<const NodeRules> rules);

int runListCommand(const CommonOptions &options, bool json);

} // namespace kvgpu
