// How devices are named on a node: a PCI function by its address, a mediated
// device (vGPU) by its UUID. sysfs directories, uevents, the vGPU name book,
// EGM membership files and the configuration's `addresses` all name devices
// so, and all are checked here.
//
// Pure functions; thread-safe.
#pragma once

#include <string_view>

namespace kvgpu {

// "0000:65:00.0": domain:bus:device.function, 4, 2 and 2 hex digits (lower or
// upper case) and a function from 0 to 7. Nothing before or after.
bool isPciAddress(std::string_view text);

// "aa618089-8b16-4d01-a136-25a0f3c73123": 8-4-4-4-12 hex digits (lower or
// upper case). Nothing before or after.
bool isUuid(std::string_view text);

} // namespace kvgpu
