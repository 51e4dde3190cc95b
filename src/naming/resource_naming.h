// How the plugin names resources by default: the original plugin's rules,
// kept exactly so that existing KubeVirt configurations keep working, plus a
// deterministic repair for the rare name the kubelet would refuse. What the
// kubelet accepts, and what a name becomes on the node, is model/resource_name.h.
//
// Pure functions; thread-safe.
#pragma once

#include "model/resource_name.h"

#include <cstdint>
#include <string>
#include <string_view>

namespace kvgpu {

// The original's sanitiser for pci.ids device names: trim, upper-case, '/' and
// '.' to '_', runs of whitespace to '_', then drop every character outside
// [A-Za-z0-9_.]. "TU104GL [Tesla T4]" -> "TU104GL_TESLA_T4".
std::string sanitizePciDeviceName(std::string_view pciIdsName);

// The name used when pci.ids does not know the device: lowercase hex, 4 digits.
std::string hexDeviceIdName(std::uint16_t deviceId);

// vGPU type names: trimmed, runs of whitespace to '_', case kept.
// "GRID T4-1Q" -> "GRID_T4-1Q".
std::string sanitizeVgpuTypeName(std::string_view typeName);

struct NamePart {
    std::string name;
    std::string repair; // empty when the name was valid as it was; else what was changed
};

// Returns `part` unchanged when valid. Otherwise: characters the kubelet refuses
// become '_', leading and trailing non-alphanumerics are dropped, the result is
// cut to 63 characters; when nothing is left, `fallback` (repaired the same way)
// is used.
NamePart repairResourceNamePart(std::string_view part, std::string_view fallback);

} // namespace kvgpu
