#include "monitor/directory_watch.h"

#include "base/log.h"

#include <cerrno>
#include <cstring>
#include <sys/inotify.h>
#include <unistd.h>

namespace kvgpu {

Result<std::unique_ptr<DirectoryWatch>> DirectoryWatch::create(EventLoop &loop, const std::string &directory,
                                                               Callbacks callbacks, std::uint32_t extraMask)
{
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0)
        return Error{std::string("inotify_init1: ") + std::strerror(errno)};
    uint32_t mask = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF |
                    IN_ONLYDIR | extraMask;
    if (inotify_add_watch(fd, directory.c_str(), mask) < 0) {
        std::string error = "cannot watch " + directory + ": " + std::strerror(errno);
        ::close(fd);
        return Error{error};
    }
    auto watch = std::unique_ptr<DirectoryWatch>(new DirectoryWatch(loop, fd, directory, std::move(callbacks)));
    if (int rc = watch->startPolling(); rc < 0)
        return Error{"cannot poll the inotify watch of " + directory + ": " + uv_strerror(rc)};
    return watch;
}

DirectoryWatch::DirectoryWatch(EventLoop &loop, int fd, std::string directory, Callbacks callbacks)
    : fd_(fd), directory_(std::move(directory)), callbacks_(std::move(callbacks)),
      watcher_(std::make_unique<FdWatcher>(loop, fd))
{
}

DirectoryWatch::~DirectoryWatch()
{
    watcher_.reset(); // stop polling before the fd goes away
    ::close(fd_);
}

int DirectoryWatch::startPolling()
{
    return watcher_->start([this](int status) { onPoll(status); });
}

void DirectoryWatch::onPoll(int status)
{
    if (status < 0) {
        // libuv has stopped the handle; what was missed is unknown.
        log::warn("inotify watch reported an error; re-reading",
                  {{"path", directory_}, {"error", uv_strerror(status)}});
        if (int rc = startPolling(); rc < 0)
            log::error("cannot poll the inotify watch again: changes there are missed until the plugin restarts",
                       {{"path", directory_}, {"error", uv_strerror(rc)}});
    }
    readAll();
    if (status < 0)
        callbacks_.change(Change::Overflow, {});
    if (callbacks_.drained)
        callbacks_.drained();
}

void DirectoryWatch::readAll()
{
    alignas(inotify_event) char buffer[8192];
    while (true) {
        ssize_t n = ::read(fd_, buffer, sizeof(buffer));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (char *p = buffer; p < buffer + n;) {
            auto *event = reinterpret_cast<inotify_event *>(p);
            p += sizeof(inotify_event) + event->len;
            std::string name = event->len ? std::string(event->name) : std::string();
            if (event->mask & IN_Q_OVERFLOW)
                callbacks_.change(Change::Overflow, name);
            else if (event->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED))
                callbacks_.change(Change::DirectoryGone, name);
            else if (event->mask & (IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE))
                callbacks_.change(Change::Created, name);
            else if (event->mask & (IN_DELETE | IN_MOVED_FROM))
                callbacks_.change(Change::Deleted, name);
        }
    }
}

} // namespace kvgpu
