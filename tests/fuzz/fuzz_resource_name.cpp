// Names from pci.ids and vGPU type name files through the original's
// sanitisers and the validity fixer. Whatever the name, the resource the
// kubelet is asked to register is valid, a valid name is never touched, and a
// repair says what it changed.
#include "index/derivation.h"
#include "naming/resource_naming.h"
#include "fuzz_support.h"

using namespace kvgpu;

namespace {

void checkRepair(const std::string &part, const std::string &fallback, const NamePart &fixed)
{
    if (isValidResourceNamePart(part)) {
        FUZZ_CHECK(fixed.name == part && fixed.repair.empty(), quoteIfNeeded(part));
    } else {
        FUZZ_CHECK(!fixed.repair.empty(), quoteIfNeeded(part));
        fuzz::checkLogLine("detail", fixed.repair);
    }
    if (isValidResourceNamePart(fallback) || isValidResourceNamePart(part))
        FUZZ_CHECK(isValidResourceNamePart(fixed.name), quoteIfNeeded(part) + " -> " + quoteIfNeeded(fixed.name));
    FUZZ_CHECK(fixed.name.size() <= 63, fixed.name);
    // Repairing is idempotent: a repaired name is left alone the second time.
    if (isValidResourceNamePart(fixed.name)) {
        NamePart again = repairResourceNamePart(fixed.name, fallback);
        FUZZ_CHECK(again.name == fixed.name && again.repair.empty(), fixed.name);
    }
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
    auto deviceId = data.ConsumeIntegral<std::uint16_t>();
    std::string typeId = data.ConsumeRandomLengthString(80);
    std::string name = data.ConsumeRemainingBytesAsString();

    // Passthrough: the pci.ids name, sanitised as the original did, then
    // repaired with the hex id as the fallback.
    std::string sanitized = sanitizePciDeviceName(name);
    for (char c : sanitized) {
        bool allowed = (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
        FUZZ_CHECK(allowed, quoteIfNeeded(name) + " -> " + quoteIfNeeded(sanitized));
    }
    std::string fallback = hexDeviceIdName(deviceId);
    FUZZ_CHECK(isValidResourceNamePart(fallback), fallback);
    std::string part = sanitized.empty() ? fallback : sanitized;
    NamePart fixed = repairResourceNamePart(part, fallback);
    checkRepair(part, fallback, fixed);
    FUZZ_CHECK(isValidResourceNamePart(fixed.name), quoteIfNeeded(name) + " -> " + quoteIfNeeded(fixed.name));

    // The same through the inventory's naming, with the name from a name source.
    fuzz::FuzzedNames names(name);
    PciFunction function{.address = "0000:65:00.0", .vendor = kNvidiaVendorId, .device = deviceId};
    NamedResource passthrough = passthroughResourceName(function, names);
    fuzz::checkResourceName(passthrough.name);
    FUZZ_CHECK(passthrough.name == resourceName(fixed.name), passthrough.name);

    // vGPU: the type's name file (case kept), or the type id when there is none.
    std::string vgpuPart = sanitizeVgpuTypeName(name);
    checkRepair(vgpuPart, typeId, repairResourceNamePart(vgpuPart, typeId));
    Mdev mdev{.uuid = "aa618089-8b16-4d01-a136-25a0f3c73123", .typeId = typeId, .typeName = name};
    NamedResource vgpu = vgpuResourceName(mdev);
    if (isValidResourceNamePart(vgpu.name.substr(kResourceDomain.size() + 1)))
        fuzz::checkResourceName(vgpu.name);

    // The KubeVirt variable name: upper case, no '/' or '.'.
    std::string key = envKey(DeviceKind::Vgpu, passthrough.name);
    FUZZ_CHECK(key.find_first_of("/.") == std::string::npos, key);
    return 0;
}
