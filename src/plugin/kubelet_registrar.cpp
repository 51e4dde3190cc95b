#include "plugin/kubelet_registrar.h"

#include <chrono>

namespace kvgpu {

namespace {

class GrpcRegistrationCall final : public RegistrationCall {
public:
    GrpcRegistrationCall(std::shared_ptr<grpc::Channel> channel, const v1beta1::RegisterRequest &request)
        : channel_(std::move(channel)), stub_(v1beta1::Registration::NewStub(channel_)), request_(request)
    {
    }

    void start(KubeletRegistrar::Done done)
    {
        // The kubelet dials back with a 10 s timeout inside Register; allow for
        // it. Waiting for the channel to be ready covers a kubelet whose socket
        // file exists a moment before it listens, instead of failing at once
        // and retrying after a backoff.
        context_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(15));
        context_.set_wait_for_ready(true);
        stub_->async()->Register(&context_, &request_, &response_, std::move(done));
    }

    void cancel() override { context_.TryCancel(); }

private:
    std::shared_ptr<grpc::Channel> channel_;
    std::unique_ptr<v1beta1::Registration::Stub> stub_;
    grpc::ClientContext context_;
    v1beta1::RegisterRequest request_;
    v1beta1::Empty response_;
};

} // namespace

GrpcKubeletRegistrar::GrpcKubeletRegistrar(std::string kubeletSocketPath) : socketPath_(std::move(kubeletSocketPath)) {}

std::unique_ptr<RegistrationCall> GrpcKubeletRegistrar::send(const KubeletInstance &kubelet,
                                                             const v1beta1::RegisterRequest &request, Done done)
{
    if (!channel_ || !(kubelet == dialled_)) {
        grpc::ChannelArguments args;
        // gRPC shares subchannels between channels to the same address; a shared
        // one may still be in reconnect backoff from the previous kubelet.
        args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
        // A kubelet restarting takes tens of milliseconds between creating its
        // socket and answering; retry the connection at that pace.
        args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 20);
        args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 20);
        args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
        channel_ = grpc::CreateCustomChannel("unix://" + socketPath_, grpc::InsecureChannelCredentials(), args);
        dialled_ = kubelet;
    }
    auto call = std::make_unique<GrpcRegistrationCall>(channel_, request);
    call->start(std::move(done));
    return call;
}

} // namespace kvgpu
