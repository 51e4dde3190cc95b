#include "base/go_duration.h"

#include "base/strings.h"

#include <array>
#include <cstdint>
#include <limits>

#include <fmt/format.h>

namespace kvgpu {

namespace {

constexpr std::uint64_t kLimit = std::uint64_t{1} << 63; // |int64 min|

struct Unit {
    std::string_view name;
    std::uint64_t nanoseconds;
};

// Both Unicode spellings of the micro sign are Go's.
constexpr std::array<Unit, 8> kUnits{{
    {"ns", 1},
    {"us", 1000},
    {"\xc2\xb5s", 1000}, // U+00B5 micro sign
    {"\xce\xbcs", 1000}, // U+03BC Greek mu
    {"ms", 1000000},
    {"s", 1000000000},
    {"m", 60ull * 1000000000},
    {"h", 3600ull * 1000000000},
}};

bool isDigit(char c) { return c >= '0' && c <= '9'; }

Error invalid(std::string_view text, std::string_view why)
{
    return Error{fmt::format("invalid duration {} ({}; examples: 30s, 1m30s, 500ms, 0)",
                             quoteIfNeeded(text.substr(0, 64)), why)};
}

} // namespace

Result<std::chrono::nanoseconds> parseGoDuration(std::string_view text)
{
    std::string_view s = text;
    bool negative = false;
    if (!s.empty() && (s.front() == '-' || s.front() == '+')) {
        negative = s.front() == '-';
        s.remove_prefix(1);
    }
    if (s == "0")
        return std::chrono::nanoseconds(0);
    if (s.empty())
        return invalid(text, "empty");

    std::uint64_t total = 0;
    while (!s.empty()) {
        if (!isDigit(s.front()) && s.front() != '.')
            return invalid(text, "expected a number");

        // Integer part; more than 2^63 cannot be a duration.
        std::uint64_t whole = 0;
        size_t digits = 0;
        while (!s.empty() && isDigit(s.front())) {
            std::uint64_t d = static_cast<std::uint64_t>(s.front() - '0');
            if (whole > (kLimit - d) / 10)
                return invalid(text, "out of range");
            whole = whole * 10 + d;
            s.remove_prefix(1);
            ++digits;
        }

        // Fraction: digits beyond what 63 bits hold add nothing measurable
        // and are skipped, as Go does.
        std::uint64_t fraction = 0;
        double scale = 1;
        size_t fractionDigits = 0;
        if (!s.empty() && s.front() == '.') {
            s.remove_prefix(1);
            bool saturated = false;
            while (!s.empty() && isDigit(s.front())) {
                std::uint64_t d = static_cast<std::uint64_t>(s.front() - '0');
                if (!saturated && fraction <= (kLimit - 1 - d) / 10) {
                    fraction = fraction * 10 + d;
                    scale *= 10;
                } else {
                    saturated = true;
                }
                s.remove_prefix(1);
                ++fractionDigits;
            }
        }
        if (digits == 0 && fractionDigits == 0)
            return invalid(text, "a '.' without digits");

        size_t unitLength = 0;
        while (unitLength < s.size() && s[unitLength] != '.' && !isDigit(s[unitLength]))
            ++unitLength;
        if (unitLength == 0)
            return invalid(text, "missing unit");
        std::string_view unitName = s.substr(0, unitLength);
        s.remove_prefix(unitLength);
        const Unit *unit = nullptr;
        for (const Unit &u : kUnits)
            if (u.name == unitName)
                unit = &u;
        if (!unit)
            return invalid(text, fmt::format("unknown unit {}", quoteIfNeeded(unitName)));

        if (whole > kLimit / unit->nanoseconds)
            return invalid(text, "out of range");
        std::uint64_t term = whole * unit->nanoseconds;
        if (fraction > 0) {
            term += static_cast<std::uint64_t>(static_cast<double>(fraction) *
                                               (static_cast<double>(unit->nanoseconds) / scale));
            if (term > kLimit)
                return invalid(text, "out of range");
        }
        if (term > kLimit - total)
            return invalid(text, "out of range");
        total += term;
    }
    if (negative)
        return std::chrono::nanoseconds(total == kLimit ? std::numeric_limits<std::int64_t>::min()
                                                        : -static_cast<std::int64_t>(total));
    if (total >= kLimit)
        return invalid(text, "out of range");
    return std::chrono::nanoseconds(static_cast<std::int64_t>(total));
}

Result<std::chrono::milliseconds> parseIntervalSetting(std::string_view text)
{
    std::string_view value = trim(text);
    std::string withUnit(value);
    if (!value.empty() && value.find_first_not_of("0123456789") == std::string_view::npos)
        withUnit += "s";
    Result<std::chrono::nanoseconds> duration = parseGoDuration(withUnit == "0s" ? "0" : withUnit);
    if (!duration)
        return Error{duration.error()};
    if (duration->count() < 0)
        return Error{fmt::format("invalid interval {}: negative (0 turns it off)", quoteIfNeeded(value))};
    return std::chrono::ceil<std::chrono::milliseconds>(*duration);
}

} // namespace kvgpu
