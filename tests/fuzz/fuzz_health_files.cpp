// The files the health rules read: aer_dev_fatal (parseAerTotal) against an
// oracle, current_link_speed/max_link_speed (parseLinkSpeed: a finite, positive
// speed or nothing), and power_state, config space and AER counts through
// polledProblem and the link warnings, whose text must stay one log line.
#include "health/health.h"
#include "sysfs/sysfs_parse.h"
#include "fuzz_support.h"
#include "oracles.h"

#include <climits>
#include <cmath>

using namespace kvgpu;

namespace {

// Lines "<name> <count>"; the TOTAL line wins, else the counts are summed;
// any malformed line, or a sum beyond a long, means no answer.
std::optional<long> aerOracle(std::string_view text, std::string_view totalKey)
{
    __int128 sum = 0;
    bool any = false;
    size_t start = 0;
    while (start <= text.size()) {
        size_t end = text.find('\n', start);
        if (end == std::string_view::npos)
            end = text.size();
        std::string_view line = fuzz::oracle::trimmed(text.substr(start, end - start));
        start = end + 1;
        if (line.empty())
            continue;
        size_t space = line.find_last_of(" \t");
        if (space == std::string_view::npos)
            return std::nullopt;
        std::optional<std::int64_t> count = fuzz::oracle::decimal(fuzz::oracle::trimmed(line.substr(space + 1)));
        if (!count || *count < 0)
            return std::nullopt;
        if (fuzz::oracle::trimmed(line.substr(0, space)) == totalKey)
            return static_cast<long>(*count);
        sum += *count;
        if (sum > LONG_MAX)
            return std::nullopt;
        any = true;
    }
    if (!any)
        return std::nullopt;
    return static_cast<long>(sum);
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***)
{
    fuzz::quietLogs();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *bytes, size_t size)
{
    FuzzedDataProvider data(bytes, size);
    switch (data.ConsumeIntegralInRange(0, 2)) {
    case 0: {
        std::string text = data.ConsumeRemainingBytesAsString();
        std::optional<long> total = parseAerTotal(text, "TOTAL_ERR_FATAL");
        FUZZ_CHECK(total == aerOracle(text, "TOTAL_ERR_FATAL"), quoteIfNeeded(text));
        break;
    }
    case 1: {
        std::string text = data.ConsumeRemainingBytesAsString();
        if (std::optional<double> speed = parseLinkSpeed(text))
            FUZZ_CHECK(std::isfinite(*speed) && *speed > 0, quoteIfNeeded(text));
        break;
    }
    default: {
        PciFunction f{.address = "0000:65:00.0", .vendor = kNvidiaVendorId, .device = 0x1eb8};
        PolledHealth &polled = f.polled;
        if (data.ConsumeBool())
            polled.configVendor = data.ConsumeIntegral<std::uint16_t>();
        if (data.ConsumeBool())
            polled.aerFatal = data.ConsumeIntegralInRange<long>(0, LONG_MAX);
        std::optional<long> baseline;
        if (data.ConsumeBool())
            baseline = data.ConsumeIntegralInRange<long>(0, LONG_MAX);
        if (data.ConsumeBool())
            f.resetMethod = data.ConsumeRandomLengthString(32);
        f.linkSpeed = data.ConsumeRandomLengthString(24);
        f.maxLinkSpeed = data.ConsumeRandomLengthString(24);
        f.linkWidth = data.ConsumeRandomLengthString(8);
        f.maxLinkWidth = data.ConsumeRandomLengthString(8);
        polled.powerState = data.ConsumeRemainingBytesAsString();

        std::string problem = polledProblem(polled, baseline);
        bool expected = polled.configVendor == 0xffff || polled.powerState == "error" ||
                        (polled.aerFatal && baseline && *polled.aerFatal > *baseline);
        FUZZ_CHECK(problem.empty() != expected, problem);
        fuzz::checkLogLine("reason", problem);
        for (const std::string &warning : passthroughWarnings(f))
            fuzz::checkLogLine("warning", warning);
        break;
    }
    }
    return 0;
}
