// The registration state machine, in-process on a real EventLoop and a real
// plugin directory (inotify included), with a fake kubelet and fake servers:
// what the kubelet is sent when it is up, down, slow, refusing or cancelling
// streams, when our sockets are deleted, and when we shut down with calls in
// flight.
#include "loop/event_loop.h"
#include "plugin/kubelet_watch.h"
#include "plugin/plugin_directory.h"
#include "plugin/plugin_manager.h"
#include "temp_tree.h"
#include "timeouts.h"

#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <sys/stat.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

using namespace kvgpu;
using namespace std::chrono_literals;
using kvgpu::test::scaled;

namespace {

const std::string kT4 = "nvidia.com/TU104GL_TESLA_T4";
const std::string kT4Socket = "kvgpu-TU104GL_TESLA_T4.sock";

Resource t4WithDevices(std::initializer_list<const char *> ids)
{
    Resource resource;
    resource.name = kT4;
    for (const char *id : ids) {
        AdvertisedDevice device;
        device.id = id;
        resource.devices.push_back(device);
    }
    return resource;
}

// Servers that are a plain file at the socket path, so that deleting "the
// socket" is what a kubelet restart does to a real one.
struct FakeServers {
    struct Served {
        std::string path;
        DeviceMap devices;             // the list as served and changed since
        std::vector<size_t> published; // device counts after each publish
        EndpointFactory::StreamEnded streamEnded;
        int openStreams = 0;
        bool stopped = false;
    };
    std::vector<std::shared_ptr<Served>> served; // in the order they were started
    int refuseNext = 0;                          // that many serve() calls fail

    std::shared_ptr<Served> current() const { return served.empty() ? nullptr : served.back(); }

    // The kubelet cancels the current server's stream.
    void kubeletCancelsStream() const
    {
        current()->openStreams = 0;
        current()->streamEnded(true);
    }
};

class FakeEndpoint final : public ResourceEndpoint {
public:
    explicit FakeEndpoint(std::shared_ptr<FakeServers::Served> served) : served_(std::move(served)) {}
    void publish(const ResourceDelta &delta) override
    {
        applyDelta(served_->devices, delta);
        served_->published.push_back(served_->devices.size());
    }
    int openStreams() const override { return served_->openStreams; }
    void stop(std::function<void()> stopped) override
    {
        std::filesystem::remove(served_->path);
        served_->stopped = true;
        stopped();
    }

private:
    std::shared_ptr<FakeServers::Served> served_;
};

class FakeEndpointFactory final : public EndpointFactory {
public:
    explicit FakeEndpointFactory(std::shared_ptr<FakeServers> servers) : servers_(std::move(servers)) {}
    Result<std::unique_ptr<ResourceEndpoint>> serve(const std::string &socketPath,
                                                    std::shared_ptr<const Resource> resource,
                                                    StreamEnded streamEnded) override
    {
        if (servers_->refuseNext > 0) {
            --servers_->refuseNext;
            return Error{"cannot serve " + socketPath};
        }
        std::ofstream(socketPath) << "socket";
        auto served = std::make_shared<FakeServers::Served>();
        served->path = socketPath;
        for (const AdvertisedDevice &device : resource->devices)
            served->devices.emplace(device.id, device);
        served->streamEnded = std::move(streamEnded);
        served->openStreams = 1;
        servers_->served.push_back(served);
        return std::unique_ptr<ResourceEndpoint>(std::make_unique<FakeEndpoint>(served));
    }

private:
    std::shared_ptr<FakeServers> servers_;
};

// A kubelet that answers Register the way the test says, from its own threads
// as gRPC would.
struct FakeKubelet {
    enum class Mode { Accept, Refuse, Hang };
    struct Sent {
        std::string resource;
        KubeletInstance instance;
        std::atomic<bool> cancelled{false};
        std::atomic<bool> answered{false};
    };

    std::mutex mutex;
    Mode mode = Mode::Accept;        // guarded by mutex
    std::vector<std::shared_ptr<Sent>> sent; // guarded by mutex
    std::vector<std::thread> answers; // guarded by mutex

    ~FakeKubelet()
    {
        for (auto &t : answers)
            t.join();
    }

    void setMode(Mode m)
    {
        std::lock_guard lock(mutex);
        mode = m;
    }
    size_t sentCount()
    {
        std::lock_guard lock(mutex);
        return sent.size();
    }
    std::shared_ptr<Sent> last()
    {
        std::lock_guard lock(mutex);
        return sent.empty() ? nullptr : sent.back();
    }
    size_t sentTo(const KubeletInstance &instance)
    {
        std::lock_guard lock(mutex);
        return static_cast<size_t>(std::count_if(sent.begin(), sent.end(),
                                                 [&](const auto &s) { return s->instance == instance; }));
    }

