#include "sysfs/sysfs_parse.h"

#include "base/strings.h"

#include <charconv>
#include <cmath>

#include <fmt/format.h>

namespace kvgpu {

namespace {
Error malformed(std::string_view what, std::string_view text)
{
    return Error{fmt::format("malformed {} {}", what, quoteIfNeeded(trim(text).substr(0, 64)))};
}
} // namespace

Result<std::uint16_t> parsePciId(std::string_view text)
{
    auto value = parseHex(trim(text));
    if (!value || *value > 0xffff)
        return malformed("PCI id", text);
    return static_cast<std::uint16_t>(*value);
}

Result<std::uint32_t> parsePciClass(std::string_view text)
{
    auto value = parseHex(trim(text));
    if (!value || *value > 0xffffff)
        return malformed("PCI class", text);
    return static_cast<std::uint32_t>(*value);
}

Result<int> parseNumaNode(std::string_view text)
{
    auto value = parseDecimal(trim(text));
    if (!value || *value < -1 || *value > 4095)
        return malformed("NUMA node", text);
    return static_cast<int>(*value);
}

std::optional<int> parseGroupNumber(std::string_view name)
{
    auto value = parseDecimal(name);
    if (!value || *value < 0 || *value > 0x7fffffff)
        return std::nullopt;
    return static_cast<int>(*value);
}

Result<int> parseIommuGroupLink(std::string_view target)
{
    std::optional<int> group = parseGroupNumber(baseName(target));
    if (target.find("iommu_groups/") == std::string_view::npos || !group)
        return malformed("iommu_group link", target);
    return *group;
}

Result<long> parseCount(std::string_view text)
{
    auto value = parseDecimal(trim(text));
    if (!value || *value < 0)
        return malformed("count", text);
    return static_cast<long>(*value);
}

Result<std::vector<std::string>> devicePathComponents(std::string_view linkTarget)
{
    std::vector<std::string> parts = split(linkTarget, '/');
    std::vector<std::string> out;
    bool inDevices = false;
    for (const std::string &part : parts) {
        if (inDevices) {
            if (!part.empty() && part != "." && part != "..")
                out.push_back(part);
        } else if (part == "devices") {
            inDevices = true;
        }
    }
    if (!inDevices || out.empty())
        return malformed("device link", linkTarget);
    return out;
}

std::optional<long> parseAerTotal(std::string_view text, std::string_view totalKey)
{
    // Lines "<ErrName> <count>"; the kernel adds a TOTAL_ERR_* line. Without
    // it, the counts are summed.
    long sum = 0;
    bool any = false;
    for (const std::string &line : split(text, '\n')) {
        std::string_view l = trim(line);
        if (l.empty())
            continue;
        size_t space = l.find_last_of(" \t");
        if (space == std::string_view::npos)
            return std::nullopt;
        auto count = parseDecimal(trim(l.substr(space + 1)));
        if (!count || *count < 0)
            return std::nullopt;
        std::string_view name = trim(l.substr(0, space));
        if (name == totalKey)
            return static_cast<long>(*count);
        // Junk can hold counts no counter reaches; their sum must not overflow.
        if (__builtin_add_overflow(sum, static_cast<long>(*count), &sum))
            return std::nullopt;
        any = true;
    }
    if (!any)
        return std::nullopt;
    return sum;
}

std::optional<double> parseLinkSpeed(std::string_view text)
{
    text = trim(text);
    double value = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    // from_chars also reads "inf" and "nan", which no link trains at.
    if (ec != std::errc() || ptr == text.data() || !std::isfinite(value) || value <= 0)
        return std::nullopt;
    return value;
}

} // namespace kvgpu
