// What `list` prints: one row per NVIDIA PCI function and mdev, advertised or
// not and why, with the resources they make up.
//
// Thread safety: plain values.
#pragma once

#include "index/resource.h"

#include <map>
#include <string>
#include <vector>

namespace kvgpu {

// One line of `list`: every NVIDIA PCI function and every mdev.
struct DeviceRow {
    std::string id;
    std::string kind;        // "pci" or "mdev"
    std::string ids;         // "10de:1eb8"; for an mdev, the type id
    std::string model;       // pci.ids name or vGPU type name; "" when unknown
    std::string driver;
    std::string deviceClass; // "display", "audio", ... ; "vgpu" for an mdev
    int iommuGroup = -1;
    int numaNode = -1;
    std::string resource;    // advertised under; empty when not advertised
    std::string reason;      // why not advertised, or why unhealthy
    std::string health;      // "Healthy"/"Unhealthy" when advertised
    std::vector<std::string> warnings; // reported, not unhealthy (no reset method, slow link)
    std::string rule;        // the configured rule that named or excluded it; empty when none did
    std::string api;         // "device-plugin" or "dra" when advertised (model/device_api.h)
};

struct Inventory {
    std::map<std::string, Resource> resources; // by name
    std::vector<DeviceRow> rows;               // sorted: PCI functions by address, then mdevs by UUID
    std::map<std::string, std::string> nameRepairs; // resource name -> what was repaired
};

} // namespace kvgpu
