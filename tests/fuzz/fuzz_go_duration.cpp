// VFIO_VGPU_RESCAN_INTERVAL in Go duration syntax: parseGoDuration against
// the oracle's grammar and exact value.
#include "base/go_duration.h"
#include "fuzz_support.h"
#include "oracles_sriov.h"

using namespace kvgpu;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *bytes, size_t size)
{
    std::string_view text(reinterpret_cast<const char *>(bytes), size);
    Result<std::chrono::nanoseconds> parsed = parseGoDuration(text);
    std::optional<fuzz::oracle::GoDuration> expected = fuzz::oracle::goDuration(text);
    if (!expected) {
        FUZZ_CHECK(!parsed.ok(), quoteIfNeeded(text));
        fuzz::checkLogLine("problem", parsed.error());
        return 0;
    }
    // Go rounds each term's fraction through a double: allow a nanosecond per term.
    const __int128 slack = expected->terms + 1;
    const __int128 limit = static_cast<__int128>(1) << 63; // |INT64_MIN|
    const __int128 magnitude = expected->nanoseconds;
    if (magnitude + slack < (expected->negative ? limit + 1 : limit))
        FUZZ_CHECK(parsed.ok(), quoteIfNeeded(text) + ": " + parsed.error());
    if (magnitude > limit + slack)
        FUZZ_CHECK(!parsed.ok(), quoteIfNeeded(text));
    if (parsed) {
        __int128 value = parsed->count();
        __int128 exact = expected->negative ? -magnitude : magnitude;
        FUZZ_CHECK(value - exact <= slack && exact - value <= slack, quoteIfNeeded(text));
        FUZZ_CHECK(!expected->negative || value <= 0, quoteIfNeeded(text));
        FUZZ_CHECK(expected->negative || value >= 0, quoteIfNeeded(text));
    } else {
        fuzz::checkLogLine("problem", parsed.error());
    }
    return 0;
}
