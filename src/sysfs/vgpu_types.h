// The two files through which an SR-IOV vGPU VF shows its profile (vGPU 17+,
// the vendor-specific VFIO framework): nvidia/creatable_vgpu_types, the types
// that can still be created on it with their names, and
// nvidia/current_vgpu_type, the id of the type it carries (0 for none).
//
// The driver prints the catalog as a header line "ID    : vGPU Name" and
// one "1414  : NVIDIA H200X-1-18C" line per type; other drivers drop the
// header, or the colon ("1414 NVIDIA H200X-1-18C"). The parser takes every
// line that starts with a decimal id followed by a name, and skips the rest.
//
// Pure functions; thread-safe.
#pragma once

#include "base/result.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kvgpu {

struct VgpuType {
    std::uint32_t id = 0;
    std::string name; // trimmed, never empty

    bool operator==(const VgpuType &) const = default;
};

// The entries of a creatable_vgpu_types file in file order, each id once
// (the first line wins). Header, blank, garbage lines, id 0 and ids beyond
// 32 bits are skipped: a malformed line never hides the good ones.
std::vector<VgpuType> parseCreatableVgpuTypes(std::string_view text);

// "1414\n" -> 1414; "0\n" -> 0 (no profile). Anything but one unsigned
// 32-bit decimal is malformed.
Result<std::uint32_t> parseCurrentVgpuType(std::string_view text);

} // namespace kvgpu
