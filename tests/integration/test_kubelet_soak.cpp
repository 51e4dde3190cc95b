// The kubelet side under stress, end to end: a kubelet restarted a thousand
// times (back to back, then while devices change) gets every resource re-listed
// each time without the plugin growing; SIGTERM at any moment of start-up,
// while the kubelet hangs in Register, or while it holds every ListAndWatch
// stream, ends in exit 0 with our sockets removed.
#include "free_port.h"
#include "api.grpc.pb.h"
#include "health.grpc.pb.h"
#include "plugin_fixture.h"

#include <fmt/format.h>

#include <doctest/doctest.h>

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>

using namespace kvgpu::test;

namespace {

const std::string kT4a = "0000:67:00.0";
const std::string kT4b = "0000:68:00.0";
const std::string kA100Gpu = "0000:ca:00.0";
const std::string kL4 = "0000:e1:00.0";
const std::string kFirstVgpu = "aa618089-8b16-4d01-a136-25a0f3c73123";
const std::set<std::string> kResources = {kT4, kA100, kL4x1Q};

// The end of a long daemon log: what it did last.
std::string tailOf(const std::string &log, size_t size = 6000)
{
    return log.size() <= size ? log : log.substr(log.size() - size);
}

std::set<std::string> filesIn(const std::string &dir)
{
    std::set<std::string> names;
    for (const auto &entry : std::filesystem::directory_iterator(dir))
        names.insert(entry.path().filename());
    return names;
}

// What the kubelet received, kept by its hooks so that waiting for a restart's
// re-listing costs nothing per recorded change. The hooks run after the kubelet
// has notified its own waiters, so the ledger has its own condition variable.
class RestartLedger : public std::enable_shared_from_this<RestartLedger> {
public:
    // The hooks keep the ledger alive: they may run on kubelet threads until
    // the kubelet is gone.
    static std::shared_ptr<RestartLedger> attachTo(TestKubelet &kubelet)
    {
        auto ledger = std::make_shared<RestartLedger>();
        kubelet.onRegistration([ledger](const TestKubelet::Registration &r) {
            std::lock_guard lock(ledger->mutex_);
            ledger->registered_[r.generation].insert(r.resource);
            ++ledger->registrations_[r.generation];
            ledger->changed_.notify_all();
        });
        kubelet.onUpdate([ledger](const std::string &resource, const TestKubelet::Update &u) {
            std::lock_guard lock(ledger->mutex_);
            ledger->listedAt_[resource] = u.at;
            ledger->changed_.notify_all();
        });
        return ledger;
    }

    // Waits until every resource is registered with kubelet generation
    // `restart` and listed on a stream after `since`.
    bool waitForRelisting(int restart, std::chrono::steady_clock::time_point since,
                          std::chrono::milliseconds timeout) const
    {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, timeout, [&] { return relistedLocked(restart, since); });
    }

    // Registrations that arrived for kubelet generation `restart`, counting repeats.
    int registrationsOf(int restart) const
    {
        std::lock_guard lock(mutex_);
        auto it = registrations_.find(restart);
        return it == registrations_.end() ? 0 : it->second;
    }

private:
    bool relistedLocked(int restart, std::chrono::steady_clock::time_point since) const
    {
        auto it = registered_.find(restart);
        if (it == registered_.end() || it->second != kResources)
            return false;
        for (const std::string &resource : kResources) {
            auto at = listedAt_.find(resource);
            if (at == listedAt_.end() || at->second < since)
                return false;
        }
        return true;
    }

    mutable std::mutex mutex_;
    mutable std::condition_variable changed_;
    std::map<int, int> registrations_;
    std::map<int, std::set<std::string>> registered_;
    std::map<std::string, std::chrono::steady_clock::time_point> listedAt_;
};

struct Soak : PluginFixture {
    Soak()
    {
        kubelet->start();
        startPlugin();
        REQUIRE_MESSAGE(kubeletSees(kT4, {kT4a, kT4b}, 5s), log());
        REQUIRE(kubeletSees(kA100, {kA100Gpu}, 5s));
        REQUIRE(kubeletSees(kL4x1Q, {kFirstVgpu}, 5s));
    }

