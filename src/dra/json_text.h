// The text of a JSON value written by the DRA side (CDI specs, metadata
// files, the checkpoint). nlohmann's dump() throws on a string that is not
// valid UTF-8; a device name or reason read from sysfs could be one, so bad
// bytes are replaced instead.
//
// Pure function; thread-safe.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace kvgpu::dra {

// `indent` < 0 gives one line; otherwise pretty-printed with that many spaces.
inline std::string dumpJson(const nlohmann::json &value, int indent = -1)
{
    return value.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

} // namespace kvgpu::dra