    // Answers on a thread of its own (requires mutex).
    void answerLocked(const std::shared_ptr<Sent> &call, KubeletRegistrar::Done done, grpc::Status status)
    {
        answers.emplace_back([call, done = std::move(done), status] {
            call->answered = true;
            done(status);
        });
    }
};

class FakeCall final : public RegistrationCall {
public:
    FakeCall(std::shared_ptr<FakeKubelet> kubelet, std::shared_ptr<FakeKubelet::Sent> sent, KubeletRegistrar::Done done)
        : kubelet_(std::move(kubelet)), sent_(std::move(sent)), done_(std::move(done))
    {
    }
    void cancel() override
    {
        std::lock_guard lock(kubelet_->mutex);
        if (sent_->cancelled || !done_)
            return;
        sent_->cancelled = true;
        kubelet_->answerLocked(sent_, std::move(done_), grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
        done_ = nullptr;
    }
    ~FakeCall() override
    {
        // The manager must keep a call until its completion has come.
        std::lock_guard lock(kubelet_->mutex);
        CHECK_MESSAGE(done_ == nullptr, "a Register call was destroyed before its completion");
    }

private:
    std::shared_ptr<FakeKubelet> kubelet_;
    std::shared_ptr<FakeKubelet::Sent> sent_;
    KubeletRegistrar::Done done_; // guarded by kubelet_->mutex; null once handed to an answer
};

class FakeRegistrar final : public KubeletRegistrar {
public:
    explicit FakeRegistrar(std::shared_ptr<FakeKubelet> kubelet) : kubelet_(std::move(kubelet)) {}
    std::unique_ptr<RegistrationCall> send(const KubeletInstance &instance, const v1beta1::RegisterRequest &request,
                                           Done done) override
    {
        auto sent = std::make_shared<FakeKubelet::Sent>();
        sent->resource = request.resource_name();
        sent->instance = instance;
        std::lock_guard lock(kubelet_->mutex);
        kubelet_->sent.push_back(sent);
        switch (kubelet_->mode) {
        case FakeKubelet::Mode::Accept:
            kubelet_->answerLocked(sent, std::move(done), grpc::Status::OK);
            return std::make_unique<FakeCall>(kubelet_, sent, nullptr);
        case FakeKubelet::Mode::Refuse:
            kubelet_->answerLocked(sent, std::move(done),
                                   grpc::Status(grpc::StatusCode::UNAVAILABLE, "kubelet not ready"));
            return std::make_unique<FakeCall>(kubelet_, sent, nullptr);
        case FakeKubelet::Mode::Hang:
            break;
        }
        return std::make_unique<FakeCall>(kubelet_, sent, std::move(done));
    }

private:
    std::shared_ptr<FakeKubelet> kubelet_;
};

// The node's plugin directory, the fakes, and the manager under test.
struct Stage {
    explicit Stage(PluginTiming timing = {.firstRetry = 20ms, .maxRetry = 10s, .stableStream = 10s})
        : servers(std::make_shared<FakeServers>()), kubelet(std::make_shared<FakeKubelet>())
    {
        dir.mkdir("plugins");
        manager = std::make_unique<PluginManager>(loop, pluginDir(), std::make_unique<FakeEndpointFactory>(servers),
                                                  std::make_unique<FakeRegistrar>(kubelet), timing);
        auto created = KubeletWatch::create(loop, pluginDir(), *manager);
        REQUIRE(created);
        watch = std::move(created).value();
    }

    ~Stage()
    {
        watch.reset();
        manager.reset();
        CHECK(loop.close() == 0);
    }

    std::string pluginDir() const { return dir.path("plugins"); }
    std::string pathOf(const std::string &file) const { return pluginDir() + "/" + file; }