    // Restarts the kubelet and waits until every resource is registered with
    // the new instance and listed again.
    bool restartAndWaitForRelisting(RestartLedger &ledger)
    {
        auto since = std::chrono::steady_clock::now();
        kubelet->restart();
        int generation = kubelet->restarts();
        bool relisted = ledger.waitForRelisting(generation, since, scaled(5s));
        latencies.push_back(std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - since));
        return relisted;
    }

    // Restart to every resource listed again: p50, p99 and the slowest.
    std::string latencySummary()
    {
        std::vector<std::chrono::microseconds> sorted = latencies;
        std::sort(sorted.begin(), sorted.end());
        auto at = [&](double q) { return sorted[static_cast<size_t>(q * static_cast<double>(sorted.size() - 1))].count() / 1000.0; };
        return fmt::format("restart to re-listed, {} restarts: p50 {:.1f} ms, p99 {:.1f} ms, max {:.1f} ms", sorted.size(),
                           at(0.5), at(0.99), at(1.0));
    }

    std::vector<std::chrono::microseconds> latencies;
};

// A "kubelet" that accepts connections and never says a word: the HTTP/2
// handshake never completes, so a Register sent to it hangs until cancelled.
class HungKubelet {
public:
    explicit HungKubelet(const std::string &path)
    {
        fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd_ >= 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        REQUIRE(path.size() < sizeof address.sun_path);
        path.copy(address.sun_path, path.size());
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr *>(&address), sizeof address) == 0);
        REQUIRE(::listen(fd_, 64) == 0);
    }
    ~HungKubelet() { ::close(fd_); }
    HungKubelet(const HungKubelet &) = delete;
    HungKubelet &operator=(const HungKubelet &) = delete;

private:
    int fd_ = -1;
};

// The status a Kubernetes gRPC probe of `service` gets.
std::string probe(int port, const std::string &service)
{
    auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
    auto stub = grpc::health::v1::Health::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + scaled(3s));
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    grpc::Status status = stub->Check(&context, request, &response);
    if (!status.ok())
        return "error: " + status.error_message();
    return grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status());
}

} // namespace

TEST_CASE("the plugin directory removed under a running plugin: liveness turns NOT_SERVING so that the pod "
          "restarts")
{
    PluginFixture f;
    f.kubelet->start();
    int port = freeTcpPort();
    std::vector<std::string> flags = f.flags();
    auto at = std::find(flags.begin(), flags.end(), "--probe-port");
    REQUIRE(at != flags.end());
    *(at + 1) = std::to_string(port);
    f.plugin = std::make_unique<DaemonProcess>(pluginBinary(), flags, f.files.path("plugin.log"));
    REQUIRE_MESSAGE(f.kubeletSees(kT4, {kT4a, kT4b}, 5s), f.log());
    REQUIRE(eventually([&] { return probe(port, "liveness") == "SERVING"; }));

    f.kubelet->stop();
    // The plugin may serve a deleted socket again while the tree is removed;
    // once the directory itself is gone it cannot.
    REQUIRE(eventually(
        [&] {
            std::error_code error;
            std::filesystem::remove_all(f.pluginDir(), error);
            return !std::filesystem::exists(f.pluginDir());
        }));
    CHECK_MESSAGE(eventually([&] { return probe(port, "liveness") == "NOT_SERVING"; }), f.log());
    CHECK(f.log().find("the kubelet plugin directory was removed") != std::string::npos);
    f.plugin->signal(SIGTERM);
    CHECK(f.plugin->waitExit(scaled(2s)).value_or(-1) == 0);
}

