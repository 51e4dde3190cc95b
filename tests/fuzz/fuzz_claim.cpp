// ResourceClaim bodies from the API server through the claim parser. Whatever
// the bytes, the parser returns (no throw, no crash); a parsed claim has an
// identity and only usable results (a pool, a device, a base request without
// '/' that starts the allocated request); an error is one log line. The same
// bytes, taken as a health reason, always give a valid taint value.
#include "dra/claim.h"
#include "dra/device_names.h"
#include "fuzz_support.h"

using namespace kvgpu;

extern "C" int LLVMFuzzerInitialize(int *, char ***)
{
    fuzz::quietLogs();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *bytes, size_t size)
{
    std::string_view text(reinterpret_cast<const char *>(bytes), size);

    Result<dra::AllocatedClaim> claim = dra::parseClaim(text, "gpu-vm.example.com");
    if (claim) {
        FUZZ_CHECK(!claim->uid.empty() && !claim->name.empty() && !claim->ns.empty(), quoteIfNeeded(text));
        FUZZ_CHECK(!claim->podClaimName || !claim->podClaimName->empty(), quoteIfNeeded(text));
        for (const dra::AllocationResult &result : claim->results) {
            FUZZ_CHECK(!result.pool.empty() && !result.device.empty(), quoteIfNeeded(text));
            FUZZ_CHECK(!result.baseRequest.empty(), quoteIfNeeded(text));
            FUZZ_CHECK(result.baseRequest.find('/') == std::string::npos, quoteIfNeeded(result.baseRequest));
            FUZZ_CHECK(result.request.rfind(result.baseRequest, 0) == 0, quoteIfNeeded(result.request));
            FUZZ_CHECK(result.request.size() == result.baseRequest.size() ||
                           result.request[result.baseRequest.size()] == '/',
                       quoteIfNeeded(result.request));
        }
    } else {
        FUZZ_CHECK(!claim.error().empty(), quoteIfNeeded(text));
        fuzz::checkLogLine("error", claim.error());
    }

    std::string value = dra::labelValueOf(text);
    FUZZ_CHECK(dra::isLabelValue(value), quoteIfNeeded(text) + " -> " + value);
    FUZZ_CHECK(value == dra::labelValueOf(text), quoteIfNeeded(text));
    return 0;
}
