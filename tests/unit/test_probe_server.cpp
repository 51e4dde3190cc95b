// The health service behind the pod's probes, as the kubelet sees it: a
// grpc.health.v1 client asks for "", "liveness" and "readiness" while the
// daemon's condition changes underneath.
#include "app/probe_server.h"

#include "health.grpc.pb.h"

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

using namespace kvgpu;
using grpc::health::v1::Health;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

namespace {

// What a daemon reports, switchable from the test.
struct FakeDaemon {
    std::atomic<bool> loopTurning{true};
    std::atomic<bool> allRegistered{false};

    ProbeServer::Checks checks()
    {
        return {[this] { return loopTurning.load(); }, [this] { return allRegistered.load(); }};
    }
};

// A kubelet-style prober: answers "SERVING" / "NOT_SERVING", or the gRPC
// status code's name when the call fails.
class Prober {
public:
    explicit Prober(int port)
        : stub_(Health::NewStub(
              grpc::CreateChannel(fmt::format("127.0.0.1:{}", port), grpc::InsecureChannelCredentials())))
    {
    }

    std::string check(const std::string &service)
    {
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
        HealthCheckRequest request;
        request.set_service(service);
        HealthCheckResponse response;
        grpc::Status status = stub_->Check(&context, request, &response);
        if (!status.ok())
            return codeName(status.error_code());
        return HealthCheckResponse::ServingStatus_Name(response.status());
    }

    std::string watch(const std::string &service)
    {
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
        HealthCheckRequest request;
        request.set_service(service);
        auto reader = stub_->Watch(&context, request);
        HealthCheckResponse response;
        while (reader->Read(&response)) {
        }
        return codeName(reader->Finish().error_code());
    }

private:
    static std::string codeName(grpc::StatusCode code)
    {
        switch (code) {
        case grpc::StatusCode::OK: return "OK";
        case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
        case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
        case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
        case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
        default: return fmt::format("status {}", static_cast<int>(code));
        }
    }

    std::unique_ptr<Health::Stub> stub_;
};

std::unique_ptr<ProbeServer> startOnAnyPort(ProbeServer::Checks checks)
{
    auto server = ProbeServer::start("127.0.0.1:0", std::move(checks));
    REQUIRE_MESSAGE(server, server.error());
    REQUIRE((*server)->port() > 0);
    return std::move(server).value();
}

} // namespace

TEST_CASE("liveness and readiness follow the daemon's condition as it changes")
{
    FakeDaemon daemon;
    auto server = startOnAnyPort(daemon.checks());
    Prober kubelet(server->port());

    // Starting up: the loop turns, resources are not registered yet.
    CHECK(kubelet.check("") == "SERVING");
    CHECK(kubelet.check("liveness") == "SERVING");
    CHECK(kubelet.check("readiness") == "NOT_SERVING");

    // Every resource registered with the kubelet.
    daemon.allRegistered = true;
    CHECK(kubelet.check("readiness") == "SERVING");
    CHECK(kubelet.check("liveness") == "SERVING");

    // The loop is stuck.
    daemon.loopTurning = false;
    CHECK(kubelet.check("") == "NOT_SERVING");
    CHECK(kubelet.check("liveness") == "NOT_SERVING");
    CHECK(kubelet.check("readiness") == "SERVING");

    // The kubelet restarted: registration is pending again, the loop recovered.
    daemon.allRegistered = false;
    daemon.loopTurning = true;
    CHECK(kubelet.check("readiness") == "NOT_SERVING");
    CHECK(kubelet.check("liveness") == "SERVING");
}

TEST_CASE("a service the server does not know is NOT_FOUND, and Watch is UNIMPLEMENTED")
{
    FakeDaemon daemon;
    auto server = startOnAnyPort(daemon.checks());
    Prober kubelet(server->port());

    CHECK(kubelet.check("bogus") == "NOT_FOUND");
    CHECK(kubelet.check("Liveness") == "NOT_FOUND");
    CHECK(kubelet.watch("liveness") == "UNIMPLEMENTED");
}

TEST_CASE("a check that throws fails the probe; a missing check passes it")
{
    auto server = startOnAnyPort({[]() -> bool { throw std::runtime_error("loop gone"); }, nullptr});
    Prober kubelet(server->port());

    CHECK(kubelet.check("liveness") == "NOT_SERVING");
    CHECK(kubelet.check("readiness") == "SERVING");
}

TEST_CASE("a port another server holds is an error, not a shared port")
{
    FakeDaemon daemon;
    auto first = startOnAnyPort(daemon.checks());

    auto second = ProbeServer::start(fmt::format("127.0.0.1:{}", first->port()), daemon.checks());
    CHECK_FALSE(second);
    CHECK(second.error().find(std::to_string(first->port())) != std::string::npos);

    auto invalid = ProbeServer::start("not an address", daemon.checks());
    CHECK_FALSE(invalid);
    CHECK(invalid.error().find("not an address") != std::string::npos);
}

TEST_CASE("stopping while a slow check runs answers that call and returns")
{
    std::atomic<bool> checkStarted{false};
    auto server = startOnAnyPort({[&] {
                                      checkStarted = true;
                                      std::this_thread::sleep_for(std::chrono::milliseconds(300));
                                      return true;
                                  },
                                  nullptr});
    Prober kubelet(server->port());

    std::string answer;
    std::thread probe([&] { answer = kubelet.check("liveness"); });
    while (!checkStarted)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));

    auto before = std::chrono::steady_clock::now();
    server.reset();
    auto stopTook = std::chrono::steady_clock::now() - before;
    probe.join();

    CHECK(answer == "SERVING");
    CHECK(stopTook < std::chrono::seconds(3));
}

TEST_CASE("checks run one at a time, and a slow one holds up no gRPC thread")
{
    // The checks run on the probe thread, never on a gRPC thread: while
    // several slow liveness checks are queued, a NOT_FOUND (answered on a gRPC
    // thread) still comes back at once, and no two checks ever overlap.
    std::atomic<int> running{0};
    std::atomic<int> mostAtOnce{0};
    std::atomic<int> started{0};
    auto server = startOnAnyPort({[&] {
                                      int now = ++running;
                                      mostAtOnce = std::max(mostAtOnce.load(), now);
                                      ++started;
                                      std::this_thread::sleep_for(std::chrono::milliseconds(300));
                                      --running;
                                      return true;
                                  },
                                  nullptr});

    constexpr int kProbes = 4;
    std::vector<std::string> answers(kProbes);
    std::vector<std::thread> probes;
    for (int i = 0; i < kProbes; ++i)
        probes.emplace_back([&, i] { answers[i] = Prober(server->port()).check("liveness"); });
    while (started == 0)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));

    auto before = std::chrono::steady_clock::now();
    CHECK(Prober(server->port()).check("bogus") == "NOT_FOUND");
    CHECK(std::chrono::steady_clock::now() - before < std::chrono::milliseconds(800));

    for (auto &t : probes)
        t.join();
    for (const std::string &answer : answers)
        CHECK(answer == "SERVING");
    CHECK(mostAtOnce == 1);
}
