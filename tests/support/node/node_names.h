// Validators for the names a simulated node deals in: PCI addresses, UUIDs,
// devpaths, driver and vGPU type names. Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace kvgpu::test {

// "0000:65:00.0": the kernel's lowercase domain:bus:device.function form.
bool isPciAddress(std::string_view text);
// "aa618089-8b16-4d01-a136-25a0f3c73123", either case.
bool isUuid(std::string_view text);
// A root complex ("pci0000:64") optionally followed by PCI addresses
// ("pci0000:64/0000:64:00.0/0000:65:00.0").
bool isParentPath(std::string_view text);
// A driver name as it appears under /sys/bus/pci/drivers ("vfio-pci", "snd_hda_intel").
bool isDriverName(std::string_view text);
// A vGPU type directory name ("nvidia-592").
bool isTypeId(std::string_view text);
// A path below a device directory without "..", "." or empty components.
bool isRelativeAttributePath(std::string_view text);
// A uevent property name ("ERROR_EVENT").
bool isPropertyName(std::string_view text);

std::string toLower(std::string_view text);

} // namespace kvgpu::test
