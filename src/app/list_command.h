// `kubevirt-gpu-device-plugin list`: one scan, then every NVIDIA PCI function
// and every mdev with the resource it is advertised under, or why it is not.
// The formatters are pure so they are tested on fixed inventories.
#pragma once

#include "device/device_row.h"

#include <string>

namespace kvgpu {

std::string formatDeviceTable(const Inventory &inventory);
std::string formatDeviceJson(const Inventory &inventory);

struct CommonOptions;
int runListCommand(const CommonOptions &options, bool json);

} // namespace kvgpu
