// Independent, deliberately naive re-statements of what the sysfs parsers
// accept, written from their documentation rather than from their code. A
// fuzz target that finds the two disagreeing has found a bug in one of them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kvgpu::fuzz::oracle {

inline bool space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

inline std::string_view trimmed(std::string_view s)
{
    size_t b = 0, e = s.size();
    while (b < e && space(s[b]))
        ++b;
    while (e > b && space(s[e - 1]))
        --e;
    return s.substr(b, e - b);
}

inline int hexValue(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

// Hex digits with an optional 0x/0X prefix (which needs at least one digit after it).
inline std::optional<std::uint64_t> hex(std::string_view s)
{
    if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        s.remove_prefix(2);
    if (s.empty())
        return std::nullopt;
    unsigned __int128 value = 0;
    for (char c : s) {
        int d = hexValue(c);
        if (d < 0)
            return std::nullopt;
        value = value * 16 + static_cast<unsigned>(d);
        if (value > UINT64_MAX)
            return std::nullopt;
    }
    return static_cast<std::uint64_t>(value);
}

// An optional '-', then decimal digits; nothing else; within int64.
inline std::optional<std::int64_t> decimal(std::string_view s)
{
    bool negative = !s.empty() && s[0] == '-';
    if (negative)
        s.remove_prefix(1);
    if (s.empty())
        return std::nullopt;
    __int128 value = 0;
    for (char c : s) {
        if (c < '0' || c > '9')
            return std::nullopt;
        value = value * 10 + (c - '0');
        if (value > static_cast<__int128>(INT64_MAX) + 1)
            return std::nullopt;
    }
    if (negative)
        value = -value;
    if (value > INT64_MAX || value < INT64_MIN)
        return std::nullopt;
    return static_cast<std::int64_t>(value);
}

// Matches `pattern`, where 'h' is a hex digit, 'f' a PCI function digit (0-7)
// and every other character stands for itself.
inline bool shaped(std::string_view s, std::string_view pattern)
{
    if (s.size() != pattern.size())
        return false;
    for (size_t i = 0; i < s.size(); ++i) {
        char p = pattern[i];
        if (p == 'h' ? hexValue(s[i]) < 0 : p == 'f' ? (s[i] < '0' || s[i] > '7') : s[i] != p)
            return false;
    }
    return true;
}

inline bool pciAddress(std::string_view s) { return shaped(s, "hhhh:hh:hh.f"); }
inline bool uuid(std::string_view s) { return shaped(s, "hhhhhhhh-hhhh-hhhh-hhhh-hhhhhhhhhhhh"); }

// The path components after the first "devices" component, skipping empty, "." and "..".
inline std::optional<std::vector<std::string>> devicePath(std::string_view target)
{
    std::vector<std::string> out;
    bool inside = false;
    std::string part;
    auto flush = [&] {
        if (inside && !part.empty() && part != "." && part != "..")
            out.push_back(part);
        else if (!inside && part == "devices")
            inside = true;
        part.clear();
    };
    for (char c : target) {
        if (c == '/')
            flush();
        else
            part += c;
    }
    flush();
    if (!inside || out.empty())
        return std::nullopt;
    return out;
}

inline std::string_view lastComponent(std::string_view path)
{
    while (path.size() > 1 && path.back() == '/')
        path.remove_suffix(1);
    size_t slash = path.rfind('/');
    return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

} // namespace kvgpu::fuzz::oracle
