// /sys/class/egm/egmN/gpu_devices: parseEgmGpuDevices against the oracle, and
// the allocation rule on the region it describes.
#include "sysfs/egm.h"
#include "fuzz_support.h"
#include "oracles_sriov.h"

using namespace kvgpu;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *bytes, size_t size)
{
    std::string_view text(reinterpret_cast<const char *>(bytes), size);
    EgmMembership members = parseEgmGpuDevices(text);
    std::vector<std::string> expected = fuzz::oracle::egmMembers(text);
    FUZZ_CHECK(members.gpus == expected, quoteIfNeeded(text));
    for (const std::string &rejected : members.rejected)
        FUZZ_CHECK(!fuzz::oracle::pciAddress(rejected), quoteIfNeeded(rejected));

    // A request holding all of a region's GPUs gets it; one GPU fewer does not.
    EgmRegion region{"egm0", members.gpus, true, ""};
    std::vector<std::string> held = egmRegionsHeldBy({region}, members.gpus);
    FUZZ_CHECK(held.size() == (members.gpus.empty() ? 0u : 1u), quoteIfNeeded(text));
    if (!members.gpus.empty()) {
        std::vector<std::string> fewer(members.gpus.begin() + 1, members.gpus.end());
        FUZZ_CHECK(egmRegionsHeldBy({region}, fewer).empty(), quoteIfNeeded(text));
    }
    return 0;
}
