// Register calls to the kubelet, behind an interface so that the registration
// state machine (PluginManager) can be tested in-process with a fake kubelet.
//
// A kubelet instance is the kubelet.sock file it created at its start: a new
// inode means a new kubelet, and GrpcKubeletRegistrar dials a fresh channel
// (with its own subchannel) for it, so that no Register ever waits out gRPC's
// reconnect backoff on a channel that still points at a dead kubelet.
//
// Threading contract: send() and RegistrationCall::cancel() are called on the
// loop thread; `done` runs exactly once, on a gRPC thread (never inside
// send()). A RegistrationCall must be destroyed only after its `done` has run,
// and never from inside `done`: the call owns the gRPC context and a reference
// to the channel, and a channel destroyed inside its own completion corrupts
// gRPC's completion queue.
#pragma once

#include "api.grpc.pb.h"
#include "plugin/plugin_directory.h"

#include <functional>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

namespace kvgpu {

// One Register call in flight.
class RegistrationCall {
public:
    virtual ~RegistrationCall() = default;
    // Asks gRPC to end the call early; `done` still runs (with CANCELLED).
    virtual void cancel() = 0;
};

class KubeletRegistrar {
public:
    using Done = std::function<void(grpc::Status)>;
    virtual ~KubeletRegistrar() = default;
    virtual std::unique_ptr<RegistrationCall> send(const KubeletInstance &kubelet,
                                                   const v1beta1::RegisterRequest &request, Done done) = 0;
};

// The real kubelet, on <pluginDir>/kubelet.sock.
class GrpcKubeletRegistrar final : public KubeletRegistrar {
public:
    explicit GrpcKubeletRegistrar(std::string kubeletSocketPath);
    std::unique_ptr<RegistrationCall> send(const KubeletInstance &kubelet, const v1beta1::RegisterRequest &request,
                                           Done done) override;

private:
    const std::string socketPath_;
    KubeletInstance dialled_;
    std::shared_ptr<grpc::Channel> channel_; // to dialled_; calls in flight hold their own reference
};

} // namespace kvgpu
