// Parses and validates the YAML resource configuration. Validation is total:
// the file is accepted whole or refused with the first problem, its line and
// column, before anything of it is applied. The YAML itself is read with
// yaml-cpp; its exceptions never leave this file.
//
// Pure functions; thread-safe.
#pragma once

#include "base/result.h"
#include "config/resource_config.h"

#include <string>
#include <string_view>

namespace kvgpu {

struct ConfigError {
    std::string message; // "line 7, column 9: unknown key \"modle\" in match (known: ...)"
    SourcePosition position;
};

// Files larger than this are refused rather than parsed.
inline constexpr size_t kMaxConfigBytes = 1 << 20;

Result<ResourceConfig, ConfigError> parseResourceConfig(std::string_view text);

// Reads and parses a file; the message then starts with the file name.
Result<ResourceConfig, ConfigError> loadResourceConfig(const std::string &path, std::string *text = nullptr);

// A short, stable fingerprint of a configuration's text (16 hex digits,
// FNV-1a), shown in the log and as the active configuration's metric label.
std::string configHash(std::string_view text);

} // namespace kvgpu
