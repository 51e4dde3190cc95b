// Watches one directory with inotify, reporting created and deleted entries
// by name. Directories, not files, are watched: a watch on a deleted file is
// gone, so a re-created file would never be seen.
//
// Threading contract: bound to the loop thread.
#pragma once

#include "loop/event_loop.h"

#include <functional>
#include <memory>
#include <string>

namespace kvgpu {

class DirectoryWatch {
public:
    enum class Change { Created, Deleted, DirectoryGone, Overflow };
    using Callback = std::function<void(Change change, const std::string &name)>;

    // Returns nullptr (with the reason in `error`) when the directory cannot be watched.
    static std::unique_ptr<DirectoryWatch> create(EventLoop &loop, const std::string &directory,
                                                  Callback callback, std::string &error);
    ~DirectoryWatch();
    DirectoryWatch(const DirectoryWatch &) = delete;
    DirectoryWatch &operator=(const DirectoryWatch &) = delete;

    const std::string &directory() const { return directory_; }

private:
    DirectoryWatch(EventLoop &loop, int fd, std::string directory, Callback callback);
    void onReadable();

    int fd_;
    std::string directory_;
    Callback callback_;
    std::unique_ptr<FdWatcher> watcher_;
};

} // namespace kvgpu
