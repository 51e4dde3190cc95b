#include "sysfs/vfio_drivers.h"

namespace kvgpu {

bool isPassthroughDriver(std::string_view driver)
{
    return driver == "vfio-pci" || driver == "nvgrace_gpu_vfio_pci";
}

bool keepsGroupViable(std::string_view driver)
{
    return driver == "vfio-pci" || driver == "pci-stub" || driver.ends_with("_vfio_pci") ||
           driver.ends_with("-vfio-pci");
}

} // namespace kvgpu
