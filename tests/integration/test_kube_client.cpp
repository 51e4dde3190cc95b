// The API-server client against a real HTTPS server on loopback
// (tests/support/fake_apiserver.py) with certificates made for the run: TLS
// verification, the bearer token and its rotation, Status errors, watch
// streams that arrive in pieces, and how fast stop and cancelAll end a call
// that the server never answers. Exits 77 (skipped) without openssl or
// /usr/bin/python3.

#include "kube/client.h"

#include "daemon_process.h"
#include "free_port.h"
#include "temp_tree.h"
#include "timeouts.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <unistd.h>
#include <vector>

#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

using namespace kvgpu;
using namespace kvgpu::kube;
using namespace kvgpu::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char *kPython = "/usr/bin/python3";
constexpr const char *kOpenssl = "/usr/bin/openssl";
const std::string kNodePath = "/api/v1/nodes/node-a";
const std::string kSlicesWatch = "/apis/resource.k8s.io/v1/resourceslices?watch=1";

std::string readFile(const std::string &path)
{
    std::ifstream in(path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

// The fake API server with its own certificates, a client certificate it
// trusts, and the token file that it and the client both read.
class FakeApiServer {
public:
    FakeApiServer()
    {
        makeCertificate("server", "127.0.0.1", "IP:127.0.0.1");
        makeCertificate("stranger", "127.0.0.1", "IP:127.0.0.1");
        makeCertificate("client", "kvgpu-test-client", "DNS:kvgpu-test-client");
        tree_.write("token", "first-token\n");
        const char *script = std::getenv("KVGPU_FAKE_APISERVER");
        REQUIRE_MESSAGE(script, "KVGPU_FAKE_APISERVER is not set (meson sets it)");
        process_ = std::make_unique<DaemonProcess>(
            kPython,
            std::vector<std::string>{script, "--cert", tree_.path("server.crt"), "--key", tree_.path("server.key"),
                                     "--token-file", tree_.path("token"), "--client-ca", tree_.path("client.crt")},
            tree_.path("server.log"));
        REQUIRE_MESSAGE(process_->waitForLog("PORT ", scaled(10s)), process_->report());
        const std::string log = process_->log();
        port_ = std::atoi(log.c_str() + log.find("PORT ") + 5);
        REQUIRE(port_ > 0);
    }

    // What a kubeconfig for this server says: its URL, its CA and the token file.
    ClusterAccess access() const
    {
        ClusterAccess access;
        access.server = url();
        access.caFile = tree_.path("server.crt");
        access.tokenFile = tree_.path("token");
        return access;
    }
    std::string url() const { return fmt::format("https://127.0.0.1:{}", port_); }
    std::string file(const std::string &name) const { return tree_.path(name); }

    // As the kubelet rotates a projected token: the new file replaces the old one.
    void rotateToken(const std::string &token)
    {
        tree_.write("token.new", token + "\n");
        std::filesystem::rename(tree_.path("token.new"), tree_.path("token"));
    }

    // Waits until the server holds a request to `path` that it will never answer.
    bool hangingOn(const std::string &path) const
    {
        return process_->waitForLog("hanging on " + path, scaled(5s));
    }
    std::string report() { return process_->report(); }

private:
    void makeCertificate(const std::string &name, const std::string &commonName, const std::string &altName)
    {
        const std::string command = fmt::format(
            "{} req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -keyout {} -out {} "
            "-subj /CN={} -addext subjectAltName={} 2>>{}",
            kOpenssl, tree_.path(name + ".key"), tree_.path(name + ".crt"), commonName, altName,
            tree_.path("openssl.log"));
        REQUIRE_MESSAGE(std::system(command.c_str()) == 0, readFile(tree_.path("openssl.log")));
    }

    TempTree tree_;
    std::unique_ptr<DaemonProcess> process_;
    int port_ = 0;
};

std::unique_ptr<Client> makeClient(const ClusterAccess &access, ClientOptions options = {})
{
    Result<std::unique_ptr<Client>> client = Client::create(access, std::move(options));
    REQUIRE_MESSAGE(client.ok(), client.error());
    return std::move(client).value();
}

nlohmann::json jsonOf(const Response &response)
{
    return nlohmann::json::parse(response.body, nullptr, false);
}

// A watch on its own thread, recording each line and when it came.
struct WatchRun {
    std::atomic<bool> stop{false};
    std::mutex mutex;
    std::vector<std::string> lines;
    std::vector<Clock::time_point> times;
    std::future<Result<void>> done;
    Clock::time_point endedAt; // valid once `done` is ready

    void start(Client &client, const std::string &path)
    {
        done = std::async(std::launch::async, [this, &client, path] {
            Result<void> result = client.watch(
                path,
                [this](std::string_view line) {
                    std::lock_guard lock(mutex);
                    lines.emplace_back(line);
                    times.push_back(Clock::now());
                },
                stop);
            endedAt = Clock::now();
            return result;
        });
    }
    std::size_t count()
    {
        std::lock_guard lock(mutex);
        return lines.size();
    }
};

} // namespace

TEST_CASE("a GET verified against the cluster's CA carries the bearer token and returns the server's JSON")
{
    FakeApiServer server;
    std::unique_ptr<Client> client = makeClient(server.access());
    CHECK(client->server() == server.url());
    Result<Response> node = client->request("GET", kNodePath);
    REQUIRE_MESSAGE(node.ok(), node.error());
    CHECK(node->status == 200);
    CHECK(node->succeeded());
    nlohmann::json body = jsonOf(*node);
    CHECK(body["metadata"]["uid"] == "0e5c-node-a");
    CHECK(body["seenToken"] == "first-token");

    // The same CA handed over inline, as certificate-authority-data does.
    ClusterAccess inlineCa = server.access();
    inlineCa.caPem = readFile(inlineCa.caFile);
    inlineCa.caFile.clear();
    inlineCa.tokenFile.clear();
    inlineCa.token = "first-token";
    Result<Response> again = makeClient(inlineCa)->request("GET", kNodePath);
    REQUIRE_MESSAGE(again.ok(), again.error());
    CHECK(again->status == 200);
}

TEST_CASE("a server whose certificate the CA did not sign is refused, unless verification is off")
{
    FakeApiServer server;
    ClusterAccess access = server.access();
    access.caFile = server.file("stranger.crt");
    Result<Response> refused = makeClient(access)->request("GET", kNodePath);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().rfind("GET " + server.url() + kNodePath + ": ", 0) == 0);
    CHECK_MESSAGE(refused.error().find("certificate") != std::string::npos, refused.error());

    access.insecure = true;
    Result<Response> accepted = makeClient(access)->request("GET", kNodePath);
    REQUIRE_MESSAGE(accepted.ok(), accepted.error());
    CHECK(accepted->status == 200);
}