TEST_CASE("1,000 kubelet restarts, back to back and while devices change: every one re-lists every resource, "
          "and the plugin does not grow")
{
    Soak f;
    RestartLedger &ledger = *RestartLedger::attachTo(*f.kubelet);
    REQUIRE(f.restartAndWaitForRelisting(ledger));
    const long rssAtStart = f.plugin->rssKiB();
    const int fdsAtStart = f.plugin->openFds();
    const int threadsAtStart = f.plugin->threads();
    MESSAGE("at start: RSS " << rssAtStart << " KiB, " << fdsAtStart << " fds, " << threadsAtStart << " threads");

    auto started = std::chrono::steady_clock::now();
    for (int restart = 2; restart <= 600; ++restart) {
        CAPTURE(restart);
        REQUIRE_MESSAGE(f.restartAndWaitForRelisting(ledger), tailOf(f.log()));
        if (restart % 200 == 0)
            MESSAGE("after " << restart << " restarts: RSS " << f.plugin->rssKiB() << " KiB, " << f.plugin->openFds()
                              << " fds");
    }
    const long rssAt600 = f.plugin->rssKiB();
    MESSAGE("600 back-to-back restarts took "
            << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started)
                   .count()
            << " ms");

    // The node keeps changing while the kubelet restarts: a vGPU comes and
    // goes, a T4 is unbound from vfio-pci and bound back.
    std::atomic<bool> changing{true};
    std::atomic<int> changes{0};
    std::thread changer([&] {
        while (changing) {
            std::string uuid = f.node->createVgpu(kL4, "nvidia-592");
            f.node->unbind(kT4b);
            f.node->removeVgpu(uuid);
            f.node->bind(kT4b, "vfio-pci");
            ++changes;
        }
    });
    for (int restart = 601; restart <= 1000; ++restart) {
        CAPTURE(restart);
        bool relisted = f.restartAndWaitForRelisting(ledger);
        if (!relisted) {
            changing = false;
            changer.join();
        }
        REQUIRE_MESSAGE(relisted, tailOf(f.log()));
    }
    changing = false;
    changer.join();
    MESSAGE("device changes during the last 400 restarts: " << changes.load());
    CHECK(changes.load() > 0);

    // After the storm the kubelet holds exactly the node.
    CHECK(f.kubeletSees(kT4, {kT4a, kT4b}, 5s));
    CHECK(f.kubeletSees(kA100, {kA100Gpu}, 5s));
    CHECK(f.kubeletSees(kL4x1Q, {kFirstVgpu}, 5s));
    MESSAGE(f.latencySummary());
    // A kubelet restart is an event we see: nothing waits out a reconnect
    // backoff (1 s in gRPC) or a retry after a refused Register.
    CHECK(*std::max_element(f.latencies.begin(), f.latencies.end()) < scaled(900ms));
    // One registration per resource per restart: no restart re-registered twice.
    for (int restart = 1; restart <= 1000; ++restart)
        REQUIRE(ledger.registrationsOf(restart) == static_cast<int>(kResources.size()));
    std::string rejected;
    for (const auto &r : f.kubelet->rejections())
        rejected += r.resource + ": " + r.message + "\n";
    CHECK_MESSAGE(rejected.empty(), rejected);

    const long rssAtEnd = f.plugin->rssKiB();
    const int fdsAtEnd = f.plugin->openFds();
    const int threadsAtEnd = f.plugin->threads();
    MESSAGE("at end: RSS " << rssAtEnd << " KiB, " << fdsAtEnd << " fds, " << threadsAtEnd << " threads");
    // A leak per restart would show 1,000 times over. gRPC's executor grows and
    // shrinks its pool by a few threads on demand, and the allocator keeps some
    // freed pages, which is not a leak.
    CHECK(fdsAtEnd <= fdsAtStart + 4);
    CHECK(threadsAtEnd <= threadsAtStart + 8);
    MESSAGE("RSS growth over the last 400 restarts: " << rssAtEnd - rssAt600 << " KiB");
    // ASan's quarantine keeps 256 MiB of freed memory (and its shadow) before
    // reusing any, and TSan keeps its own history: RSS climbs for the first few
    // hundred restarts and then stays. So the last 400 restarts are the
    // measure; without a sanitizer, all 1,000.
    CHECK(rssAtEnd - rssAt600 <= 32 * 1024);
    if (!std::getenv("ASAN_OPTIONS") && !std::getenv("TSAN_OPTIONS"))
        CHECK(rssAtEnd <= rssAtStart + 32 * 1024);
}

