#include "device/sysfs.h"

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
Error ioError(std::string_view verb, const std::string &path)
{
    return Error{fmt::format("cannot {} {}: {}", verb, path, std::strerror(errno))};
}

Result<std::string> readAll(const std::string &path, size_t maxBytes)
{
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ioError("read", path);
    std::string out;
    char buffer[4096];
    while (out.size() < maxBytes) {
        size_t want = std::min(sizeof(buffer), maxBytes - out.size());
        ssize_t n = ::read(fd, buffer, want);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            Error e = ioError("read", path);
            ::close(fd);
            return e;
        }
        if (n == 0)
            break;
        out.append(buffer, static_cast<size_t>(n));
    }
    ::close(fd);
    return out;
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
    return readAll(path(relative), 65536);
}

Result<std::string> SysfsTree::readBinary(std::string_view relative, size_t maxBytes) const
{
    return readAll(path(relative), maxBytes);
}

Result<std::string> SysfsTree::readLink(std::string_view relative) const
{
    std::string p = path(relative);
    char buffer[4096];
    ssize_t n = ::readlink(p.c_str(), buffer, sizeof(buffer));
    if (n < 0)
        return ioError("read link", p);
    return std::string(buffer, static_cast<size_t>(n));
}

Result<std::vector<std::string>> SysfsTree::listDir(std::string_view relative) const
{
    std::string p = path(relative);
    DIR *dir = ::opendir(p.c_str());
    if (!dir)
        return ioError("list", p);
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
