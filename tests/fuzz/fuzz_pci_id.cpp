// sysfs vendor, device, subsystem_vendor and subsystem_device files ("0x10de\n"):
// parsePciId against the oracle, and a parsed id formats back to itself.
#include "sysfs/sysfs_parse.h"
#include "fuzz_support.h"
#include "oracles.h"

#include <fmt/format.h>

using namespace kvgpu;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *bytes, size_t size)
{
    std::string_view text(reinterpret_cast<const char *>(bytes), size);
    Result<std::uint16_t> id = parsePciId(text);
    std::optional<std::uint64_t> expected = fuzz::oracle::hex(fuzz::oracle::trimmed(text));
    bool accept = expected && *expected <= 0xffff;
    FUZZ_CHECK(id.ok() == accept, quoteIfNeeded(text));
    if (id) {
        FUZZ_CHECK(*id == *expected, quoteIfNeeded(text));
        Result<std::uint16_t> again = parsePciId(fmt::format("0x{:04x}\n", *id));
        FUZZ_CHECK(again && *again == *id, quoteIfNeeded(text));
    } else {
        fuzz::checkLogLine("problem", id.error());
    }
    return 0;
}
