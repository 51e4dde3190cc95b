// creatable_vgpu_types and current_vgpu_type of an SR-IOV vGPU VF: the lenient
// catalog parser and the id parser against the oracle.
#include "sysfs/vgpu_types.h"
#include "fuzz_support.h"
#include "oracles_sriov.h"

using namespace kvgpu;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *bytes, size_t size)
{
    std::string_view text(reinterpret_cast<const char *>(bytes), size);

    std::vector<VgpuType> types = parseCreatableVgpuTypes(text);
    std::vector<fuzz::oracle::CatalogEntry> expected = fuzz::oracle::catalog(text);
    FUZZ_CHECK(types.size() == expected.size(),
               std::to_string(types.size()) + " types, expected " + std::to_string(expected.size()) + " in " +
                   quoteIfNeeded(text));
    for (size_t i = 0; i < types.size(); ++i) {
        FUZZ_CHECK(types[i].id == expected[i].id, quoteIfNeeded(text));
        FUZZ_CHECK(types[i].name == expected[i].name, quoteIfNeeded(types[i].name));
        FUZZ_CHECK(!types[i].name.empty() && trim(types[i].name) == types[i].name, quoteIfNeeded(types[i].name));
    }

    Result<std::uint32_t> current = parseCurrentVgpuType(text);
    std::optional<std::uint32_t> id = fuzz::oracle::unsigned32(fuzz::oracle::trimmed(text));
    FUZZ_CHECK(current.ok() == id.has_value(), quoteIfNeeded(text));
    if (current)
        FUZZ_CHECK(*current == *id, quoteIfNeeded(text));
    else
        fuzz::checkLogLine("problem", current.error());
    return 0;
}
