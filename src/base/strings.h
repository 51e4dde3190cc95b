// Small string helpers shared by the sysfs parsers, the naming rules and the
// command line. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kvgpu {

// Removes leading and trailing ASCII whitespace.
std::string_view trim(std::string_view text);

std::string toUpperAscii(std::string_view text);
std::string toLowerAscii(std::string_view text);

// Splits on `separator`, keeping empty fields.
std::vector<std::string> split(std::string_view text, char separator);

std::string join(const std::vector<std::string> &parts, std::string_view separator);

// Parses an unsigned hexadecimal number with an optional 0x prefix and no other
// characters. Empty input, stray characters and overflow yield nullopt.
std::optional<std::uint64_t> parseHex(std::string_view text);

// Parses a signed decimal integer with no other characters.
std::optional<std::int64_t> parseDecimal(std::string_view text);

// The last component of a slash-separated path ("../drivers/vfio-pci" -> "vfio-pci").
std::string_view baseName(std::string_view path);

// Quotes a value for key=value log lines and tables when it holds spaces,
// quotes or control characters; returns it unchanged otherwise.
std::string quoteIfNeeded(std::string_view value);

} // namespace kvgpu
