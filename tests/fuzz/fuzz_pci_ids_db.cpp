// A pci.ids file of any content read by PciIdsDatabase: malformed lines are
// skipped, never fatal, and every name it does return is non-empty, trimmed,
// and yields a valid resource name.
#include "index/derivation.h"
#include "base/strings.h"
#include "naming/pci_names.h"
#include "fuzz_support.h"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>

using namespace kvgpu;

namespace {
std::string g_path;

void removeFile() { ::unlink(g_path.c_str()); }
} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***)
{
    fuzz::quietLogs();
    g_path = fuzz::scratchDir("kvgpu-fuzz-pci-ids");
    std::atexit(removeFile);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *bytes, size_t size)
{
    FuzzedDataProvider data(bytes, size);
    std::vector<std::uint16_t> lookups;
    for (int i = data.ConsumeIntegralInRange(0, 4); i > 0; --i)
        lookups.push_back(data.ConsumeIntegral<std::uint16_t>());
    lookups.push_back(0x1eb8);
    std::string content = data.ConsumeRemainingBytesAsString();

    int fd = ::open(g_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return 0;
    [[maybe_unused]] ssize_t written = ::write(fd, content.data(), content.size());
    ::close(fd);

    PciIdsDatabase db(g_path);
    for (std::uint16_t device : lookups) {
        PciFunction function{.address = "0000:65:00.0", .vendor = kNvidiaVendorId, .device = device};
        std::optional<std::string> name = db.deviceName(kNvidiaVendorId, device);
        if (name)
            FUZZ_CHECK(!name->empty() && trim(*name) == *name, std::to_string(device));
        // Asked twice, the cache answers the same.
        FUZZ_CHECK(db.deviceName(kNvidiaVendorId, device) == name, std::to_string(device));
        fuzz::checkResourceName(passthroughResourceName(function, db).name);
    }
    // Another vendor's entry for the same id never names an NVIDIA device.
    (void)db.deviceName(0x8086, lookups.front());
    return 0;
}
