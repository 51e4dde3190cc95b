// The kubelet's device plugin directory and its layout: the kubelet's own
// socket (kubelet.sock, created afresh by every kubelet at its start, so that
// the file's inode names a kubelet instance) and one socket per resource we
// serve (kvgpu-<name>.sock). This is the only place that knows that layout:
// the PluginManager asks it for paths and for the kubelet there now, the
// KubeletWatch asks it what a changed file is.
//
// Threading contract: immutable after construction; every method may be
// called from any thread (the ones that stat read the disk as it is then).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <sys/types.h>

namespace kvgpu {

// One file on disk, as a socket's listener sees it: a file of the same path
// but another inode is another socket.
// Which file a name holds: a file deleted and created again is another file
// even when the filesystem hands it the freed inode (ext4 and tmpfs do at
// once), so its inode change time belongs to its identity.
struct FileIdentity {
    dev_t device = 0;
    ino_t inode = 0;
    std::int64_t changedNs = 0; // st_ctim
    bool operator==(const FileIdentity &) const = default;
};

// A kubelet instance is the kubelet.sock file it created at its start.
using KubeletInstance = FileIdentity;

class PluginDirectory {
public:
    explicit PluginDirectory(std::string path);

    const std::string &path() const { return path_; }
    std::string pathOf(const std::string &fileName) const { return path_ + "/" + fileName; }
    std::string kubeletSocket() const;
    // Whether a file name in the directory is the kubelet's socket.
    static bool isKubeletSocket(const std::string &fileName);
    // The file name of the socket that serves `resource`.
    static std::string socketFileOf(const std::string &resource);

    // The kubelet whose socket is there now, if any.
    std::optional<KubeletInstance> kubelet() const;
    // The file of that name there now, if any.
    std::optional<FileIdentity> identityOf(const std::string &fileName) const;

private:
    std::string path_;
};

} // namespace kvgpu