    // A kubelet starts: a new kubelet.sock (a new inode, so a new instance).
    KubeletInstance kubeletStarts()
    {
        std::ofstream(pathOf("kubelet.sock.new")) << "kubelet";
        std::filesystem::rename(pathOf("kubelet.sock.new"), pathOf("kubelet.sock"));
        return instance();
    }
    KubeletInstance instance() const
    {
        std::optional<KubeletInstance> now = PluginDirectory(pluginDir()).kubelet();
        REQUIRE(now);
        return *now;
    }
    // The kubelet stops; its socket is kept aside so that the next one cannot
    // reuse the inode.
    void kubeletStops()
    {
        std::filesystem::rename(pathOf("kubelet.sock"), dir.path("old-kubelet-" + std::to_string(++stopped)));
    }
    // What a kubelet does at start before creating its own socket.
    void kubeletDeletesOurSockets()
    {
        for (const auto &entry : std::filesystem::directory_iterator(pluginDir()))
            if (entry.path().filename().string().rfind("kvgpu-", 0) == 0)
                std::filesystem::remove(entry.path());
    }
    KubeletInstance kubeletRestarts()
    {
        kubeletStops();
        kubeletDeletesOurSockets();
        return kubeletStarts();
    }

    void advertise(Resource resource)
    {
        std::map<std::string, Resource> changed;
        changed[resource.name] = std::move(resource);
        manager->update(std::move(changed));
    }

    // Runs the loop until `fact` holds (checked every millisecond) or the
    // timeout passes; returns whether it holds.
    bool runUntil(const std::function<bool()> &fact, std::chrono::milliseconds timeout = 2s)
    {
        auto deadline = std::chrono::steady_clock::now() + scaled(timeout);
        bool holds = fact();
        Timer check(loop);
        check.start(1, 1, [&] {
            holds = fact();
            if (holds || std::chrono::steady_clock::now() > deadline)
                loop.stop();
        });
        if (!holds)
            loop.run();
        return holds;
    }
    // Runs the loop for a while, for tests that count what happens in a period.
    void runFor(std::chrono::milliseconds period)
    {
        Timer stop(loop);
        stop.start(static_cast<uint64_t>(period.count()), 0, [&] { loop.stop(); });
        loop.run();
    }

    bool registered() { return runUntil([&] { return manager->allRegistered(); }); }

