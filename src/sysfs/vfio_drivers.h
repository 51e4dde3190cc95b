// Which kernel drivers count as VFIO drivers, for the two questions the plugin
// asks of a driver. They differ on purpose: a device is only handed to a VM on
// the drivers KubeVirt can pass through, while a group stays usable with any
// driver the kernel accepts in a VFIO group.
//
// Pure functions; thread-safe.
#pragma once

#include <string_view>

namespace kvgpu {

// Whether a function bound to `driver` is advertised for passthrough:
// vfio-pci, and nvgrace_gpu_vfio_pci (Grace Hopper/Blackwell GPUs).
bool isPassthroughDriver(std::string_view driver);

// Whether another member of an IOMMU group may be bound to `driver` without
// making the group unusable: vfio-pci, its variant drivers (*_vfio_pci,
// *-vfio-pci, e.g. mlx5_vfio_pci) and pci-stub.
bool keepsGroupViable(std::string_view driver);

} // namespace kvgpu
