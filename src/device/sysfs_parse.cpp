#include "device/sysfs_parse.h"

#include "base/strings.h"

#include <fmt/format.h>

namespace kvgpu {

namespace {
bool isHexDigit(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool allHex(std::string_view text)
{
    for (char c : text)
        if (!isHexDigit(c))
            return false;
    return true;
}

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

bool isPciAddress(std::string_view text)
{
    // dddd:bb:dd.f
    if (text.size() != 12 || text[4] != ':' || text[7] != ':' || text[10] != '.')
        return false;
    if (!allHex(text.substr(0, 4)) || !allHex(text.substr(5, 2)) || !allHex(text.substr(8, 2)))
        return false;
    return text[11] >= '0' && text[11] <= '7';
}

bool isUuid(std::string_view text)
{
    if (text.size() != 36)
        return false;
    for (size_t i = 0; i < text.size(); ++i) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? text[i] != '-' : !isHexDigit(text[i]))
            return false;
    }
    return true;
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

} // namespace kvgpu
