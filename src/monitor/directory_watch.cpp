#include "monitor/directory_watch.h"

#include <cerrno>
#include <cstring>
#include <sys/inotify.h>
#include <unistd.h>

namespace kvgpu {

std::unique_ptr<DirectoryWatch> DirectoryWatch::create(EventLoop &loop, const std::string &directory,
                                                       Callback callback, std::string &error)
{
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) {
        error = std::string("inotify_init1: ") + std::strerror(errno);
        return nullptr;
    }
    uint32_t mask = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF |
                    IN_ONLYDIR;
    if (inotify_add_watch(fd, directory.c_str(), mask) < 0) {
        error = "cannot watch " + directory + ": " + std::strerror(errno);
        ::close(fd);
        return nullptr;
    }
    return std::unique_ptr<DirectoryWatch>(new DirectoryWatch(loop, fd, directory, std::move(callback)));
}

DirectoryWatch::DirectoryWatch(EventLoop &loop, int fd, std::string directory, Callback callback)
    : fd_(fd), directory_(std::move(directory)), callback_(std::move(callback)),
      watcher_(std::make_unique<FdWatcher>(loop, fd))
{
    watcher_->start([this](int status) {
        if (status >= 0)
            onReadable();
    });
}

DirectoryWatch::~DirectoryWatch()
{
    watcher_.reset(); // stop polling before the fd goes away
    ::close(fd_);
}

void DirectoryWatch::onReadable()
{
    alignas(inotify_event) char buffer[8192];
    while (true) {
        ssize_t n = ::read(fd_, buffer, sizeof(buffer));
        if (n <= 0)
            return;
        for (char *p = buffer; p < buffer + n;) {
            auto *event = reinterpret_cast<inotify_event *>(p);
            p += sizeof(inotify_event) + event->len;
            std::string name = event->len ? std::string(event->name) : std::string();
            if (event->mask & IN_Q_OVERFLOW)
                callback_(Change::Overflow, name);
            else if (event->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED))
                callback_(Change::DirectoryGone, name);
            else if (event->mask & (IN_CREATE | IN_MOVED_TO))
                callback_(Change::Created, name);
            else if (event->mask & (IN_DELETE | IN_MOVED_FROM))
                callback_(Change::Deleted, name);
        }
    }
}

} // namespace kvgpu
