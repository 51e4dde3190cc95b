// The ResourceSlices of this node, built from what the device index
// advertises: one `spec.devices[]` entry per device (name, attributes,
// taint when unhealthy), the split of a pool's devices into slices within
// the API's limits, and the ResourceSlice object itself (resource.k8s.io/v1).
// The publisher (API-server side) compares these with what the server holds.
//
// Attributes, all in the driver's domain unless qualified:
//   type            "passthrough" | "mdev" | "sriov-vgpu"
//   resourceName    the device plugin's resource name (omitted when > 64)
//   productName     pci.ids name (of the parent GPU for an mdev), cut to 64
//   vendorID, deviceID  "0x10de", "0x1eb8" (of the parent GPU for an mdev)
//   profile         vGPU profile name (mdev and SR-IOV vGPU only)
//   iommuGroup, numaNode  ints (numaNode only when known, >= 0)
//   mdevUUID        mdev only
//   parentPciBusID  the parent GPU of an mdev, the PF of an SR-IOV VF
//   resource.kubernetes.io/pciBusID   the function itself (never for an mdev)
//   resource.kubernetes.io/pcieRoot   "pci0000:64" (an mdev's parent's)
// An unhealthy device carries the taint {<driver>/unhealthy,
// labelValueOf(reason), NoSchedule}.
//
// Pure functions; thread-safe.
#pragma once

#include "dra/dra_device.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kvgpu::dra {

// Limits of resource.k8s.io/v1 as the API server validates them (k8s.io/api resource/v1 types.go).
inline constexpr std::size_t kMaxDevicesPerSlice = 128;
inline constexpr std::size_t kMaxDevicesPerSliceWithTaints = 64;
inline constexpr std::size_t kMaxAttributesPerDevice = 32;
inline constexpr std::size_t kMaxAttributeValue = 64;

// The `type` attribute's value for a kind: "passthrough", "mdev", "sriov-vgpu".
const char *draTypeOf(DeviceKind kind);

// The taint key of an unhealthy device: "<driver>/unhealthy".
std::string unhealthyTaintKey(const std::string &driver);

// One `spec.devices[]` entry, and what had to be left out of it: a message
// per omitted attribute ("resourceName nvidia.com/... is longer than 64
// characters, the API's limit: not published"), for the caller to log.
struct SliceDevice {
    nlohmann::json entry;
    std::vector<std::string> omitted;
};
SliceDevice sliceDevice(const DraDevice &device, const std::string &driver);
// sliceDevice(...).entry.
nlohmann::json deviceEntry(const DraDevice &device, const std::string &driver);

// The device lists of a pool's slices: sorted by name, at most 128 devices
// each, or 64 when any device of the pool has taints. An empty pool gives one
// empty list (a pool with no devices is still published, as one empty slice).
// Each element is a JSON array.
std::vector<nlohmann::json> splitDevices(std::vector<nlohmann::json> devices);

// A ResourceSlice to create: generateName "<index, >= 5 hex digits>-<driver>-<node>-"
// (cut so that the name the API server generates, 5 more characters, stays
// within 253 and is a DNS subdomain), owned by the Node (controller: true), in
// pool `poolName` with its generation and slice count.
nlohmann::json sliceObject(const std::string &driver, const std::string &nodeName, const std::string &nodeUid,
                           const std::string &poolName, std::int64_t generation, std::int64_t sliceCount,
                           std::size_t index, const nlohmann::json &devices);

// The generateName above, alone.
std::string sliceGenerateName(const std::string &driver, const std::string &nodeName, std::size_t index);

} // namespace kvgpu::dra