TEST_CASE("a rotated token file is read again before the next request")
{
    FakeApiServer server;
    std::unique_ptr<Client> client = makeClient(server.access());
    REQUIRE(jsonOf(*client->request("GET", kNodePath))["seenToken"] == "first-token");

    server.rotateToken("second-token");
    Result<Response> node = client->request("GET", kNodePath);
    REQUIRE_MESSAGE(node.ok(), node.error());
    CHECK(node->status == 200);
    CHECK(jsonOf(*node)["seenToken"] == "second-token");
}

TEST_CASE("an HTTP error is a response whose status message is what the server said")
{
    FakeApiServer server;
    std::unique_ptr<Client> client = makeClient(server.access());

    Result<Response> missing = client->request("GET", "/apis/resource.k8s.io/v1/namespaces/vms/resourceclaims/missing");
    REQUIRE_MESSAGE(missing.ok(), missing.error());
    CHECK(missing->status == 404);
    CHECK_FALSE(missing->succeeded());
    CHECK(statusMessage(*missing) == "resourceclaims.resource.k8s.io \"missing\" not found");

    Result<Response> conflict = client->request("POST", "/apis/resource.k8s.io/v1/resourceslices", R"({"kind":"ResourceSlice"})");
    REQUIRE_MESSAGE(conflict.ok(), conflict.error());
    CHECK(conflict->status == 409);
    CHECK(statusMessage(*conflict) == "resourceslices.resource.k8s.io \"slice-a\" already exists");

    Result<Response> plain = client->request("GET", "/plain-error");
    REQUIRE_MESSAGE(plain.ok(), plain.error());
    CHECK(plain->status == 500);
    CHECK(statusMessage(*plain) == "internal trouble");

    Result<Response> empty = client->request("GET", "/empty-error");
    REQUIRE_MESSAGE(empty.ok(), empty.error());
    CHECK(empty->status == 503);
    CHECK(statusMessage(*empty) == "HTTP 503");

    // Without the token the server answers 401, not a transport error.
    ClusterAccess anonymous = server.access();
    anonymous.tokenFile.clear();
    Result<Response> unauthorized = makeClient(anonymous)->request("GET", kNodePath);
    REQUIRE_MESSAGE(unauthorized.ok(), unauthorized.error());
    CHECK(unauthorized->status == 401);
    CHECK(statusMessage(*unauthorized) == "Unauthorized");
}

