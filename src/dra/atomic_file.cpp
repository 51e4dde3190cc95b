#include "dra/atomic_file.h"

#include "base/regular_file.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

namespace kvgpu::dra {

namespace {

Result<void> writeAll(int fd, std::string_view content, const std::string &path)
{
    while (!content.empty()) {
        ssize_t n = ::write(fd, content.data(), content.size());
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return fileError("write", path, errno);
        }
        content.remove_prefix(static_cast<std::size_t>(n));
    }
    return {};
}

// Flushes the directory entry of a rename or unlink to disk.
Result<void> syncDirectory(const std::string &dir)
{
    UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd.get() < 0)
        return fileError("open directory", dir, errno);
    if (::fsync(fd.get()) != 0)
        return fileError("sync directory", dir, errno);
    return {};
}

} // namespace

Result<void> writeFileAtomically(const std::string &dir, const std::string &fileName, std::string_view content)
{
    const std::string target = dir + "/" + fileName;
    std::string temp = fmt::format("{}/.{}.XXXXXX.tmp", dir, fileName);
    UniqueFd fd(::mkostemps(temp.data(), 4, O_CLOEXEC));
    if (fd.get() < 0)
        return fileError("create a temporary file for", target, errno);

    auto fail = [&](Error error) {
        ::unlink(temp.c_str());
        return Result<void>(std::move(error));
    };
    if (::fchmod(fd.get(), 0644) != 0)
        return fail(fileError("set the mode of", temp, errno));
    if (Result<void> written = writeAll(fd.get(), content, temp); !written)
        return fail(written.failure());
    if (::fsync(fd.get()) != 0)
        return fail(fileError("sync", temp, errno));
    if (::rename(temp.c_str(), target.c_str()) != 0)
        return fail(fileError("rename a temporary file to", target, errno));
    return syncDirectory(dir);
}

Result<void> removeFile(const std::string &dir, const std::string &fileName)
{
    const std::string path = dir + "/" + fileName;
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
        return fileError("remove", path, errno);
    return {};
}

} // namespace kvgpu::dra
