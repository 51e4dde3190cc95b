#include "rpc/unix_socket_server.h"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <fmt/format.h>
#include <grpcpp/grpcpp.h>

namespace kvgpu {

std::optional<SocketFile> SocketFile::identify(const std::string &path)
{
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode))
        return std::nullopt;
    return SocketFile{path, st.st_dev, st.st_ino};
}

void SocketFile::remove() const
{
    std::optional<SocketFile> now = identify(path);
    if (now && now->device == device && now->inode == inode)
        ::unlink(path.c_str());
}

Result<ServedSocket> serveUnixSocket(const std::string &path, std::initializer_list<grpc::Service *> services,
                                     bool *replaced)
{
    struct stat st {};
    const bool replacing = ::lstat(path.c_str(), &st) == 0;
    if (replacing && !S_ISSOCK(st.st_mode))
        return Error{path + " exists and is not a socket; remove it so that the plugin can listen there"};
    if (path.size() >= sizeof(sockaddr_un::sun_path))
        return Error{fmt::format("the socket path {} is {} bytes long; a unix socket path has at most {}", path,
                                 path.size(), sizeof(sockaddr_un::sun_path) - 1)};
    static std::atomic<unsigned> serial{0};
    const std::string listening =
        std::filesystem::path(path).parent_path() / fmt::format(".{}-{}", ::getpid(), ++serial);
    if (listening.size() >= sizeof(sockaddr_un::sun_path))
        return Error{"the socket path " + path + " is too long: its directory must leave room for a unix socket name"};

    grpc::ServerBuilder builder;
    builder.AddListeningPort("unix://" + listening, grpc::InsecureServerCredentials());
    for (grpc::Service *service : services)
        builder.RegisterService(service);
    std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
    if (!server)
        return Error{"cannot serve the socket " + path + " (is the directory there and writable?)"};
    if (::rename(listening.c_str(), path.c_str()) != 0) {
        std::string reason = std::strerror(errno);
        server->Shutdown(std::chrono::system_clock::now());
        server->Wait();
        ::unlink(listening.c_str());
        return Error{"cannot move the socket into place at " + path + ": " + reason};
    }
    if (replaced)
        *replaced = replacing;
    return ServedSocket{std::move(server), SocketFile::identify(path)};
}

} // namespace kvgpu
