// How resources are named: the original plugin's rules, kept exactly so that
// existing KubeVirt configurations keep working, plus a deterministic repair for
// the rare name the kubelet would refuse.
//
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace kvgpu {

inline constexpr std::string_view kResourceDomain = "nvidia.com";

// The original's sanitiser for pci.ids device names: trim, upper-case, '/' and
// '.' to '_', runs of whitespace to '_', then drop every character outside
// [A-Za-z0-9_.]. "TU104GL [Tesla T4]" -> "TU104GL_TESLA_T4".
std::string sanitizePciDeviceName(std::string_view pciIdsName);

// The name used when pci.ids does not know the device: lowercase hex, 4 digits.
std::string hexDeviceIdName(std::uint16_t deviceId);

// vGPU type names: trimmed, runs of whitespace to '_', case kept.
// "GRID T4-1Q" -> "GRID_T4-1Q".
std::string sanitizeVgpuTypeName(std::string_view typeName);

// Whether the kubelet accepts `part` as the name part of an extended resource
// (at most 63 characters of ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]).
bool isValidResourceNamePart(std::string_view part);

struct NamePart {
    std::string name;
    std::string repair; // empty when the name was valid as it was; else what was changed
};

// Returns `part` unchanged when valid. Otherwise: characters the kubelet refuses
// become '_', leading and trailing non-alphanumerics are dropped, the result is
// cut to 63 characters; when nothing is left, `fallback` (repaired the same way)
// is used.
NamePart repairResourceNamePart(std::string_view part, std::string_view fallback);

// "nvidia.com/" + part.
std::string resourceName(std::string_view part);

// SriovVgpu: an SR-IOV vGPU VF (vGPU 17+), which KubeVirt takes as a PCI
// host device (PCI_RESOURCE_), handed out like passthrough.
enum class DeviceKind { Passthrough, Vgpu, SriovVgpu };

// "passthrough", "vGPU", "SR-IOV vGPU": for messages.
const char *deviceKindName(DeviceKind kind);

// The KubeVirt environment variable for a resource: PCI_RESOURCE_ or
// MDEV_PCI_RESOURCE_ + the name upper-cased with '/' and '.' replaced by '_'.
std::string envKey(DeviceKind kind, std::string_view resource);

// The socket file name (relative to the plugin directory) serving a resource.
std::string socketFileName(std::string_view resource);

} // namespace kvgpu
