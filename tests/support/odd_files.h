// Things that are not what the kernel puts there, for the bad-input tests: a
// FIFO (whose open(2) would wait for a writer), a socket, a directory, a
// character device, and links that point nowhere or at themselves, each in
// place of a file or link the daemon reads.
#pragma once

#include "temp_tree.h"

#include <filesystem>
#include <string>
#include <vector>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

namespace kvgpu::test {

enum class Oddity { Fifo, Socket, Directory, CharDevice, DanglingLink, LoopingLink };

inline const char *describe(Oddity oddity)
{
    switch (oddity) {
    case Oddity::Fifo: return "a FIFO";
    case Oddity::Socket: return "a socket";
    case Oddity::Directory: return "a directory";
    case Oddity::CharDevice: return "a character device";
    case Oddity::DanglingLink: return "a dangling link";
    case Oddity::LoopingLink: return "a looping link";
    }
    return "?";
}

// Every oddity this process can make: a character device needs CAP_MKNOD.
inline std::vector<Oddity> allOddities()
{
    std::vector<Oddity> all = {Oddity::Fifo, Oddity::Socket, Oddity::Directory, Oddity::DanglingLink,
                               Oddity::LoopingLink};
    if (::geteuid() == 0)
        all.push_back(Oddity::CharDevice);
    return all;
}

// Replaces whatever is at `relative` with `oddity`.
inline void replaceWith(TempTree &tree, const std::string &relative, Oddity oddity)
{
    const std::string path = tree.path(relative);
    tree.remove(relative);
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    switch (oddity) {
    case Oddity::Fifo:
        ::mkfifo(path.c_str(), 0644);
        break;
    case Oddity::Socket: {
        // sun_path is short: bind next to the root, then move it into place.
        const std::string shortPath = tree.path("s");
        int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        shortPath.copy(address.sun_path, sizeof(address.sun_path) - 1);
        [[maybe_unused]] int rc = ::bind(fd, reinterpret_cast<sockaddr *>(&address), sizeof(address));
        ::close(fd);
        std::filesystem::rename(shortPath, path);
        break;
    }
    case Oddity::Directory:
        tree.mkdir(relative);
        break;
    case Oddity::CharDevice:
        ::mknod(path.c_str(), S_IFCHR | 0644, makedev(1, 3)); // /dev/null's numbers
        break;
    case Oddity::DanglingLink:
        tree.link(relative, "nowhere");
        break;
    case Oddity::LoopingLink:
        tree.link(relative, std::filesystem::path(relative).filename().string());
        break;
    }
}

// Puts `oddity` at `relative` for the life of the object, then puts back
// what was there (moved aside meanwhile), so one tree serves many cases.
class ScopedOddity {
public:
    ScopedOddity(TempTree &tree, std::string relative, Oddity oddity)
        : tree_(tree), relative_(std::move(relative)), saved_(tree.path(".saved"))
    {
        std::filesystem::remove_all(saved_);
        std::error_code absent;
        std::filesystem::rename(tree_.path(relative_), saved_, absent);
        hadOriginal_ = !absent;
        replaceWith(tree_, relative_, oddity);
    }
    ~ScopedOddity()
    {
        tree_.remove(relative_);
        if (hadOriginal_)
            std::filesystem::rename(saved_, tree_.path(relative_));
    }
    ScopedOddity(const ScopedOddity &) = delete;
    ScopedOddity &operator=(const ScopedOddity &) = delete;

private:
    TempTree &tree_;
    std::string relative_;
    std::string saved_;
    bool hadOriginal_ = false;
};

} // namespace kvgpu::test
