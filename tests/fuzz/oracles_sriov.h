// Independent re-statements of the SR-IOV vGPU and EGM formats, written from
// the drivers' output and Go's documentation rather than from our parsers:
// creatable_vgpu_types lines, current_vgpu_type, Go durations and EGM
// gpu_devices. Deliberately naive (character classes and whole-line rules).
#pragma once

#include "oracles.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kvgpu::fuzz::oracle {

inline bool digit(char c) { return c >= '0' && c <= '9'; }

// An unsigned decimal without sign, leading zeros allowed, within 32 bits.
inline std::optional<std::uint32_t> unsigned32(std::string_view s)
{
    if (s.empty() || !std::all_of(s.begin(), s.end(), digit))
        return std::nullopt;
    std::optional<std::int64_t> value = decimal(s);
    if (!value || *value > 0xffffffffLL)
        return std::nullopt;
    return static_cast<std::uint32_t>(*value);
}

struct CatalogEntry {
    std::uint32_t id;
    std::string name;
};

// One catalog line: optional whitespace, an id, then either spaces/tabs and
// a colon or at least one space/tab, then a name that is not only whitespace.
inline std::optional<CatalogEntry> catalogLine(std::string_view line)
{
    line = trimmed(line);
    size_t end = 0;
    while (end < line.size() && digit(line[end]))
        ++end;
    std::optional<std::uint32_t> id = unsigned32(line.substr(0, end));
    if (!id || *id == 0)
        return std::nullopt;
    std::string_view rest = line.substr(end);
    std::string_view afterBlanks = rest.substr(std::min(rest.find_first_not_of(" \t"), rest.size()));
    std::string_view name;
    if (!afterBlanks.empty() && afterBlanks[0] == ':')
        name = trimmed(afterBlanks.substr(1));
    else if (afterBlanks.size() < rest.size())
        name = trimmed(afterBlanks);
    if (name.empty())
        return std::nullopt;
    return CatalogEntry{*id, std::string(name)};
}

inline std::vector<CatalogEntry> catalog(std::string_view text)
{
    std::vector<CatalogEntry> out;
    size_t start = 0;
    while (start <= text.size()) {
        size_t nl = text.find('\n', start);
        std::string_view line = text.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start);
        if (std::optional<CatalogEntry> entry = catalogLine(line)) {
            bool seen = std::any_of(out.begin(), out.end(), [&](const CatalogEntry &e) { return e.id == entry->id; });
            if (!seen)
                out.push_back(*entry);
        }
        if (nl == std::string_view::npos)
            break;
        start = nl + 1;
    }
    return out;
}

// What a Go duration string amounts to, computed exactly enough to judge a
// parser: the grammar, the number of terms and the value in nanoseconds with
// fractions cut after 18 digits (an error below a hundredth of a nanosecond
// per term).
struct GoDuration {
    bool negative = false;
    int terms = 0;
    __int128 nanoseconds = 0; // saturates at 2^100 ("far out of range")
};

inline std::optional<GoDuration> goDuration(std::string_view s)
{
    GoDuration out;
    if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
        out.negative = s[0] == '-';
        s.remove_prefix(1);
    }
    if (s == "0")
        return out;
    if (s.empty())
        return std::nullopt;
    const __int128 huge = static_cast<__int128>(1) << 100;
    constexpr std::array<std::pair<std::string_view, std::int64_t>, 8> units{{
        {"ns", 1}, {"us", 1000}, {"\xc2\xb5s", 1000}, {"\xce\xbcs", 1000},
        {"ms", 1000000}, {"s", 1000000000}, {"m", 60000000000}, {"h", 3600000000000},
    }};
    while (!s.empty()) {
        size_t i = 0;
        std::string whole, fraction;
        while (i < s.size() && digit(s[i]))
            whole += s[i++];
        if (i < s.size() && s[i] == '.') {
            ++i;
            while (i < s.size() && digit(s[i]))
                fraction += s[i++];
        }
        if (whole.empty() && fraction.empty())
            return std::nullopt;
        size_t unitEnd = i;
        while (unitEnd < s.size() && !digit(s[unitEnd]) && s[unitEnd] != '.')
            ++unitEnd;
        std::string_view unitName = s.substr(i, unitEnd - i);
        auto unit = std::find_if(units.begin(), units.end(), [&](const auto &u) { return u.first == unitName; });
        if (unit == units.end())
            return std::nullopt;
        s.remove_prefix(unitEnd);
        ++out.terms;

        // Kept below 2^64 so that w * unit stays within 128 bits.
        const __int128 wholeCap = static_cast<__int128>(1) << 64;
        __int128 w = 0;
        for (char c : whole)
            w = std::min<__int128>(w * 10 + (c - '0'), wholeCap);
        __int128 f = 0, scale = 1;
        for (size_t k = 0; k < fraction.size() && k < 18; ++k) {
            f = f * 10 + (fraction[k] - '0');
            scale *= 10;
        }
        __int128 term = std::min<__int128>(w * unit->second + f * unit->second / scale, huge);
        out.nanoseconds = std::min<__int128>(out.nanoseconds + term, huge);
    }
    return out;
}

// The PCI addresses among the whitespace-separated words, lower-cased,
// sorted, unique.
inline std::vector<std::string> egmMembers(std::string_view text)
{
    std::vector<std::string> out;
    std::string word;
    auto flush = [&] {
        if (pciAddress(word)) {
            std::string lower;
            for (char c : word)
                lower += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
            out.push_back(lower);
        }
        word.clear();
    };
    for (char c : text) {
        if (space(c))
            flush();
        else
            word += c;
    }
    flush();
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

} // namespace kvgpu::fuzz::oracle
