#include "device/resource_naming.h"

#include "base/strings.h"

#include <fmt/format.h>

namespace kvgpu {

namespace {
bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool isAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }
bool isNameChar(char c) { return isAlnum(c) || c == '-' || c == '_' || c == '.'; }

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

constexpr size_t kMaxNamePart = 63;
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

bool isValidResourceNamePart(std::string_view part)
{
    if (part.empty() || part.size() > kMaxNamePart)
        return false;
    if (!isAlnum(part.front()) || !isAlnum(part.back()))
        return false;
    for (char c : part)
        if (!isNameChar(c))
            return false;
    return true;
}

NamePart repairResourceNamePart(std::string_view part, std::string_view fallback)
{
    if (isValidResourceNamePart(part))
        return {std::string(part), {}};

    auto repair = [](std::string_view text) {
        std::string out;
        for (char c : text)
            out += isNameChar(c) ? c : '_';
        auto strip = [](std::string &s) {
            size_t begin = 0;
            while (begin < s.size() && !isAlnum(s[begin]))
                ++begin;
            size_t end = s.size();
            while (end > begin && !isAlnum(s[end - 1]))
                --end;
            s = s.substr(begin, end - begin);
        };
        strip(out);
        if (out.size() > kMaxNamePart) {
            out.resize(kMaxNamePart);
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

const char *deviceKindName(DeviceKind kind)
{
    switch (kind) {
    case DeviceKind::Vgpu: return "vGPU";
    case DeviceKind::SriovVgpu: return "SR-IOV vGPU";
    case DeviceKind::Passthrough: break;
    }
    return "passthrough";
}

std::string resourceName(std::string_view part) { return fmt::format("{}/{}", kResourceDomain, part); }

std::string envKey(DeviceKind kind, std::string_view resource)
{
    std::string key = toUpperAscii(resource);
    for (char &c : key)
        if (c == '/' || c == '.')
            c = '_';
    return fmt::format("{}_{}", kind == DeviceKind::Vgpu ? "MDEV_PCI_RESOURCE" : "PCI_RESOURCE", key);
}

std::string socketFileName(std::string_view resource)
{
    return fmt::format("kvgpu-{}.sock", baseName(resource));
}

} // namespace kvgpu
