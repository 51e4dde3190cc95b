#include "plugin/kubelet_watch.h"

#include "plugin/plugin_directory.h"
#include "plugin/plugin_manager.h"

namespace kvgpu {

Result<std::unique_ptr<KubeletWatch>> KubeletWatch::create(EventLoop &loop, const std::string &pluginDir,
                                                           PluginManager &manager)
{
    std::unique_ptr<KubeletWatch> watch(new KubeletWatch(manager));
    KubeletWatch *self = watch.get();
    auto directory = DirectoryWatch::create(
        loop, pluginDir, [self](DirectoryWatch::Change change, const std::string &name) { self->onChange(change, name); });
    if (!directory)
        return Error{"cannot watch the plugin directory: " + directory.error()};
    watch->watch_ = std::move(directory).value();
    return watch;
}

KubeletWatch::KubeletWatch(PluginManager &manager) : manager_(manager) {}

KubeletWatch::~KubeletWatch() = default;

void KubeletWatch::onChange(DirectoryWatch::Change change, const std::string &name)
{
    switch (change) {
    case DirectoryWatch::Change::Created:
        if (PluginDirectory::isKubeletSocket(name))
            manager_.kubeletChanged();
        break;
    case DirectoryWatch::Change::Deleted:
        if (PluginDirectory::isKubeletSocket(name))
            manager_.kubeletChanged();
        else
            manager_.socketDeleted(name);
        break;
    case DirectoryWatch::Change::DirectoryGone:
        manager_.pluginDirectoryGone();
        break;
    case DirectoryWatch::Change::Overflow:
        manager_.reconcileAll("plugin directory events were lost");
        break;
    }
}

} // namespace kvgpu
