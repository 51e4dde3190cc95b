#include "model/device_address.h"

namespace kvgpu {

namespace {

bool isHexDigit(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

bool allHex(std::string_view text)
{
    for (char c : text)
        if (!isHexDigit(c))
            return false;
    return true;
}

} // namespace

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

} // namespace kvgpu
