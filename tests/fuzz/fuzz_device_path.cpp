// The target of a bus/*/devices/<name> link
// ("../../../devices/pci0000:64/0000:64:00.0/0000:65:00.0"): devicePathComponents
// against the oracle; its output is a clean path that parses back to itself.
#include "sysfs/sysfs_parse.h"
#include "fuzz_support.h"
#include "oracles.h"

using namespace kvgpu;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *bytes, size_t size)
{
    std::string_view target(reinterpret_cast<const char *>(bytes), size);
    Result<std::vector<std::string>> path = devicePathComponents(target);
    std::optional<std::vector<std::string>> expected = fuzz::oracle::devicePath(target);
    FUZZ_CHECK(path.ok() == expected.has_value(), quoteIfNeeded(target));
    if (!path) {
        fuzz::checkLogLine("problem", path.error());
        return 0;
    }
    FUZZ_CHECK(*path == *expected, quoteIfNeeded(target));
    for (const std::string &part : *path)
        FUZZ_CHECK(!part.empty() && part != "." && part != ".." && part.find('/') == std::string::npos,
                   quoteIfNeeded(target));
    Result<std::vector<std::string>> again = devicePathComponents("../../devices/" + join(*path, "/"));
    FUZZ_CHECK(again && *again == *path, quoteIfNeeded(target));
    return 0;
}
