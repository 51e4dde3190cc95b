// One gRPC server serving the DevicePlugin service of one resource on its own
// unix socket in the kubelet's plugin directory, and the Register call that
// announces it to the kubelet.
//
// Threading contract: start/stop are called on the loop thread; the service
// they own is thread-safe (see device_plugin_service.h). registerWithKubelet
// never blocks: its callback runs on a gRPC thread.
#pragma once

#include "plugin/device_plugin_service.h"

#include <functional>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

namespace kvgpu {

class ResourceServer {
public:
    // Listens on `socketPath` and serves `service`. Returns nullptr (after
    // logging why) when the socket cannot be served.
    static std::unique_ptr<ResourceServer> start(const std::string &socketPath,
                                                 std::unique_ptr<DevicePluginService> service);
    ~ResourceServer();
    ResourceServer(const ResourceServer &) = delete;
    ResourceServer &operator=(const ResourceServer &) = delete;

    DevicePluginService &service() { return *service_; }
    const std::string &socketPath() const { return socketPath_; }

    // Ends every stream, shuts the server down and removes the socket file.
    void stop();

private:
    ResourceServer(std::string socketPath, std::unique_ptr<DevicePluginService> service,
                   std::unique_ptr<grpc::Server> server);

    std::string socketPath_;
    std::unique_ptr<DevicePluginService> service_;
    std::unique_ptr<grpc::Server> server_;
};

// Calls Registration/Register on the kubelet's socket. The kubelet dials back
// into our server inside this call, which is why it must not block the loop.
void registerWithKubelet(const std::string &kubeletSocket, const v1beta1::RegisterRequest &request,
                         std::function<void(grpc::Status)> done);

} // namespace kvgpu
