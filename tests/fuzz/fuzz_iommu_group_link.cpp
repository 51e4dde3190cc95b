// The target of a device's iommu_group link ("../../../kernel/iommu_groups/12"):
// parseIommuGroupLink against the oracle.
#include "sysfs/sysfs_parse.h"
#include "fuzz_support.h"
#include "oracles.h"

using namespace kvgpu;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *bytes, size_t size)
{
    std::string_view target(reinterpret_cast<const char *>(bytes), size);
    Result<int> group = parseIommuGroupLink(target);
    std::optional<std::int64_t> expected = fuzz::oracle::decimal(fuzz::oracle::lastComponent(target));
    bool accept = target.find("iommu_groups/") != std::string_view::npos && expected && *expected >= 0 &&
                  *expected <= 0x7fffffff;
    FUZZ_CHECK(group.ok() == accept, quoteIfNeeded(target));
    if (group)
        FUZZ_CHECK(*group == *expected, quoteIfNeeded(target));
    else
        fuzz::checkLogLine("problem", group.error());
    return 0;
}
