#include "app/probe_server.h"

#include "health.grpc.pb.h"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <grpcpp/grpcpp.h>

namespace kvgpu {

namespace {
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

enum class Probe { Live, Ready };

// Calls queue up only while a check is slow; a kubelet probes each pod a few
// times a minute, so a long queue means someone else is flooding the port.
constexpr std::size_t kMaxPendingChecks = 16;
} // namespace

// The Health service. Check never blocks a gRPC thread: it queues the call,
// and the probe thread runs the check and finishes the call.
class HealthService final : public grpc::health::v1::Health::CallbackService {
public:
    explicit HealthService(ProbeServer::Checks checks) : checks_(std::move(checks))
    {
        worker_ = std::thread([this] { runChecks(); });
    }

    ~HealthService() override { stop(); }

    // Runs the checks still queued, then joins the probe thread. Called after
    // the server stopped accepting calls, so the queue only shrinks.
    void stop()
    {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        wake_.notify_one();
        if (worker_.joinable())
            worker_.join();
    }

    grpc::ServerUnaryReactor *Check(grpc::CallbackServerContext *context, const HealthCheckRequest *request,
                                    HealthCheckResponse *response) override
    {
        grpc::ServerUnaryReactor *reactor = context->DefaultReactor();
        Probe probe;
        if (request->service().empty() || request->service() == "liveness") {
            probe = Probe::Live;
        } else if (request->service() == "readiness") {
            probe = Probe::Ready;
        } else {
            reactor->Finish(grpc::Status(
                grpc::StatusCode::NOT_FOUND,
                fmt::format("unknown health service \"{}\"; this server knows \"liveness\" and \"readiness\"",
                            request->service())));
            return reactor;
        }
        {
            std::lock_guard lock(mutex_);
            if (!stopping_ && pending_.size() < kMaxPendingChecks) {
                pending_.push_back({reactor, response, probe});
                wake_.notify_one();
                return reactor;
            }
        }
        reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "too many health checks pending"));
        return reactor;
    }

    // Watch is left to the generated default, which answers UNIMPLEMENTED.

private:
    struct PendingCheck {
        grpc::ServerUnaryReactor *reactor;
        HealthCheckResponse *response;
        Probe probe;
    };

    void runChecks()
    {
        for (;;) {
            PendingCheck next;
            {
                std::unique_lock lock(mutex_);
                wake_.wait(lock, [this] { return stopping_ || !pending_.empty(); });
                if (pending_.empty())
                    return;
                next = pending_.front();
                pending_.pop_front();
            }
            const bool passing = evaluate(next.probe == Probe::Live ? checks_.live : checks_.ready);
            next.response->set_status(passing ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING);
            next.reactor->Finish(grpc::Status::OK);
        }
    }

    static bool evaluate(const std::function<bool()> &check)
    {
        if (!check)
            return true;
        try {
            return check();
        } catch (...) {
            return false;
        }
    }

    const ProbeServer::Checks checks_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<PendingCheck> pending_; // guarded by mutex_
    bool stopping_ = false;            // guarded by mutex_
    std::thread worker_;
};

Result<std::unique_ptr<ProbeServer>> ProbeServer::start(const std::string &address, Checks checks)
{
    auto service = std::make_unique<HealthService>(std::move(checks));
    int port = 0;
    grpc::ServerBuilder builder;
    // gRPC sets SO_REUSEPORT by default, which would let a second process
    // share the port silently and answer half of the probes.
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service.get());
    std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
    if (!server || port == 0) {
        if (server)
            server->Shutdown();
        return Error{fmt::format("cannot serve the health service on {} (is the address valid and the port free?)",
                                 address)};
    }
    return std::unique_ptr<ProbeServer>(new ProbeServer(std::move(service), std::move(server), port));
}

ProbeServer::ProbeServer(std::unique_ptr<HealthService> service, std::unique_ptr<grpc::Server> server, int port)
    : service_(std::move(service)), server_(std::move(server)), port_(port)
{
}

ProbeServer::~ProbeServer()
{
    // Shutdown returns once every call received has been finished; the probe
    // thread is still running and finishes the queued ones. The deadline
    // cancels the clients' side of calls that take longer.
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    server_->Wait();
    service_->stop();
    server_.reset();
}

} // namespace kvgpu
