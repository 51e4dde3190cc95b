// A gRPC server on a unix socket file that is ours alone, for the kubelet's
// two plugin APIs (plugin/ and dra/).
//
// gRPC removes the path it listened on when its listener goes away, and that
// can be after Shutdown() and Wait() have returned: by then a successor may
// serve the same path (our own server started again after a kubelet wiped
// the directory, or a new pod in a rolling update), and its socket would
// vanish under it. So the server listens on a hidden temporary name in the
// same directory (names starting with '.' are ignored by the kubelet's
// watcher) and the socket is renamed into place: it appears at its path
// already listening, replaces a stale one atomically, and gRPC's late removal
// misses. The file is removed only while it is still the one we made.
//
// Thread safety: serveUnixSocket is reentrant; a SocketFile is a plain value.
#pragma once

#include "base/result.h"

#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <sys/types.h>

namespace grpc {
class Server;
class Service;
} // namespace grpc

namespace kvgpu {

// A socket file as created by us, by its identity.
struct SocketFile {
    std::string path;
    dev_t device = 0;
    ino_t inode = 0;

    // The socket at `path` now; nullopt when there is none (or not a socket).
    static std::optional<SocketFile> identify(const std::string &path);
    // Unlinks `path` if it is still this socket; a successor's is left alone.
    void remove() const;
};

struct ServedSocket {
    std::unique_ptr<grpc::Server> server;
    std::optional<SocketFile> file;
};

// Serves `services` on `path`. Anything but a socket at `path` is left alone
// and refused; a stale socket is replaced (`replaced` says so).
Result<ServedSocket> serveUnixSocket(const std::string &path, std::initializer_list<grpc::Service *> services,
                                     bool *replaced = nullptr);

} // namespace kvgpu
