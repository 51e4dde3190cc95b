// Tells when the configuration file may have changed. The file's directory is
// watched, not the file: a mounted ConfigMap is updated by atomically swapping
// its `..data` symlink (the file itself is a symlink through it and never
// changes), and editors save by renaming a new file over the old one, which
// would end a watch on the file. Writes in place are seen too (close after
// write). Every event in the directory counts: the caller re-reads the file
// and compares, which is cheap and never misses an indirection.
//
// Threading contract: bound to the loop thread; the callback runs there, once
// per batch of events read together.
#pragma once

#include "loop/event_loop.h"

#include <functional>
#include <memory>
#include <string>

namespace kvgpu {

class ConfigWatch {
public:
    // nullptr, with the reason in `error`, when the directory cannot be watched.
    static std::unique_ptr<ConfigWatch> create(EventLoop &loop, const std::string &file, std::function<void()> changed,
                                               std::string &error);
    ~ConfigWatch();
    ConfigWatch(const ConfigWatch &) = delete;
    ConfigWatch &operator=(const ConfigWatch &) = delete;

    const std::string &directory() const { return directory_; }

    // The directory of `file` ("." for a bare file name).
    static std::string directoryOf(const std::string &file);

private:
    ConfigWatch(EventLoop &loop, int fd, std::string directory, std::function<void()> changed);
    void onReadable(int status);

    int fd_;
    std::string directory_;
    std::function<void()> changed_;
    std::unique_ptr<FdWatcher> watcher_;
};

} // namespace kvgpu
