// Device names as they appear in sysfs directories and uevents: isPciAddress
// and isUuid against the oracle. A name is never both.
#include "fuzz_support.h"
#include "model/device_address.h"
#include "oracles.h"

using namespace kvgpu;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *bytes, size_t size)
{
    std::string_view name(reinterpret_cast<const char *>(bytes), size);
    bool address = isPciAddress(name);
    bool uuid = isUuid(name);
    FUZZ_CHECK(address == fuzz::oracle::pciAddress(name), quoteIfNeeded(name));
    FUZZ_CHECK(uuid == fuzz::oracle::uuid(name), quoteIfNeeded(name));
    FUZZ_CHECK(!(address && uuid), quoteIfNeeded(name));
    return 0;
}
