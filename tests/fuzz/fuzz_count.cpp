// Decimal counter files such as available_instances: parseCount against the oracle.
#include "sysfs/sysfs_parse.h"
#include "fuzz_support.h"
#include "oracles.h"

using namespace kvgpu;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *bytes, size_t size)
{
    std::string_view text(reinterpret_cast<const char *>(bytes), size);
    Result<long> count = parseCount(text);
    std::optional<std::int64_t> expected = fuzz::oracle::decimal(fuzz::oracle::trimmed(text));
    FUZZ_CHECK(count.ok() == (expected && *expected >= 0), quoteIfNeeded(text));
    if (count)
        FUZZ_CHECK(*count == *expected, quoteIfNeeded(text));
    else
        fuzz::checkLogLine("problem", count.error());
    return 0;
}
