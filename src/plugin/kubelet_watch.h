// Watches the kubelet's plugin directory and tells the PluginManager what the
// kubelet did: its socket (kubelet.sock) was created or deleted (a kubelet
// started or stopped), one of our sockets was deleted (a kubelet restart
// deletes every socket there), the directory itself went away, or inotify
// overflowed and anything may have happened.
//
// What each file name means is PluginDirectory's to say (plugin_directory.h);
// the daemon only constructs the watch.
//
// Threading contract: bound to the loop thread, like the manager it calls.
#pragma once

#include "base/result.h"
#include "loop/event_loop.h"
#include "monitor/directory_watch.h"

#include <memory>
#include <string>

namespace kvgpu {

class PluginManager;

class KubeletWatch {
public:
    // The error says which directory cannot be watched and why.
    static Result<std::unique_ptr<KubeletWatch>> create(EventLoop &loop, const std::string &pluginDir,
                                                        PluginManager &manager);
    ~KubeletWatch();
    KubeletWatch(const KubeletWatch &) = delete;
    KubeletWatch &operator=(const KubeletWatch &) = delete;

private:
    explicit KubeletWatch(PluginManager &manager);
    void onChange(DirectoryWatch::Change change, const std::string &name);

    PluginManager &manager_;
    std::unique_ptr<DirectoryWatch> watch_;
};

} // namespace kvgpu
