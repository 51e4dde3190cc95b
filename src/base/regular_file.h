// Opening files that must be regular files (sysfs attributes, pci.ids)
// without ever blocking. A plain open(2) of a FIFO waits for a writer and a
// read of a socket or character device can wait for ever; on the loop thread
// that would hang start-up, every event and SIGTERM. So the file is checked
// with lstat/stat before it is opened (a device node is never opened at all),
// opened with O_NONBLOCK, and checked again with fstat.
//
// Thread safety: free functions with no shared state; reentrant. UniqueFd is
// a plain move-only value.
#pragma once

#include "base/result.h"

#include <cstddef>
#include <string>
#include <string_view>

namespace kvgpu {

// Owns a file descriptor and closes it on destruction.
class UniqueFd {
public:
    explicit UniqueFd(int fd) : fd_(fd) {}
    UniqueFd(UniqueFd &&other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
    UniqueFd &operator=(UniqueFd &&other) noexcept;
    UniqueFd(const UniqueFd &) = delete;
    UniqueFd &operator=(const UniqueFd &) = delete;
    ~UniqueFd();

    int get() const { return fd_; }

private:
    int fd_ = -1;
};

// What a symlink in the last component of the path means. sysfs attributes
// are never symlinks, so there a link is refused; a configured path such as
// --pci-ids may well be one (distributions link pci.ids into place).
enum class LastLink { Refuse, Follow };

// Opens `path` read-only if it is a regular file. Anything else (a directory,
// FIFO, socket, device node, a symlink when refused, a dangling or looping
// link) is an error naming the file and what it is instead.
Result<UniqueFd> openRegularFile(const std::string &path, LastLink lastLink);

// Reads at most `maxBytes` bytes of a regular file opened as above.
Result<std::string> readRegularFile(const std::string &path, std::size_t maxBytes, LastLink lastLink);

// "cannot <verb> <path>: <reason>" for a failed call on `path` with `error`
// (an errno), saying "it is a dangling symbolic link" or "it is a looping
// symbolic link" where strerror would only say ENOENT or ELOOP.
Error fileError(std::string_view verb, const std::string &path, int error);

// "FIFO", "directory", "socket", ... for the st_mode of a file that is not regular.
const char *fileKind(unsigned mode);

} // namespace kvgpu
