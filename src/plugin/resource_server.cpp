#include "plugin/resource_server.h"

#include <chrono>
#include <unistd.h>

namespace kvgpu {

Result<std::unique_ptr<ResourceServer>> ResourceServer::start(const std::string &socketPath,
                                                              std::unique_ptr<DevicePluginService> service)
{
    Result<ServedSocket> served = serveUnixSocket(socketPath, {service.get()});
    if (!served)
        return Error{"cannot serve the device plugin socket: " + served.error()};
    return std::unique_ptr<ResourceServer>(
        new ResourceServer(socketPath, std::move(service), std::move(served).value()));
}

ResourceServer::ResourceServer(std::string socketPath, std::unique_ptr<DevicePluginService> service,
                               ServedSocket served)
    : socketPath_(std::move(socketPath)), service_(std::move(service)), server_(std::move(served.server)),
      socketFile_(std::move(served.file))
{
}

ResourceServer::~ResourceServer()
{
    if (stopper_.joinable())
        stopper_.join();
    else
        stopNow();
}

void ResourceServer::stop(std::function<void()> stopped)
{
    if (stopper_.joinable())
        return;
    stopper_ = std::thread([this, stopped = std::move(stopped)] {
        stopNow();
        stopped();
    });
}

void ResourceServer::stopNow()
{
    if (!server_)
        return;
    service_->closeStreams();
    // Streams are finished already, and every other call is answered at once,
    // so the grace period only covers the kubelet reading what is in flight
    // (a stream's last write, a status). A kubelet that does not read by then
    // has its calls cancelled: a SIGTERM must not wait for it.
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
    server_->Wait();
    server_.reset();
    if (socketFile_)
        socketFile_->remove();
}

GrpcEndpointFactory::GrpcEndpointFactory(SysfsTree sysfs, DevTree dev, Metrics &metrics)
    : sysfs_(std::move(sysfs)), dev_(std::move(dev)), metrics_(metrics)
{
}

Result<std::unique_ptr<ResourceEndpoint>> GrpcEndpointFactory::serve(const std::string &socketPath,
                                                                     std::shared_ptr<const Resource> resource,
                                                                     StreamEnded streamEnded)
{
    auto service = std::make_unique<DevicePluginService>(std::move(resource), sysfs_, dev_, std::move(streamEnded),
                                                         metrics_);
    auto server = ResourceServer::start(socketPath, std::move(service));
    if (!server)
        return server.failure();
    return std::unique_ptr<ResourceEndpoint>(std::move(server).value());
}

} // namespace kvgpu
