#include "sysfs/pci_class.h"

#include <fmt/format.h>

namespace kvgpu {

std::string classLabel(std::uint32_t classCode)
{
    std::uint32_t base = classCode >> 16;
    std::uint32_t sub = (classCode >> 8) & 0xff;
    if (base == 0x03)
        return sub == 0x02 ? "3D controller" : "display";
    if (base == 0x04 && sub == 0x03)
        return "audio";
    if (base == 0x0c && sub == 0x03)
        return "USB";
    if (base == 0x0c && sub == 0x80)
        return "serial bus";
    if (base == 0x06 && sub == 0x80)
        return "bridge (NVSwitch)";
    return fmt::format("class 0x{:04x}", classCode >> 8);
}

bool isAdvertisedClass(std::uint32_t classCode)
{
    return (classCode >> 16) == 0x03 || (classCode >> 8) == 0x0680;
}

bool isPciBridgeClass(std::uint32_t classCode)
{
    return (classCode >> 8) == 0x0604 || (classCode >> 8) == 0x0600;
}

} // namespace kvgpu
