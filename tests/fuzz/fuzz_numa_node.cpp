// sysfs numa_node files ("1\n", "-1\n"): parseNumaNode against the oracle.
#include "sysfs/sysfs_parse.h"
#include "fuzz_support.h"
#include "oracles.h"

using namespace kvgpu;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *bytes, size_t size)
{
    std::string_view text(reinterpret_cast<const char *>(bytes), size);
    Result<int> node = parseNumaNode(text);
    std::optional<std::int64_t> expected = fuzz::oracle::decimal(fuzz::oracle::trimmed(text));
    FUZZ_CHECK(node.ok() == (expected && *expected >= -1 && *expected <= 4095), quoteIfNeeded(text));
    if (node)
        FUZZ_CHECK(*node == *expected, quoteIfNeeded(text));
    else
        fuzz::checkLogLine("problem", node.error());
    return 0;
}
