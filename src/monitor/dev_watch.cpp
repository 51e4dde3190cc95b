#include "monitor/dev_watch.h"

#include "base/log.h"

#include <sys/stat.h>

namespace kvgpu {

namespace {

bool isDirectory(const std::string &path)
{
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

} // namespace

DevWatch::DevWatch(EventLoop &loop, std::string devRoot, Sink &sink)
    : loop_(loop), devRoot_(std::move(devRoot)), sink_(sink)
{
    watchWhatExists();
}

void DevWatch::watchWhatExists()
{
    const std::pair<std::string, Directory> dirs[] = {{devRoot_, Directory::Dev},
                                                      {devRoot_ + "/vfio", Directory::Vfio},
                                                      {devRoot_ + "/vfio/devices", Directory::VfioDevices}};
    for (const auto &[dir, kind] : dirs) {
        if (watches_.contains(dir) || !isDirectory(dir))
            continue;
        auto watch = DirectoryWatch::create(
            loop_, dir,
            DirectoryWatch::Callbacks{.change =
                                          [this, dir = dir, kind = kind](DirectoryWatch::Change change,
                                                                         const std::string &name) {
                                              sink_.devChanged(kind, change, name);
                                              follow(dir, kind, change, name);
                                          },
                                      .drained = [this] { sink_.devBatchEnd(); }});
        if (!watch) {
            log::warn("cannot watch a /dev directory; node changes there will be missed", {{"error", watch.error()}});
            continue;
        }
        watches_[dir] = std::move(watch).value();
    }
}

// A watch dies with its directory, and a directory we wait for may appear
// (vfio in the dev root, devices in vfio; a new group node is neither).
// Watches are dropped and added from the inbox, outside the callback of the
// watch that reported it.
void DevWatch::follow(const std::string &dir, Directory kind, DirectoryWatch::Change change, const std::string &name)
{
    if (change == DirectoryWatch::Change::DirectoryGone) {
        loop_.post(lifeline_.guard([this, dir] {
            watches_.erase(dir);
            watchWhatExists();
        }));
        return;
    }
    const bool awaited = (kind == Directory::Dev && name == "vfio") || (kind == Directory::Vfio && name == "devices");
    if (change == DirectoryWatch::Change::Created && awaited)
        loop_.post(lifeline_.guard([this] { watchWhatExists(); }));
}

} // namespace kvgpu
