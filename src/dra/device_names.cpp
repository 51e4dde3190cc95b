#include "dra/device_names.h"
#include "dra/dra_options.h"

#include "model/device_address.h"

#include <cstdint>

#include <fmt/format.h>

namespace kvgpu::dra {

namespace {

bool isLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool isAlnum(char c) { return isLowerAlnum(c) || (c >= 'A' && c <= 'Z'); }

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// FNV-1a, 32 bits: a stable hash for names that must be shortened (std::hash
// may differ between builds).
std::uint32_t fnv1a32(std::string_view text)
{
    std::uint32_t hash = 2166136261u;
    for (char c : text) {
        hash ^= static_cast<unsigned char>(c);
        hash *= 16777619u;
    }
    return hash;
}

// Lowercase [a-z0-9] runs joined by single '-', no '-' at either end.
std::string dashed(std::string_view text)
{
    std::string out;
    bool pendingDash = false;
    for (char raw : text) {
        char c = lower(raw);
        if (isLowerAlnum(c)) {
            if (pendingDash && !out.empty())
                out += '-';
            pendingDash = false;
            out += c;
        } else {
            pendingDash = true;
        }
    }
    return out;
}

// Cuts a dashed string to `max` characters, ending it with a hash of `whole`
// when it had to be cut.
std::string fitted(std::string text, std::string_view whole, std::size_t max)
{
    if (text.size() <= max)
        return text;
    text.resize(max - 9);
    while (!text.empty() && text.back() == '-')
        text.pop_back();
    return fmt::format("{}-{:08x}", text, fnv1a32(whole));
}

} // namespace

std::string draDeviceName(DeviceKind kind, std::string_view id)
{
    const char *prefix = kind == DeviceKind::Vgpu ? "mdev-" : "pci-";
    // A PCI address or UUID has only hex digits and separators, so dashed()
    // keeps every digit and the result is at most 41 characters: nothing is
    // cut, and two devices never share a name.
    if (isPciAddress(id) || isUuid(id))
        return prefix + dashed(id);
    std::string rest = dashed(id);
    if (rest.empty())
        rest = fmt::format("{:08x}", fnv1a32(id));
    return fitted(prefix + rest, id, kMaxDnsLabel);
}

std::string draDeviceName(const DraDevice &device) { return draDeviceName(device.kind, device.device.id); }

bool isDnsLabel(std::string_view text)
{
    if (text.empty() || text.size() > kMaxDnsLabel)
        return false;
    for (char c : text)
        if (!isLowerAlnum(c) && c != '-')
            return false;
    return text.front() != '-' && text.back() != '-';
}

bool isLabelValue(std::string_view text)
{
    if (text.empty() || text.size() > 63)
        return false;
    for (char c : text)
        if (!isAlnum(c) && c != '-' && c != '_' && c != '.')
            return false;
    return isAlnum(text.front()) && isAlnum(text.back());
}

std::string labelValueOf(std::string_view sentence)
{
    std::string value = dashed(sentence);
    if (value.empty())
        return "unknown";
    return fitted(std::move(value), sentence, 63);
}

} // namespace kvgpu::dra

namespace kvgpu::dra {

Result<void> checkDriverName(const std::string &name)
{
    if (name.empty() || name.size() > 63)
        return Error{fmt::format("driver name \"{}\" must be 1 to 63 characters", name)};
    size_t start = 0;
    while (true) {
        size_t dot = name.find('.', start);
        std::string_view label = std::string_view(name).substr(start, dot == std::string::npos ? dot : dot - start);
        if (!isDnsLabel(label))
            return Error{fmt::format("driver name \"{}\" is not a DNS subdomain (lower case letters, digits, '-' "
                                     "and '.', e.g. gpu.example.com)",
                                     name)};
        if (dot == std::string::npos)
            return {};
        start = dot + 1;
    }
}

} // namespace kvgpu::dra
