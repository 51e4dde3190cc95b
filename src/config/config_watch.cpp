#include "config/config_watch.h"

#include "base/log.h"

#include <cerrno>
#include <cstring>
#include <sys/inotify.h>
#include <unistd.h>

namespace kvgpu {

std::string ConfigWatch::directoryOf(const std::string &file)
{
    size_t slash = file.rfind('/');
    if (slash == std::string::npos)
        return ".";
    return slash == 0 ? std::string("/") : file.substr(0, slash);
}

std::unique_ptr<ConfigWatch> ConfigWatch::create(EventLoop &loop, const std::string &file,
                                                 std::function<void()> changed, std::string &error)
{
    std::string directory = directoryOf(file);
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) {
        error = std::string("inotify_init1: ") + std::strerror(errno);
        return nullptr;
    }
    uint32_t mask = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE_SELF |
                    IN_MOVE_SELF | IN_ONLYDIR;
    if (inotify_add_watch(fd, directory.c_str(), mask) < 0) {
        error = "cannot watch " + directory + ": " + std::strerror(errno);
        ::close(fd);
        return nullptr;
    }
    return std::unique_ptr<ConfigWatch>(new ConfigWatch(loop, fd, directory, std::move(changed)));
}

ConfigWatch::ConfigWatch(EventLoop &loop, int fd, std::string directory, std::function<void()> changed)
    : fd_(fd), directory_(std::move(directory)), changed_(std::move(changed)),
      watcher_(std::make_unique<FdWatcher>(loop, fd))
{
    watcher_->start([this](int status) { onReadable(status); });
}

ConfigWatch::~ConfigWatch()
{
    watcher_.reset(); // stop polling before the fd goes away
    ::close(fd_);
}

void ConfigWatch::onReadable(int status)
{
    if (status < 0) {
        log::error("the configuration watch failed; changes are read on SIGHUP only", {{"directory", directory_}});
        return;
    }
    alignas(inotify_event) char buffer[8192];
    bool any = false;
    bool gone = false;
    while (true) {
        ssize_t n = ::read(fd_, buffer, sizeof(buffer));
        if (n <= 0)
            break;
        any = true;
        for (char *p = buffer; p < buffer + n;) {
            auto *event = reinterpret_cast<inotify_event *>(p);
            p += sizeof(inotify_event) + event->len;
            gone = gone || (event->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED));
        }
    }
    if (gone)
        log::error("the configuration's directory was removed or moved; changes are read on SIGHUP only",
                   {{"directory", directory_}});
    if (any)
        changed_();
}

} // namespace kvgpu
