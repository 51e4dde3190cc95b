// Watches one directory with inotify, reporting created and deleted entries
// by name. Directories, not files, are watched: a watch on a deleted file is
// gone, so a re-created file would never be seen.
//
// Every wake-up reads all queued changes and then calls `drained`, so that an
// owner applies a burst of changes and publishes once, as it does for a burst
// of uevents. If epoll reports an error on the inotify fd, libuv stops the
// poll handle; the watch polls again, reads what is queued and reports
// Overflow (what it missed is unknown).
//
// Threading contract: bound to the loop thread; callbacks run on it.
#pragma once

#include "base/result.h"
#include "loop/event_loop.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace kvgpu {

class DirectoryWatch {
public:
    enum class Change { Created, Deleted, DirectoryGone, Overflow };
    using Callback = std::function<void(Change change, const std::string &name)>;
    struct Callbacks {
        Callback change;
        std::function<void()> drained; // optional: after the changes of one wake-up
    };

    // `extraMask` adds inotify events to watch (reported as Created), e.g.
    // IN_CLOSE_WRITE for a file written in place. Fails when the directory
    // cannot be watched.
    static Result<std::unique_ptr<DirectoryWatch>> create(EventLoop &loop, const std::string &directory,
                                                          Callbacks callbacks, std::uint32_t extraMask = 0);
    static Result<std::unique_ptr<DirectoryWatch>> create(EventLoop &loop, const std::string &directory,
                                                          Callback callback)
    {
        return create(loop, directory, Callbacks{std::move(callback), {}});
    }
    ~DirectoryWatch();
    DirectoryWatch(const DirectoryWatch &) = delete;
    DirectoryWatch &operator=(const DirectoryWatch &) = delete;

    const std::string &directory() const { return directory_; }

private:
    DirectoryWatch(EventLoop &loop, int fd, std::string directory, Callbacks callbacks);
    void onPoll(int status);
    void readAll();
    int startPolling();

    int fd_;
    std::string directory_;
    Callbacks callbacks_;
    std::unique_ptr<FdWatcher> watcher_;
};

} // namespace kvgpu
