#include "naming/resource_naming.h"

#include "base/strings.h"

#include <fmt/format.h>

namespace kvgpu {

namespace {
bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool isAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

std::string collapseWhitespace(std::string_view text)
{
    std::string out;
    bool inSpace = false;
    for (char c : text) {
        if (isSpace(c)) {
            if (!inSpace)
                out += '_';
            inSpace = true;
        } else {
            out += c;
            inSpace = false;
        }
    }
    return out;
}
} // namespace

std::string sanitizePciDeviceName(std::string_view pciIdsName)
{
    std::string upper = toUpperAscii(trim(pciIdsName));
    for (char &c : upper)
        if (c == '/' || c == '.')
            c = '_';
    std::string collapsed = collapseWhitespace(upper);
    std::string out;
    for (char c : collapsed)
        if (isAlnum(c) || c == '_' || c == '.')
            out += c;
    return out;
}

std::string hexDeviceIdName(std::uint16_t deviceId) { return fmt::format("{:04x}", deviceId); }

std::string sanitizeVgpuTypeName(std::string_view typeName)
{
    return collapseWhitespace(trim(typeName));
}

NamePart repairResourceNamePart(std::string_view part, std::string_view fallback)
{
    if (isValidResourceNamePart(part))
        return {std::string(part), {}};

    auto repair = [](std::string_view text) {
        std::string out;
        for (char c : text)
            out += isResourceNameChar(c) ? c : '_';
        auto strip = [](std::string &s) {
            size_t begin = 0;
            while (begin < s.size() && !isResourceNameEnd(s[begin]))
                ++begin;
            size_t end = s.size();
            while (end > begin && !isResourceNameEnd(s[end - 1]))
                --end;
            s = s.substr(begin, end - begin);
        };
        strip(out);
        if (out.size() > kMaxResourceNamePart) {
            out.resize(kMaxResourceNamePart);
            strip(out);
        }
        return out;
    };

    std::string repaired = repair(part);
    if (repaired.empty())
        repaired = repair(fallback);
    return {repaired, fmt::format("{} is not a valid resource name; using {}",
                                  quoteIfNeeded(part), repaired)};
}

} // namespace kvgpu