TEST_CASE("each method sends its body with the content type the caller names")
{
    FakeApiServer server;
    std::unique_ptr<Client> client = makeClient(server.access());
    struct Case {
        const char *method;
        std::string body;
        const char *contentType;
    };
    for (const Case &c : {Case{"POST", R"({"a":1})", "application/json"},
                          Case{"PUT", R"({"b":2})", "application/json"},
                          Case{"PATCH", R"({"spec":{"devices":[]}})", "application/merge-patch+json"},
                          Case{"DELETE", R"({"preconditions":{"uid":"u1"}})", "application/json"},
                          Case{"GET", "", "application/json"}}) {
        CAPTURE(c.method);
        Result<Response> echo = client->request(c.method, "/echo", c.body, c.contentType);
        REQUIRE_MESSAGE(echo.ok(), echo.error());
        nlohmann::json seen = jsonOf(*echo);
        CHECK(seen["method"] == c.method);
        CHECK(seen["body"] == c.body);
        CHECK(seen["contentType"] == (c.body.empty() ? "" : c.contentType));
    }
}

TEST_CASE("a client certificate from files or from inline PEM identifies the client")
{
    FakeApiServer server;
    ClusterAccess files = server.access();
    files.clientCertFile = server.file("client.crt");
    files.clientKeyFile = server.file("client.key");
    CHECK(jsonOf(*makeClient(files)->request("GET", "/whoami"))["commonName"] == "kvgpu-test-client");

    ClusterAccess blobs = server.access();
    blobs.clientCertPem = readFile(server.file("client.crt"));
    blobs.clientKeyPem = readFile(server.file("client.key"));
    CHECK(jsonOf(*makeClient(blobs)->request("GET", "/whoami"))["commonName"] == "kvgpu-test-client");

    CHECK(jsonOf(*makeClient(server.access())->request("GET", "/whoami"))["commonName"] == "");
}

TEST_CASE("a watch delivers every line whole and in order, as it arrives")
{
    FakeApiServer server;
    std::unique_ptr<Client> client = makeClient(server.access());
    WatchRun run;
    run.start(*client, kSlicesWatch);
    REQUIRE(run.done.wait_for(scaled(10s)) == std::future_status::ready);
    Result<void> ended = run.done.get();
    REQUIRE_MESSAGE(ended.ok(), ended.error());

    std::vector<std::string> seen;
    for (const std::string &line : run.lines) {
        nlohmann::json event = nlohmann::json::parse(line, nullptr, false);
        REQUIRE_MESSAGE(!event.is_discarded(), line);
        seen.push_back(event["type"].get<std::string>() + " " + event["object"]["metadata"]["name"].get<std::string>());
    }
    CHECK(seen == std::vector<std::string>{"ADDED slice-a", "MODIFIED slice-a", "ADDED slice-b", "DELETED slice-a",
                                           "BOOKMARK slice-b"});
    // The server spends 300 ms between its first event and the end of the stream.
    REQUIRE(!run.times.empty());
    CHECK(run.endedAt - run.times.front() >= 150ms);
}

