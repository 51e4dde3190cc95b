#include "monitor/directory_watch.h"

#include "base/log.h"

#include <cerrno>
#include <cstring>
#include <sys/inotify.h>
#include <unistd.h>

namespace kvgpu {

std::unique_ptr<DirectoryWatch> DirectoryWatch::create(EventLoop &loop, const std::string &directory,
                                                       Callbacks callbacks, std::string &error)
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
    auto watch = std::unique_ptr<DirectoryWatch>(new DirectoryWatch(loop, fd, directory, std::move(callbacks)));
    if (int rc = watch->watcher_->start([raw = watch.get()](int status) { raw->onPoll(status); }); rc < 0) {
        error = "cannot poll the inotify watch of " + directory + ": " + uv_strerror(rc);
        return nullptr;
    }
    return watch;
}

DirectoryWatch::DirectoryWatch(EventLoop &loop, int fd, std::string directory, Callbacks callbacks)
    : loop_(loop), fd_(fd), directory_(std::move(directory)), callbacks_(std::move(callbacks)),
      watcher_(std::make_unique<FdWatcher>(loop, fd))
{
}

DirectoryWatch::~DirectoryWatch()
{
    watcher_.reset(); // stop polling before the fd goes away
    ::close(fd_);
}

void DirectoryWatch::onPoll(int status)
{
    readAll();
    if (status < 0) {
        // libuv has stopped the handle. Restarting it here would replace the
        // callback that is running, so it is restarted from the inbox.
        log::warn("inotify watch reported an error; re-reading",
                  {{"path", directory_}, {"error", uv_strerror(status)}});
        callbacks_.change(Change::Overflow, {});
        std::weak_ptr<DirectoryWatch *> self = self_;
        loop_.post([self] {
            if (std::shared_ptr<DirectoryWatch *> alive = self.lock())
                (*alive)->restartPolling();
        });
    }
    if (callbacks_.drained)
        callbacks_.drained();
}

void DirectoryWatch::restartPolling()
{
    if (int rc = watcher_->start([this](int status) { onPoll(status); }); rc < 0)
        log::error("cannot poll the inotify watch again: changes there are missed until the plugin restarts",
                   {{"path", directory_}, {"error", uv_strerror(rc)}});
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
            else if (event->mask & (IN_CREATE | IN_MOVED_TO))
                callbacks_.change(Change::Created, name);
            else if (event->mask & (IN_DELETE | IN_MOVED_FROM))
                callbacks_.change(Change::Deleted, name);
        }
    }
}

} // namespace kvgpu
