// What is advertised, as the plugin side consumes it: each resource with its
// devices, their health and topology. Built by the device index, copied to the
// gRPC servers.
//
// Thread safety: plain values; immutable once built, so they may be shared
// between threads.
#pragma once

#include "model/device_api.h"
#include "naming/resource_naming.h"

#include <cstdint>
#include <string>
#include <vector>

namespace kvgpu {

// The health strings of the device plugin API.
inline constexpr const char *kHealthy = "Healthy";
inline constexpr const char *kUnhealthy = "Unhealthy";

struct AdvertisedDevice {
    std::string id;                    // PCI address or mdev UUID
    bool healthy = true;
    std::string healthReason;          // why it is unhealthy; empty when healthy
    int numaNode = -1;
    int iommuGroup = -1;
    std::vector<std::string> pciePath; // topology above the device, top first
    std::uint32_t vgpuTypeId = 0;      // an SR-IOV vGPU VF's profile when advertised, for Allocate's re-check
    std::string vgpuType;              // a vGPU's mdev type id when advertised; Allocate checks it still is
    // What a DRA ResourceSlice says of the device (dra/): the PCI ids and the
    // pci.ids name of the function (of the parent GPU for an mdev vGPU), the
    // vGPU profile's name, and the parent (an mdev's GPU, a VF's PF).
    std::uint16_t vendorId = 0;
    std::uint16_t deviceId = 0;
    std::string product;               // "" when pci.ids does not know it
    std::string profile;               // vGPUs only
    std::string parent;                // PCI address; vGPUs only
    // Which API offers it (model/device_api.h): each subscriber of the index
    // takes only its own API's devices.
    DeviceApi api = DeviceApi::DevicePlugin;

    bool operator==(const AdvertisedDevice &) const = default;
};

struct Resource {
    std::string name;                  // "nvidia.com/TU104GL_TESLA_T4"
    DeviceKind kind = DeviceKind::Passthrough;
    std::vector<AdvertisedDevice> devices; // sorted by id

    bool operator==(const Resource &) const = default;
};

} // namespace kvgpu
