#include "base/regular_file.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

namespace kvgpu {

UniqueFd &UniqueFd::operator=(UniqueFd &&other) noexcept
{
    if (this != &other) {
        if (fd_ >= 0)
            ::close(fd_);
        fd_ = other.fd_;
        other.fd_ = -1;
    }
    return *this;
}

UniqueFd::~UniqueFd()
{
    if (fd_ >= 0)
        ::close(fd_);
}

const char *fileKind(unsigned mode)
{
    switch (mode & S_IFMT) {
    case S_IFREG: return "regular file";
    case S_IFDIR: return "directory";
    case S_IFIFO: return "FIFO";
    case S_IFSOCK: return "socket";
    case S_IFCHR: return "character device";
    case S_IFBLK: return "block device";
    case S_IFLNK: return "symbolic link";
    default: return "special file";
    }
}

Error fileError(std::string_view verb, const std::string &path, int error)
{
    struct stat st;
    if (error == ENOENT && ::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode))
        return Error{fmt::format("cannot {} {}: it is a dangling symbolic link", verb, path)};
    if (error == ELOOP)
        return Error{fmt::format("cannot {} {}: it is a looping symbolic link", verb, path)};
    return Error{fmt::format("cannot {} {}: {}", verb, path, std::strerror(error))};
}

namespace {

Error errnoError(const std::string &path, int error) { return fileError("read", path, error); }

Error notRegular(const std::string &path, unsigned mode)
{
    return Error{fmt::format("cannot read {}: it is a {}, not a regular file", path, fileKind(mode))};
}

} // namespace

Result<UniqueFd> openRegularFile(const std::string &path, LastLink lastLink)
{
    // Checked before open(2) so that a FIFO, socket or device node is never
    // opened: opening one can block or have side effects.
    struct stat before;
    int rc = lastLink == LastLink::Follow ? ::stat(path.c_str(), &before) : ::lstat(path.c_str(), &before);
    if (rc != 0)
        return errnoError(path, errno);
    if (!S_ISREG(before.st_mode))
        return notRegular(path, before.st_mode);

    int flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
    if (lastLink == LastLink::Refuse)
        flags |= O_NOFOLLOW;
    UniqueFd fd(::open(path.c_str(), flags));
    if (fd.get() < 0)
        return errno == ELOOP && lastLink == LastLink::Refuse ? notRegular(path, S_IFLNK) : errnoError(path, errno);

    // Swapped between the stat and the open: O_NONBLOCK kept the open from
    // waiting, and this keeps the read from doing so.
    struct stat after;
    if (::fstat(fd.get(), &after) != 0)
        return errnoError(path, errno);
    if (!S_ISREG(after.st_mode))
        return notRegular(path, after.st_mode);
    return Result<UniqueFd>(std::move(fd));
}

Result<std::string> readRegularFile(const std::string &path, std::size_t maxBytes, LastLink lastLink)
{
    Result<UniqueFd> fd = openRegularFile(path, lastLink);
    if (!fd)
        return Error{fd.error()};
    std::string out;
    char buffer[4096];
    while (out.size() < maxBytes) {
        std::size_t want = std::min(sizeof(buffer), maxBytes - out.size());
        ssize_t n = ::read(fd->get(), buffer, want);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errnoError(path, errno);
        }
        if (n == 0)
            break;
        out.append(buffer, static_cast<std::size_t>(n));
    }
    return out;
}

} // namespace kvgpu
