// Structured logging: one line per event on stderr,
//   2026-11-26T14:55:01.123Z level=info msg="resource registered" resource=nvidia.com/X
//
// Thread safety: every function may be called from any thread; each line is
// written with a single write(2) so lines from different threads never interleave.
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace kvgpu::log {

enum class Level { Debug = 0, Info = 1, Warn = 2, Error = 3 };

std::optional<Level> parseLevel(std::string_view name);
void setLevel(Level level);
bool enabled(Level level);

// A key=value pair. Values are quoted when they hold spaces.
struct Field {
    std::string_view key;
    std::string value;
};

// Formats a line without writing it (used by the writers and by tests).
std::string formatLine(Level level, std::string_view message, std::initializer_list<Field> fields);

void write(Level level, std::string_view message, std::initializer_list<Field> fields = {});

inline void debug(std::string_view m, std::initializer_list<Field> f = {}) { write(Level::Debug, m, f); }
inline void info(std::string_view m, std::initializer_list<Field> f = {}) { write(Level::Info, m, f); }
inline void warn(std::string_view m, std::initializer_list<Field> f = {}) { write(Level::Warn, m, f); }
inline void error(std::string_view m, std::initializer_list<Field> f = {}) { write(Level::Error, m, f); }

} // namespace kvgpu::log