    kvgpu::test::TempTree dir;
    EventLoop loop;
    std::shared_ptr<FakeServers> servers;
    std::shared_ptr<FakeKubelet> kubelet;
    std::unique_ptr<PluginManager> manager;
    std::unique_ptr<KubeletWatch> watch;
    int stopped = 0;
};

} // namespace

TEST_CASE("a new resource is served, then registered with the running kubelet")
{
    Stage stage;
    KubeletInstance kubelet = stage.kubeletStarts();
    stage.advertise(t4WithDevices({"0000:65:00.0"}));
    REQUIRE(stage.registered());
    CHECK(stage.servers->served.size() == 1);
    CHECK(std::filesystem::exists(stage.pathOf(kT4Socket)));
    CHECK(stage.kubelet->sentTo(kubelet) == 1);
    CHECK(stage.kubelet->last()->resource == kT4);

    SUBCASE("a changed list is published on the same server, without registering again")
    {
        stage.advertise(t4WithDevices({"0000:65:00.0", "0000:66:00.0"}));
        CHECK(stage.servers->current()->published == std::vector<size_t>{2});
        CHECK(stage.servers->served.size() == 1);
        CHECK(stage.kubelet->sentCount() == 1);
    }
}

TEST_CASE("with no kubelet the resource is served and waits; kubelet.sock appearing registers it at once")
{
    Stage stage;
    stage.advertise(t4WithDevices({"0000:65:00.0"}));
    CHECK(stage.servers->served.size() == 1);
    CHECK(stage.kubelet->sentCount() == 0);
    CHECK_FALSE(stage.manager->allRegistered());
    KubeletInstance kubelet = stage.kubeletStarts();
    REQUIRE(stage.registered());
    CHECK(stage.kubelet->sentTo(kubelet) == 1);
    CHECK(stage.servers->served.size() == 1); // the server was fine: not restarted
}

TEST_CASE("a kubelet restart (our socket deleted, then kubelet.sock created) restarts each server once and "
          "registers once with the new kubelet")
{
    Stage stage;
    stage.kubeletStarts();
    stage.advertise(t4WithDevices({"0000:65:00.0"}));
    REQUIRE(stage.registered());
    for (int restart = 1; restart <= 5; ++restart) {
        CAPTURE(restart);
        KubeletInstance next = stage.kubeletRestarts();
        REQUIRE(stage.runUntil([&] { return stage.kubelet->sentTo(next) == 1 && stage.manager->allRegistered(); }));
        // Settle every event of this restart: the socket is back and nothing
        // further was sent.
        stage.runFor(20ms);
        CHECK(stage.servers->served.size() == static_cast<size_t>(1 + restart));
        CHECK(stage.kubelet->sentTo(next) == 1);
        CHECK(std::filesystem::exists(stage.pathOf(kT4Socket)));
    }
    CHECK(stage.kubelet->sentCount() == 6);
}

TEST_CASE("a socket deleted by someone else: that server is served again and registers again")
{
    Stage stage;
    KubeletInstance kubelet = stage.kubeletStarts();
    stage.advertise(t4WithDevices({"0000:65:00.0"}));
    REQUIRE(stage.registered());
    std::filesystem::remove(stage.pathOf(kT4Socket));
    REQUIRE(stage.runUntil([&] { return stage.kubelet->sentTo(kubelet) == 2 && stage.manager->allRegistered(); }));
    CHECK(stage.servers->served.size() == 2);
    CHECK(stage.servers->served[0]->stopped);
    CHECK(std::filesystem::exists(stage.pathOf(kT4Socket)));
}

TEST_CASE("a refusing kubelet is retried with growing backoff; a new kubelet instance is registered with at once")
{
    Stage stage({.firstRetry = 20ms, .maxRetry = 10s, .stableStream = 10s});
    stage.kubelet->setMode(FakeKubelet::Mode::Refuse);
    KubeletInstance refusing = stage.kubeletStarts();
    stage.advertise(t4WithDevices({"0000:65:00.0"}));
    // 20, 40, 80, 160, 320 ms: five retries take 620 ms; without backoff a
    // retry every 20 ms would be 30 of them.
    stage.runFor(700ms);
    size_t attempts = stage.kubelet->sentTo(refusing);
    MESSAGE("Register attempts to a refusing kubelet in 700 ms: " << attempts);
    CHECK(attempts >= 3);
    CHECK(attempts <= 7);
    CHECK_FALSE(stage.manager->allRegistered());
    // The next retry is 640 ms away; a new kubelet does not wait for it.
    stage.kubelet->setMode(FakeKubelet::Mode::Accept);
    KubeletInstance fresh = stage.kubeletRestarts();
    auto restarted = std::chrono::steady_clock::now();
    REQUIRE(stage.runUntil([&] { return stage.manager->allRegistered(); }));
    CHECK(stage.kubelet->sentTo(fresh) == 1);
    CHECK(std::chrono::steady_clock::now() - restarted < scaled(500ms));
}

TEST_CASE("a kubelet that deletes its stale socket and creates one on the freed inode is a new instance")
{
    // The real kubelet leaves kubelet.sock behind when it stops; a Register
    // to it is refused and backs off. Its next start deletes the file and
    // creates a new one, which ext4 and tmpfs put on the inode just freed.
    Stage stage({.firstRetry = 2s, .maxRetry = 10s, .stableStream = 10s});
    stage.kubelet->setMode(FakeKubelet::Mode::Refuse);
    KubeletInstance stale = stage.kubeletStarts();
    stage.advertise(t4WithDevices({"0000:65:00.0"}));
    REQUIRE(stage.runUntil([&] { return stage.kubelet->sentTo(stale) == 1; }));
    stage.runFor(50ms); // refused: the next try is 2 s away

    stage.kubelet->setMode(FakeKubelet::Mode::Accept);
    std::filesystem::remove(stage.pathOf("kubelet.sock"));
    stage.kubeletDeletesOurSockets();
    std::ofstream(stage.pathOf("kubelet.sock")) << "kubelet";
    KubeletInstance fresh = stage.instance();
    if (fresh.inode != stale.inode)
        MESSAGE("this filesystem gave the new socket another inode; the case is weaker here");
    auto started = std::chrono::steady_clock::now();
    REQUIRE(stage.runUntil([&] { return stage.manager->allRegistered(); }));
    CHECK(stage.kubelet->sentTo(fresh) == 1);
    CHECK(std::chrono::steady_clock::now() - started < scaled(1s));
}

TEST_CASE("a slow kubelet: the Register stays in flight, and a new kubelet instance cancels it and is "
          "registered with instead")
{
    Stage stage;
    stage.kubelet->setMode(FakeKubelet::Mode::Hang);
    KubeletInstance slow = stage.kubeletStarts();
    stage.advertise(t4WithDevices({"0000:65:00.0"}));
    stage.runFor(50ms);
    REQUIRE(stage.kubelet->sentTo(slow) == 1);
    auto hung = stage.kubelet->last();
    CHECK_FALSE(hung->answered);
    CHECK_FALSE(stage.manager->allRegistered());

    stage.kubelet->setMode(FakeKubelet::Mode::Accept);
    KubeletInstance fresh = stage.kubeletRestarts();
    REQUIRE(stage.registered());
    CHECK(hung->cancelled);
    CHECK(stage.kubelet->sentTo(fresh) == 1);
    // The cancelled call's late CANCELLED answer does not undo the registration.
    stage.runFor(20ms);
    CHECK(stage.manager->allRegistered());
}

TEST_CASE("a kubelet that cancels every ListAndWatch stream is re-registered with backoff, not in a loop")
{
    Stage stage({.firstRetry = 20ms, .maxRetry = 10s, .stableStream = 10s});
    KubeletInstance kubelet = stage.kubeletStarts();
    stage.advertise(t4WithDevices({"0000:65:00.0"}));
    REQUIRE(stage.registered());
    // Each time the resource is registered, the kubelet cancels its stream.
    size_t cancelled = 0;
    size_t cancelledAfter = 0; // registrations seen at the last cancel
    Timer cancelling(stage.loop);
    cancelling.start(1, 1, [&] {
        size_t sent = stage.kubelet->sentTo(kubelet);
        if (stage.manager->allRegistered() && sent > cancelledAfter) {
            ++cancelled;
            cancelledAfter = sent;
            stage.servers->kubeletCancelsStream();
        }
    });
    stage.runFor(700ms);
    cancelling.stop();
    size_t registrations = stage.kubelet->sentTo(kubelet);
    MESSAGE("registrations while every stream was cancelled, 700 ms: " << registrations);
    CHECK(cancelled >= 3);
    // 20, 40, 80, 160, 320 ms apart: at most 7 with the first; an immediate
    // re-registration would have made hundreds.
    CHECK(registrations <= 7);
    CHECK(stage.servers->served.size() == 1); // re-registering needs no new server
}

TEST_CASE("a stream that stayed up past the stable time is re-registered at once, with the backoff reset")
{
    Stage stage({.firstRetry = 5s, .maxRetry = 10s, .stableStream = 30ms});
    KubeletInstance kubelet = stage.kubeletStarts();
    stage.advertise(t4WithDevices({"0000:65:00.0"}));
    REQUIRE(stage.registered());
    for (int round = 1; round <= 3; ++round) {
        CAPTURE(round);
        stage.runFor(50ms);
        stage.servers->kubeletCancelsStream();
        // With a 5 s first retry, only an immediate re-registration passes.
        REQUIRE(stage.runUntil([&] { return stage.kubelet->sentTo(kubelet) == static_cast<size_t>(1 + round) &&
                                            stage.manager->allRegistered(); },
                               1s));
        stage.servers->current()->openStreams = 1; // the kubelet opened the new stream
    }
}

TEST_CASE("serving that fails is retried with backoff until it works, then registered")
{
    Stage stage;
    stage.servers->refuseNext = 2;
    KubeletInstance kubelet = stage.kubeletStarts();
    stage.advertise(t4WithDevices({"0000:65:00.0"}));
    CHECK(stage.servers->served.empty());
    REQUIRE(stage.registered());
    CHECK(stage.servers->served.size() == 1);
    CHECK(stage.kubelet->sentTo(kubelet) == 1);
}

TEST_CASE("shutdown with a Register in flight cancels it, waits for its completion, and removes our sockets")
{
    Stage stage;
    stage.kubelet->setMode(FakeKubelet::Mode::Hang);
    stage.kubeletStarts();
    stage.advertise(t4WithDevices({"0000:65:00.0"}));
    REQUIRE(stage.kubelet->sentCount() == 1);
    auto inFlight = stage.kubelet->last();
    stage.manager->shutdown();
    CHECK(stage.manager->awaitStopped(scaled(1s)));
    CHECK(inFlight->cancelled);
    CHECK(inFlight->answered);
    CHECK_FALSE(std::filesystem::exists(stage.pathOf(kT4Socket)));
    // Nothing happens after shutdown: no retry, no new server.
    stage.runFor(50ms);
    CHECK(stage.kubelet->sentCount() == 1);
    CHECK(stage.servers->served.size() == 1);
}

TEST_CASE("the plugin directory vanishing makes the manager report not live")
{
    Stage stage;
    stage.kubeletStarts();
    stage.advertise(t4WithDevices({"0000:65:00.0"}));
    REQUIRE(stage.registered());
    CHECK(stage.manager->live());
    std::filesystem::remove_all(stage.pluginDir());
    CHECK(stage.runUntil([&] { return !stage.manager->live(); }));
}