TEST_CASE("SIGTERM at 100 random moments of start-up: no crash, every handled SIGTERM exits 0, our sockets removed")
{
    PluginFixture f;
    f.kubelet->start();
    std::mt19937 random(std::random_device{}());
    // The same share of start-up under the sanitizers, which start slower.
    std::uniform_int_distribution<long> delayMs(0, scaled(150ms).count());
    int handled = 0, beforeHandler = 0;
    for (int run = 1; run <= 100; ++run) {
        long delay = delayMs(random);
        CAPTURE(run);
        CAPTURE(delay);
        f.startPlugin();
        std::this_thread::sleep_for(std::chrono::milliseconds(delay));
        f.plugin->signal(SIGTERM);
        std::optional<int> status = f.plugin->waitExit(scaled(2s));
        REQUIRE_MESSAGE(status.has_value(), f.log());
        std::string log = f.log();
        // A SIGTERM that arrives before the daemon watches for it (while the
        // dynamic loader or option parsing runs) ends it by the default action,
        // before it has created anything: not a crash, nothing to clean up.
        bool sawSignal = log.find("msg=stopping") != std::string::npos;
        if (*status == 128 + SIGTERM && !sawSignal) {
            ++beforeHandler;
        } else {
            REQUIRE_MESSAGE(*status == 0, log);
            ++handled;
        }
        REQUIRE(filesIn(f.pluginDir()) == std::set<std::string>{"kubelet.sock"});
    }
    MESSAGE(handled << " SIGTERMs handled (exit 0), " << beforeHandler
                    << " arrived before the daemon watched for them (default action)");
    CHECK(handled >= 25);
}

TEST_CASE("SIGTERM while the kubelet hangs in Register: exit 0 within a second, our sockets removed")
{
    PluginFixture f;
    HungKubelet hung(f.pluginDir() + "/kubelet.sock");
    f.startPlugin();
    REQUIRE_MESSAGE(f.plugin->waitForLog("sending Register", scaled(5s)), f.log());
    auto signalled = std::chrono::steady_clock::now();
    f.plugin->signal(SIGTERM);
    std::optional<int> status = f.plugin->waitExit(scaled(1s));
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - signalled);
    MESSAGE("exit after SIGTERM took " << took.count() << " ms");
    CHECK_MESSAGE(status.value_or(-1) == 0, f.log());
    CHECK(filesIn(f.pluginDir()) == std::set<std::string>{"kubelet.sock"});
}

TEST_CASE("SIGTERM with the kubelet holding every ListAndWatch stream, probes and metrics served: exit 0 within "
          "0.3 s, our sockets removed")
{
    PluginFixture f;
    // As deployed: the probe and metrics servers run beside the plugin's own.
    f.metricsPort = freeTcpPort();
    std::vector<std::string> flags = f.flags();
    auto probePort = std::find(flags.begin(), flags.end(), "--probe-port");
    REQUIRE(probePort != flags.end());
    *(probePort + 1) = std::to_string(freeTcpPort());
    f.kubelet->start();
    f.plugin = std::make_unique<DaemonProcess>(pluginBinary(), flags, f.files.path("plugin.log"));
    REQUIRE_MESSAGE(f.kubeletSees(kT4, {kT4a, kT4b}, 5s), f.log());
    REQUIRE(f.kubeletSees(kA100, {kA100Gpu}, 5s));
    REQUIRE(f.kubeletSees(kL4x1Q, {kFirstVgpu}, 5s));
    // The streams are the kubelet's calls still open on our servers: the
    // plugin ends them rather than waiting for the kubelet to.
    REQUIRE(f.kubelet->openStreams() == static_cast<int>(kResources.size()));

    auto signalled = std::chrono::steady_clock::now();
    f.plugin->signal(SIGTERM);
    std::optional<int> status = f.plugin->waitExit(scaled(5s));
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - signalled);
    MESSAGE("exit after SIGTERM with " << kResources.size() << " streams open took " << took.count() << " ms");
    REQUIRE_MESSAGE(status.has_value(), tailOf(f.log()));
    CHECK_MESSAGE(*status == 0, tailOf(f.log()));
    CHECK_MESSAGE(took < scaled(300ms), tailOf(f.log()));
    CHECK(filesIn(f.pluginDir()) == std::set<std::string>{"kubelet.sock"});
    CHECK(f.kubelet->openStreams() == 0);
}
