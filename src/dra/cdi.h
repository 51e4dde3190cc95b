// The CDI spec of a prepared claim: for each allocated device, the device
// nodes a VM needs in virt-launcher's compute container (/dev/vfio/vfio and
// /dev/vfio/<group>, plus /dev/iommu, /dev/vfio/devices/vfioN and EGM nodes
// where the node has them), each at the same path as on the host. The
// runtime receives the CDI ids in the prepare answer and applies the edits.
//
// Kind: "<driver>/vm-gpu" (vendor = the driver name, class "vm-gpu": the
// devices are for VMs, whatever their kind). Device names are
// "<claimUid>-<DRA device name>": runtimes cache specs, so a name is never
// reused for another claim. One spec file per claim,
// "<driver>-vm-gpu_<claimUid>.json", written before prepare answers and
// removed at unprepare.
//
// Thread safety: the builders are pure; the file functions touch only the
// named file (see atomic_file.h).
#pragma once

#include "base/result.h"

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kvgpu::dra {

// 0.5.0 is the first version that allows a device name starting with a
// digit (claim UIDs do) and deviceNodes[].hostPath.
inline constexpr const char *kCdiVersion = "0.5.0";
inline constexpr const char *kCdiClass = "vm-gpu";

// The device nodes of one allocated device.
struct DeviceNodes {
    std::string deviceName;         // CDI device name: cdiDeviceName(claimUid, draDeviceName)
    std::vector<std::string> paths; // "/dev/vfio/vfio", "/dev/vfio/12", ...; host path = container path
};

// "<driver>/vm-gpu".
std::string cdiKind(const std::string &driver);
// "<claimUid>-<draDeviceName>".
std::string cdiDeviceName(const std::string &claimUid, const std::string &draDeviceName);
// "<kind>=<name>": the id the runtime is given.
std::string cdiId(const std::string &kind, const std::string &name);
// "<driver>-vm-gpu_<claimUid>.json".
std::string claimSpecFileName(const std::string &driver, const std::string &claimUid);

// The spec: {cdiVersion, kind, devices: [{name, containerEdits: {deviceNodes:
// [{path, hostPath}]}}]}, devices in the order given.
nlohmann::json claimSpec(const std::string &driver, const std::string &claimUid,
                         const std::vector<DeviceNodes> &devices);

// Writes a spec to `dir`/`fileName` atomically (temporary file in `dir`,
// fsync, rename, fsync of `dir`), pretty-printed.
Result<void> writeSpecAtomically(const std::string &dir, const std::string &fileName, const nlohmann::json &spec);
// Removes a spec; one that is not there is success.
Result<void> removeSpec(const std::string &dir, const std::string &fileName);

} // namespace kvgpu::dra
