#include "node_names.h"

#include <algorithm>
#include <cctype>

namespace kvgpu::test {

namespace {

bool isLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }
bool isHex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }

// Matches `text` against a pattern where 'x' is a lowercase hex digit, 'o' an
// octal digit (the PCI function) and every other character itself.
bool matchesPattern(std::string_view text, std::string_view pattern) {
    if (text.size() != pattern.size())
        return false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        switch (pattern[i]) {
        case 'x':
            if (!isLowerHex(c))
                return false;
            break;
        case 'o':
            if (c < '0' || c > '7')
                return false;
            break;
        default:
            if (c != pattern[i])
                return false;
        }
    }
    return true;
}

bool isRootComplex(std::string_view text) { return matchesPattern(text, "pcixxxx:xx"); }

} // namespace

bool isPciAddress(std::string_view text) { return matchesPattern(text, "xxxx:xx:xx.o"); }

bool isUuid(std::string_view text) {
    if (text.size() != 36)
        return false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? text[i] != '-' : !isHex(text[i]))
            return false;
    }
    return true;
}

bool isParentPath(std::string_view text) {
    const std::size_t slash = text.find('/');
    if (!isRootComplex(text.substr(0, slash)))
        return false;
    if (slash == std::string_view::npos)
        return true;
    std::string_view rest = text.substr(slash + 1);
    while (true) {
        const std::size_t next = rest.find('/');
        if (!isPciAddress(rest.substr(0, next)))
            return false;
        if (next == std::string_view::npos)
            return true;
        rest = rest.substr(next + 1);
    }
}

bool isDriverName(std::string_view text) {
    return !text.empty() && text != "." && text != ".." && text != "none" &&
           std::all_of(text.begin(), text.end(), [](char c) {
               return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
           });
}

bool isTypeId(std::string_view text) { return isDriverName(text); }

bool isRelativeAttributePath(std::string_view text) {
    if (text.empty() || text.front() == '/')
        return false;
    while (true) {
        const std::size_t slash = text.find('/');
        const std::string_view part = text.substr(0, slash);
        if (part.empty() || part == "." || part == ".." || part.find('\n') != std::string_view::npos)
            return false;
        if (slash == std::string_view::npos)
            return true;
        text = text.substr(slash + 1);
    }
}

bool isPropertyName(std::string_view text) {
    return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
        return std::isupper(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '_';
    });
}

std::string toLower(std::string_view text) {
    std::string lower(text);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return lower;
}

} // namespace kvgpu::test
