#include "sysfs/sysfs.h"

#include "base/regular_file.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

namespace kvgpu {

namespace {
Error ioError(std::string_view verb, const std::string &path) { return fileError(verb, path, errno); }

// What is there instead of the directory or link the caller expected.
Error wrongKind(std::string_view verb, const std::string &path, std::string_view expected, int error)
{
    struct stat st;
    if (::lstat(path.c_str(), &st) == 0 && !S_ISLNK(st.st_mode))
        return Error{fmt::format("cannot {} {}: it is a {}, not a {}", verb, path, fileKind(st.st_mode), expected)};
    errno = error;
    return ioError(verb, path);
}
} // namespace

std::string SysfsTree::path(std::string_view relative) const
{
    std::string p = root_;
    if (!relative.empty()) {
        if (p.empty() || p.back() != '/')
            p += '/';
        p += relative;
    }
    return p;
}

Result<std::string> SysfsTree::readFile(std::string_view relative) const
{
    // sysfs attributes are at most a page; anything longer is not an attribute.
    return readRegularFile(path(relative), 65536, LastLink::Refuse);
}

Result<std::string> SysfsTree::readBinary(std::string_view relative, size_t maxBytes) const
{
    return readRegularFile(path(relative), maxBytes, LastLink::Refuse);
}

Result<std::string> SysfsTree::readLink(std::string_view relative) const
{
    std::string p = path(relative);
    char buffer[4096];
    ssize_t n = ::readlink(p.c_str(), buffer, sizeof(buffer));
    if (n < 0)
        return errno == EINVAL ? wrongKind("read link", p, "symbolic link", errno) : ioError("read link", p);
    return std::string(buffer, static_cast<size_t>(n));
}

Result<std::vector<std::string>> SysfsTree::listDir(std::string_view relative) const
{
    std::string p = path(relative);
    // O_DIRECTORY refuses a FIFO or socket without opening it for reading.
    int fd = ::open(p.c_str(), O_RDONLY | O_DIRECTORY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOTDIR ? wrongKind("list", p, "directory", errno) : ioError("list", p);
    DIR *dir = ::fdopendir(fd);
    if (!dir) {
        Error e = ioError("list", p);
        ::close(fd);
        return e;
    }
    std::vector<std::string> names;
    while (dirent *entry = ::readdir(dir)) {
        std::string_view name = entry->d_name;
        if (name != "." && name != "..")
            names.emplace_back(name);
    }
    ::closedir(dir);
    std::sort(names.begin(), names.end());
    return names;
}

bool SysfsTree::exists(std::string_view relative) const
{
    struct stat st;
    return ::lstat(path(relative).c_str(), &st) == 0;
}

} // namespace kvgpu
