// One gRPC server serving the DevicePlugin service of one resource on its own
// unix socket in the kubelet's plugin directory: the real ResourceEndpoint.
//
// Stopping a gRPC server blocks (Shutdown waits for running calls, up to a
// deadline, then Wait joins them), so stop() does it on a thread of its own
// and reports back; the loop never waits for it. The socket file is removed
// only after the server stopped listening, and the manager serves the same
// path again only after that report, so an old server can never take the new
// one's socket away.
//
// Threading contract: start, publish and stop are called on the loop thread;
// the service is thread-safe (see device_plugin_service.h). The destructor
// joins the stopper thread, or stops synchronously if stop() was never called
// (only at exit).
#pragma once

#include "sysfs/node_reader.h"
#include "sysfs/sysfs.h"
#include "plugin/device_plugin_service.h"
#include "plugin/resource_endpoint.h"
#include "rpc/unix_socket_server.h"

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

namespace kvgpu {

class ResourceServer final : public ResourceEndpoint {
public:
    // Listens on `socketPath` and serves `service`; the error names the socket
    // and what to check when it cannot be served.
    static Result<std::unique_ptr<ResourceServer>> start(const std::string &socketPath,
                                                         std::unique_ptr<DevicePluginService> service);
    ~ResourceServer() override;
    ResourceServer(const ResourceServer &) = delete;
    ResourceServer &operator=(const ResourceServer &) = delete;

    void publish(const ResourceDelta &delta) override { service_->publish(delta); }
    int openStreams() const override { return service_->openStreams(); }
    void stop(std::function<void()> stopped) override;

    DevicePluginService &service() { return *service_; }
    const std::string &socketPath() const { return socketPath_; }

private:
    ResourceServer(std::string socketPath, std::unique_ptr<DevicePluginService> service, ServedSocket served);
    void stopNow();

    const std::string socketPath_;
    std::unique_ptr<DevicePluginService> service_;
    std::unique_ptr<grpc::Server> server_; // touched by the stopper thread only, once it runs
    std::optional<SocketFile> socketFile_; // the file we made; removed at stop only if it still is
    std::thread stopper_;
};

// Serves DevicePluginServices that read the given trees for Allocate.
class GrpcEndpointFactory final : public EndpointFactory {
public:
    // Allocate calls are counted in `metrics`, which must outlive the factory's servers.
    GrpcEndpointFactory(SysfsTree sysfs, DevTree dev, Metrics &metrics = Metrics::none());
    Result<std::unique_ptr<ResourceEndpoint>> serve(const std::string &socketPath,
                                                    std::shared_ptr<const Resource> resource,
                                                    StreamEnded streamEnded) override;

private:
    const SysfsTree sysfs_;
    const DevTree dev_;
    Metrics &metrics_;
};

} // namespace kvgpu
