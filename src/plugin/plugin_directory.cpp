#include "plugin/plugin_directory.h"

#include "model/resource_name.h"

#include <sys/stat.h>

namespace kvgpu {

namespace {
constexpr const char *kKubeletSocketName = "kubelet.sock";
} // namespace

PluginDirectory::PluginDirectory(std::string path) : path_(std::move(path)) {}

std::string PluginDirectory::kubeletSocket() const
{
    return pathOf(kKubeletSocketName);
}

bool PluginDirectory::isKubeletSocket(const std::string &fileName)
{
    return fileName == kKubeletSocketName;
}

std::string PluginDirectory::socketFileOf(const std::string &resource)
{
    return socketFileName(resource);
}

std::optional<KubeletInstance> PluginDirectory::kubelet() const
{
    return identityOf(kKubeletSocketName);
}

std::optional<FileIdentity> PluginDirectory::identityOf(const std::string &fileName) const
{
    struct stat st;
    if (::stat(pathOf(fileName).c_str(), &st) != 0)
        return std::nullopt;
    return FileIdentity{st.st_dev, st.st_ino,
                        static_cast<std::int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec};
}

} // namespace kvgpu
