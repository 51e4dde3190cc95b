// `kubevirt-gpu-device-plugin list`: one scan, then every NVIDIA PCI function
// and every mdev with the resource it is advertised under, or why it is not.
// The formatters are pure so they are tested on fixed inventories.
#pragma once

#include "device/device_row.h"
#include "device/egm.h"

#include <string>

namespace kvgpu {

std::string formatDeviceTable(const Inventory &inventory);
std::string formatDeviceJson(const Inventory &inventory);
// Grace EGM regions with their GPUs and device node; "" when there are none.
std::string formatEgmRegions(const std::vector<EgmRegion> &regions);

struct CommonOptions;
int runListCommand(const CommonOptions &options, bool json);

} // namespace kvgpu
