// One device as the DRA side offers it: what the device index advertises,
// with the resource name the device plugin side would give it (published as
// the `resourceName` attribute, so a DeviceClass can select exactly what a
// device-plugin resource held).
//
// Thread safety: a plain value.
#pragma once

#include "index/resource.h"
#include "model/device_kind.h"

#include <string>

namespace kvgpu::dra {

struct DraDevice {
    std::string resource;    // "nvidia.com/TU104GL_TESLA_T4"
    DeviceKind kind = DeviceKind::Passthrough;
    AdvertisedDevice device; // id = PCI address (passthrough, SR-IOV VF) or mdev UUID

    bool operator==(const DraDevice &) const = default;
};

} // namespace kvgpu::dra
