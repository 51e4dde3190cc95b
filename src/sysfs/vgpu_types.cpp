#include "sysfs/vgpu_types.h"

#include "base/strings.h"

#include <optional>

#include <fmt/format.h>

namespace kvgpu {

namespace {

bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isBlank(char c) { return c == ' ' || c == '\t'; }

// "1414  : NVIDIA H200X-1-18C" or "1414 NVIDIA H200X-1-18C" -> {1414, name}.
std::optional<VgpuType> parseLine(std::string_view line)
{
    line = trim(line);
    size_t digits = 0;
    while (digits < line.size() && isDigit(line[digits]))
        ++digits;
    if (digits == 0)
        return std::nullopt;
    std::optional<std::int64_t> id = parseDecimal(line.substr(0, digits));
    if (!id || *id <= 0 || *id > 0xffffffff)
        return std::nullopt;
    std::string_view rest = line.substr(digits);
    size_t blanks = 0;
    while (blanks < rest.size() && isBlank(rest[blanks]))
        ++blanks;
    rest.remove_prefix(blanks);
    if (!rest.empty() && rest.front() == ':')
        rest.remove_prefix(1);
    else if (blanks == 0)
        return std::nullopt; // "1414x": not an id followed by a name
    std::string_view name = trim(rest);
    if (name.empty())
        return std::nullopt;
    return VgpuType{static_cast<std::uint32_t>(*id), std::string(name)};
}

} // namespace

std::vector<VgpuType> parseCreatableVgpuTypes(std::string_view text)
{
    std::vector<VgpuType> types;
    for (const std::string &line : split(text, '\n')) {
        std::optional<VgpuType> type = parseLine(line);
        if (!type)
            continue;
        bool seen = false;
        for (const VgpuType &known : types)
            seen = seen || known.id == type->id;
        if (!seen)
            types.push_back(std::move(*type));
    }
    return types;
}

Result<std::uint32_t> parseCurrentVgpuType(std::string_view text)
{
    std::string_view value = trim(text);
    bool digitsOnly = !value.empty();
    for (char c : value)
        digitsOnly = digitsOnly && isDigit(c);
    std::optional<std::int64_t> id = digitsOnly ? parseDecimal(value) : std::nullopt;
    if (!id || *id > 0xffffffff)
        return Error{fmt::format("malformed vGPU type id {}", quoteIfNeeded(value.substr(0, 64)))};
    return static_cast<std::uint32_t>(*id);
}

} // namespace kvgpu