TEST_CASE("setting stop ends a watch that the server keeps open within 200 ms")
{
    FakeApiServer server;
    std::unique_ptr<Client> client = makeClient(server.access());
    WatchRun run;
    run.start(*client, kSlicesWatch + "&hang=1");
    REQUIRE(eventually([&] { return run.count() == 1; }));
    REQUIRE(server.hangingOn(kSlicesWatch + "&hang=1"));

    const Clock::time_point stoppedAt = Clock::now();
    run.stop = true;
    REQUIRE(run.done.wait_for(scaled(2s)) == std::future_status::ready);
    CHECK(run.endedAt - stoppedAt <= scaled(200ms));
    Result<void> ended = run.done.get();
    CHECK_MESSAGE(ended.ok(), ended.error());

    // The client is still usable after a stopped watch.
    CHECK(client->request("GET", kNodePath)->status == 200);
}

TEST_CASE("an exception thrown by the event handler ends the watch and reaches the caller")
{
    FakeApiServer server;
    std::unique_ptr<Client> client = makeClient(server.access());
    std::atomic<bool> stop{false};
    int events = 0;
    auto throwOnSecond = [&](std::string_view) {
        if (++events == 2)
            throw std::runtime_error("handler gave up");
    };
    CHECK_THROWS_WITH_AS((void)client->watch(kSlicesWatch, throwOnSecond, stop), "handler gave up", std::runtime_error);
    CHECK(events == 2);
    CHECK(client->request("GET", kNodePath)->status == 200);
}

TEST_CASE("an answer larger than the configured limit is an error, not unbounded memory")
{
    FakeApiServer server;
    ClientOptions options;
    options.maxResponseBytes = 16;
    Result<Response> node = makeClient(server.access(), options)->request("GET", kNodePath);
    REQUIRE_FALSE(node.ok());
    CHECK(node.error() == "GET " + server.url() + kNodePath + ": the answer exceeds 16 bytes");
}

TEST_CASE("a watch the server refuses is an error with its status and message")
{
    FakeApiServer server;
    std::unique_ptr<Client> client = makeClient(server.access());
    std::atomic<bool> stop{false};
    int events = 0;
    const std::string path = kSlicesWatch + "&resourceVersion=1";
    Result<void> refused = client->watch(path, [&](std::string_view) { ++events; }, stop);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error() == "GET " + server.url() + path + ": HTTP 410: too old resource version: 1 (2)");
    CHECK(events == 0);
}

TEST_CASE("cancelAll aborts a hung request and a hung watch within 200 ms, and refuses later calls")
{
    FakeApiServer server;
    std::unique_ptr<Client> client = makeClient(server.access());
    Clock::time_point requestEndedAt;
    auto hungRequest = std::async(std::launch::async, [&] {
        Result<Response> response = client->request("GET", "/hang");
        requestEndedAt = Clock::now();
        return response;
    });
    WatchRun hungWatch;
    hungWatch.start(*client, kSlicesWatch + "&hang=1");
    REQUIRE(server.hangingOn("/hang"));
    REQUIRE(server.hangingOn(kSlicesWatch + "&hang=1"));

    const Clock::time_point cancelledAt = Clock::now();
    client->cancelAll();
    REQUIRE(hungRequest.wait_for(scaled(2s)) == std::future_status::ready);
    REQUIRE(hungWatch.done.wait_for(scaled(2s)) == std::future_status::ready);
    CHECK(requestEndedAt - cancelledAt <= scaled(200ms));
    CHECK(hungWatch.endedAt - cancelledAt <= scaled(200ms));

    Result<Response> request = hungRequest.get();
    REQUIRE_FALSE(request.ok());
    CHECK(request.error() == "GET " + server.url() + "/hang: cancelled");
    Result<void> watch = hungWatch.done.get();
    REQUIRE_FALSE(watch.ok());
    CHECK(watch.error() == "GET " + server.url() + kSlicesWatch + "&hang=1: cancelled");

    Result<Response> later = client->request("GET", kNodePath);
    REQUIRE_FALSE(later.ok());
    CHECK(later.error() == "GET " + server.url() + kNodePath + ": cancelled");
}

