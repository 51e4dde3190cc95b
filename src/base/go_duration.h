// Go's duration syntax ("30s", "1m30s", "500ms", "1.5h", "0"), as
// time.ParseDuration accepts it, so that settings written for the original
// Go plugin (VFIO_VGPU_RESCAN_INTERVAL) carry over unchanged.
//
// Pure function; thread-safe.
#pragma once

#include "base/result.h"

#include <chrono>
#include <string_view>

namespace kvgpu {

// An optional sign, then one or more <number><unit> terms: a decimal number
// with an optional fraction ("1", "1.5", ".5", "1.") and a unit among ns, us,
// µs, μs, ms, s, m, h. "0" alone needs no unit. Anything else, and a total
// beyond what 64-bit nanoseconds hold, is an error that quotes the text.
Result<std::chrono::nanoseconds> parseGoDuration(std::string_view text);

// An interval setting: a Go duration or a plain number of seconds ("30" as
// "30s"), never negative; 0 means off. Rounded up to whole milliseconds.
Result<std::chrono::milliseconds> parseIntervalSetting(std::string_view text);

} // namespace kvgpu
