// sysfs class files ("0x030200\n"): parsePciClass against the oracle.
#include "sysfs/pci_class.h"
#include "sysfs/sysfs_parse.h"
#include "fuzz_support.h"
#include "oracles.h"

using namespace kvgpu;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *bytes, size_t size)
{
    std::string_view text(reinterpret_cast<const char *>(bytes), size);
    Result<std::uint32_t> classCode = parsePciClass(text);
    std::optional<std::uint64_t> expected = fuzz::oracle::hex(fuzz::oracle::trimmed(text));
    FUZZ_CHECK(classCode.ok() == (expected && *expected <= 0xffffff), quoteIfNeeded(text));
    if (classCode) {
        FUZZ_CHECK(*classCode == *expected, quoteIfNeeded(text));
        // Every class gets a label and a yes/no on being a resource of its own.
        FUZZ_CHECK(!classLabel(*classCode).empty(), quoteIfNeeded(text));
        (void)isAdvertisedClass(*classCode);
    } else {
        fuzz::checkLogLine("problem", classCode.error());
    }
    return 0;
}
