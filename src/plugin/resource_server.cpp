#include "plugin/resource_server.h"

#include "base/log.h"

#include <chrono>
#include <unistd.h>

namespace kvgpu {

std::unique_ptr<ResourceServer> ResourceServer::start(const std::string &socketPath,
                                                      std::unique_ptr<DevicePluginService> service)
{
    grpc::ServerBuilder builder;
    builder.AddListeningPort("unix://" + socketPath, grpc::InsecureServerCredentials());
    builder.RegisterService(service.get());
    std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
    if (!server) {
        log::error("cannot serve the device plugin socket (is the path writable and not a regular file?)",
                   {{"socket", socketPath}});
        return nullptr;
    }
    return std::unique_ptr<ResourceServer>(
        new ResourceServer(socketPath, std::move(service), std::move(server)));
}

ResourceServer::ResourceServer(std::string socketPath, std::unique_ptr<DevicePluginService> service,
                               std::unique_ptr<grpc::Server> server)
    : socketPath_(std::move(socketPath)), service_(std::move(service)), server_(std::move(server))
{
}

ResourceServer::~ResourceServer() { stop(); }

void ResourceServer::stop()
{
    if (!server_)
        return;
    service_->closeStreams();
    // Streams are finished already; the deadline only bounds an Allocate that
    // is still running.
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
    server_->Wait();
    server_.reset();
    ::unlink(socketPath_.c_str());
}

namespace {
struct RegisterCall {
    grpc::ClientContext context;
    v1beta1::RegisterRequest request;
    v1beta1::Empty response;
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<v1beta1::Registration::Stub> stub;
    std::function<void(grpc::Status)> done;
};
} // namespace

void registerWithKubelet(const std::string &kubeletSocket, const v1beta1::RegisterRequest &request,
                         std::function<void(grpc::Status)> done)
{
    auto *call = new RegisterCall;
    call->request = request;
    call->done = std::move(done);
    call->channel = grpc::CreateChannel("unix://" + kubeletSocket, grpc::InsecureChannelCredentials());
    call->stub = v1beta1::Registration::NewStub(call->channel);
    // The kubelet dials back with a 10 s timeout inside Register; allow for it.
    call->context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(15));
    call->stub->async()->Register(&call->context, &call->request, &call->response,
                                  [call](grpc::Status status) {
                                      call->done(std::move(status));
                                      delete call;
                                  });
}

} // namespace kvgpu
