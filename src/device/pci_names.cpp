#include "device/pci_names.h"

#include "base/log.h"
#include "base/regular_file.h"

#include <csetjmp>
#include <cstdlib>
#include <cstdarg>
#include <cstdio>

extern "C" {
#include <pci/pci.h>
}

namespace kvgpu {

namespace {
// libpci's error handler must not return (its default calls exit()). A malformed
// database must only cost us the names, so the handler logs and jumps back to
// the lookup, which then gives up on the database. Only C frames lie between.
thread_local std::jmp_buf *t_lookupJump = nullptr;

std::string formatMessage(const char *format, va_list args)
{
    char buffer[512];
    std::vsnprintf(buffer, sizeof(buffer), format, args);
    return buffer;
}

// GNU noreturn rather than [[noreturn]]: it is part of the function's type, which
// is what pci_access::error is declared with (clang refuses the assignment otherwise).
__attribute__((noreturn)) void onLibpciError(char *format, ...)
{
    {
        // Scoped so that no C++ object is alive when longjmp leaves this frame.
        va_list args;
        va_start(args, format);
        std::string message = formatMessage(format, args);
        va_end(args);
        log::warn("cannot use the pci.ids database; passthrough resources are named by device id",
                  {{"detail", message}});
    }
    if (t_lookupJump)
        std::longjmp(*t_lookupJump, 1);
    std::abort();
}

void onLibpciWarning(char *format, ...)
{
    va_list args;
    va_start(args, format);
    std::string message = formatMessage(format, args);
    va_end(args);
    log::warn("pci.ids warning", {{"detail", message}});
}

void ignoreLibpciDebug(char *, ...) {}
} // namespace

PciIdsDatabase::PciIdsDatabase(std::string path) : path_(std::move(path))
{
    // libpci opens the file with a plain fopen(), which waits for ever on a
    // FIFO: it only gets a path that was a readable regular file a moment ago.
    if (Result<UniqueFd> file = openRegularFile(path_, LastLink::Follow); !file) {
        unusable_ = file.error();
        log::warn("pci.ids database not usable; passthrough resources are named by device id",
                  {{"path", path_}, {"reason", file.error()}});
        return;
    }
    access_ = pci_alloc();
    access_->error = onLibpciError;
    access_->warning = onLibpciWarning;
    access_->debug = ignoreLibpciDebug;
    pci_set_name_list_path(access_, path_.data(), 0);
}

PciIdsDatabase::~PciIdsDatabase()
{
    if (access_)
        pci_cleanup(access_);
}

std::optional<std::string> PciIdsDatabase::deviceName(std::uint16_t vendor, std::uint16_t device)
{
    if (!access_)
        return std::nullopt;
    std::uint32_t key = (static_cast<std::uint32_t>(vendor) << 16) | device;
    if (auto it = cache_.find(key); it != cache_.end())
        return it->second;

    char buffer[512];
    std::jmp_buf jump;
    if (setjmp(jump) != 0) {
        t_lookupJump = nullptr;
        unusable_ = "malformed database";
        pci_cleanup(access_);
        access_ = nullptr;
        return std::nullopt;
    }
    t_lookupJump = &jump;
    // NO_NUMBERS makes an unknown id come back as NULL instead of "Device 2235";
    // NO_HWDB keeps the lookup on the file the user named.
    const char *name = pci_lookup_name(access_, buffer, sizeof(buffer),
                                       PCI_LOOKUP_DEVICE | PCI_LOOKUP_NO_NUMBERS | PCI_LOOKUP_NO_HWDB,
                                       static_cast<int>(vendor), static_cast<int>(device));
    t_lookupJump = nullptr;
    std::optional<std::string> result;
    if (name && *name)
        result = std::string(name);
    cache_.emplace(key, result);
    return result;
}

} // namespace kvgpu
