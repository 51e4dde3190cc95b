// Watches the /dev directories whose entries are device state: the dev root
// itself (for iommu and a vfio directory that appears after us), vfio (group
// nodes) and vfio/devices (iommufd cdevs). A watch dies with its directory,
// and a directory that is missing at start may appear later: the set of
// watches follows the tree, so nothing needs a restart.
//
// Threading contract: bound to the loop thread; the sink is called on it.
#pragma once

#include "loop/event_loop.h"
#include "loop/lifeline.h"
#include "monitor/directory_watch.h"

#include <map>
#include <memory>
#include <string>

namespace kvgpu {

class DevWatch {
public:
    enum class Directory { Dev, Vfio, VfioDevices };
    // Where the changes go (EventDispatch in the daemon).
    class Sink {
    public:
        virtual ~Sink() = default;
        virtual void devChanged(Directory directory, DirectoryWatch::Change change, const std::string &name) = 0;
        // After the changes of one wake-up of one directory.
        virtual void devBatchEnd() = 0;
    };

    // Watches what exists of the three directories under `devRoot` now.
    DevWatch(EventLoop &loop, std::string devRoot, Sink &sink);
    DevWatch(const DevWatch &) = delete;
    DevWatch &operator=(const DevWatch &) = delete;

private:
    void watchWhatExists();
    void follow(const std::string &dir, Directory kind, DirectoryWatch::Change change, const std::string &name);

    EventLoop &loop_;
    const std::string devRoot_;
    Sink &sink_;
    std::map<std::string, std::unique_ptr<DirectoryWatch>> watches_;
    Lifeline lifeline_; // a queued re-watch runs only while this exists
};

} // namespace kvgpu
