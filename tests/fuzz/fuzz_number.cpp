// The number parsers under every sysfs reader and the uevent dispatch
// (parseHex, parseDecimal) against the oracle, and the string helpers they
// lean on (trim, split/join, baseName, quoteIfNeeded).
#include "base/strings.h"
#include "fuzz_support.h"
#include "oracles.h"

#include <fmt/format.h>

using namespace kvgpu;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *bytes, size_t size)
{
    std::string_view text(reinterpret_cast<const char *>(bytes), size);

    std::optional<std::uint64_t> hex = parseHex(text);
    FUZZ_CHECK(hex == fuzz::oracle::hex(text), quoteIfNeeded(text));
    if (hex)
        FUZZ_CHECK(parseHex(fmt::format("0x{:x}", *hex)) == hex, quoteIfNeeded(text));

    std::optional<std::int64_t> dec = parseDecimal(text);
    FUZZ_CHECK(dec == fuzz::oracle::decimal(text), quoteIfNeeded(text));
    if (dec)
        FUZZ_CHECK(parseDecimal(fmt::format("{}", *dec)) == dec, quoteIfNeeded(text));

    FUZZ_CHECK(trim(text) == fuzz::oracle::trimmed(text), quoteIfNeeded(text));
    FUZZ_CHECK(join(split(text, '/'), "/") == text, quoteIfNeeded(text));
    FUZZ_CHECK(baseName(text) == fuzz::oracle::lastComponent(text), quoteIfNeeded(text));

    std::string quoted = quoteIfNeeded(text);
    for (char c : quoted)
        FUZZ_CHECK(static_cast<unsigned char>(c) >= 0x20, quoted);
    FUZZ_CHECK(quoted == text || quoted.front() == '"', quoted);
    return 0;
}
