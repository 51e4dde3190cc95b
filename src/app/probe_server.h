// Serves the standard gRPC health service (grpc.health.v1) on a TCP port, for
// Kubernetes' native gRPC probes (`livenessProbe: grpc: {port, service}`).
//
// Check answers SERVING or NOT_SERVING from two caller-supplied checks: the
// services "" and "liveness" ask `live`, "readiness" asks `ready`; any other
// service is NOT_FOUND, as the health protocol prescribes. Watch is
// UNIMPLEMENTED: probes never use it.
//
// Threading contract: start() and the destructor run on the owner's thread.
// The checks run on the server's own probe thread, one at a time in arrival
// order, never on a gRPC thread, so a check may block briefly (waiting for the
// event loop, say) without stalling other gRPC servers in the process. A check
// must be thread-safe with respect to its owner and must return promptly: the
// destructor waits for a running check to finish. An empty check counts as
// passing; a check that throws counts as failing.
#pragma once

#include "base/result.h"

#include <functional>
#include <memory>
#include <string>

namespace grpc {
class Server;
}

namespace kvgpu {

class HealthService;

class ProbeServer {
public:
    struct Checks {
        std::function<bool()> live;
        std::function<bool()> ready;
    };

    // Listens on `address` ("0.0.0.0:8081", or "127.0.0.1:0" for any free
    // port; the 0.0.0.0 wildcard also accepts IPv6 where the node has it).
    // The error names the address when it cannot be served, for instance
    // because the port is taken: unlike gRPC's default, the port is not shared
    // with another process (no SO_REUSEPORT).
    static Result<std::unique_ptr<ProbeServer>> start(const std::string &address, Checks checks);

    // Stops listening, answers the calls already received and joins the probe
    // thread.
    ~ProbeServer();
    ProbeServer(const ProbeServer &) = delete;
    ProbeServer &operator=(const ProbeServer &) = delete;

    // The port actually bound (useful with port 0).
    int port() const { return port_; }

private:
    ProbeServer(std::unique_ptr<HealthService> service, std::unique_ptr<grpc::Server> server, int port);

    std::unique_ptr<HealthService> service_;
    std::unique_ptr<grpc::Server> server_;
    int port_;
};

} // namespace kvgpu