TEST_CASE("a request the server does not answer times out after the configured time")
{
    FakeApiServer server;
    ClientOptions options;
    options.requestTimeout = 300ms;
    std::unique_ptr<Client> client = makeClient(server.access(), options);
    const Clock::time_point startedAt = Clock::now();
    Result<Response> hung = client->request("GET", "/hang");
    const auto took = Clock::now() - startedAt;
    REQUIRE_FALSE(hung.ok());
    CHECK_MESSAGE(hung.error().find("timed out") != std::string::npos, hung.error());
    CHECK(took >= 250ms); // curl counts from its own start, and in whole milliseconds
    CHECK(took <= scaled(2s));
}

TEST_CASE("several threads share one client")
{
    FakeApiServer server;
    std::unique_ptr<Client> client = makeClient(server.access());
    std::vector<std::future<int>> workers;
    for (int t = 0; t < 6; ++t) {
        workers.push_back(std::async(std::launch::async, [&] {
            int answered = 0;
            for (int i = 0; i < 5; ++i) {
                Result<Response> node = client->request("GET", kNodePath);
                answered += node.ok() && node->status == 200 ? 1 : 0;
            }
            return answered;
        }));
    }
    for (auto &worker : workers)
        CHECK(worker.get() == 5);
}

TEST_CASE("a server that is not listening is a transport error naming the URL")
{
    TempTree tree;
    tree.write("token", "t\n");
    ClusterAccess access;
    access.server = fmt::format("https://127.0.0.1:{}", freeTcpPort());
    access.tokenFile = tree.path("token");
    Result<Response> refused = makeClient(access)->request("GET", kNodePath);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().rfind("GET " + access.server + kNodePath + ": ", 0) == 0);
    CHECK_MESSAGE(refused.error().find("onnect") != std::string::npos, refused.error());
}

TEST_CASE("a client is not created from access it could never use")
{
    TempTree tree;
    ClusterAccess access;
    access.server = "ftp://127.0.0.1:1";
    CHECK(Client::create(access).error() == "API server \"ftp://127.0.0.1:1\" is not an https:// URL");
    access.server = "https://127.0.0.1:1/";
    access.tokenFile = tree.path("token");
    Result<std::unique_ptr<Client>> noToken = Client::create(access);
    REQUIRE_FALSE(noToken.ok());
    CHECK(noToken.error().find(tree.path("token")) != std::string::npos);
    access.tokenFile.clear();
    access.caFile = tree.path("ca.crt");
    Result<std::unique_ptr<Client>> noCa = Client::create(access);
    REQUIRE_FALSE(noCa.ok());
    CHECK(noCa.error().find(tree.path("ca.crt")) != std::string::npos);
    access.caFile.clear();
    Result<std::unique_ptr<Client>> fine = Client::create(access);
    REQUIRE_MESSAGE(fine.ok(), fine.error());
    CHECK((*fine)->server() == "https://127.0.0.1:1");
}

int main(int argc, char **argv)
{
    for (const char *tool : {kOpenssl, kPython}) {
        if (::access(tool, X_OK) != 0) {
            std::fprintf(stderr, "skipped: %s is missing (the test makes certificates with openssl and runs "
                                 "tests/support/fake_apiserver.py)\n", tool);
            return 77;
        }
    }
    doctest::Context context(argc, argv);
    return context.run();
}
