// Self-test of the TestKubelet: other tests trust what it records, so it is
// checked here against a small device plugin whose behaviour the test controls.

#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/server_context.h>

#include "api.grpc.pb.h"
#include "api.pb.h"
#include "test_kubelet.h"

namespace {

using namespace std::chrono_literals;
using kvgpu::test::TestKubelet;
namespace fs = std::filesystem;

constexpr auto kWait = 5000ms;
const std::string kResource = "nvidia.com/TU104GL_TESLA_T4";

// A short-lived plugin directory; unix socket paths must stay under 108 bytes.
class TempDir {
public:
    TempDir()
    {
        char pattern[] = "/tmp/kvk.XXXXXX";
        char* made = mkdtemp(pattern);
        REQUIRE(made != nullptr);
        path_ = made;
    }
    ~TempDir()
    {
        std::error_code ignored;
        fs::remove_all(path_, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const std::string& path() const { return path_; }
    std::string operator/(const std::string& name) const { return path_ + "/" + name; }

private:
    std::string path_;
};

// Polls a condition that only the plugin side can observe.
bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout = kWait)
{
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (condition())
            return true;
        std::this_thread::sleep_for(5ms);
    }
    return condition();
}

std::shared_ptr<grpc::Channel> dial(const std::string& socket)
{
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return grpc::CreateCustomChannel("unix://" + socket, grpc::InsecureChannelCredentials(),
                                     args);
}

struct PluginOptions {
    bool preferredAllocation = false;
    bool preStartRequired = false;
};

// A device plugin with the sync gRPC API. Its devices, options and failures are
// set by the test; it counts what the kubelet asked of it.
class FakePlugin final : public v1beta1::DevicePlugin::Service {
public:
    FakePlugin(std::string socket, std::vector<TestKubelet::Device> devices, PluginOptions options = {})
        : socket_(std::move(socket)), devices_(std::move(devices)), options_(options)
    {
    }
    ~FakePlugin() override { shutdown(); }

    void serve()
    {
        {
            std::lock_guard lock(mu_);
            stopping_ = false;
        }
        grpc::ServerBuilder builder;
        builder.AddListeningPort("unix://" + socket_, grpc::InsecureServerCredentials());
        builder.RegisterService(this);
        server_ = builder.BuildAndStart();
        REQUIRE(server_ != nullptr);
    }

    void shutdown()
    {
        {
            std::lock_guard lock(mu_);
            stopping_ = true;
            changed_.notify_all();
        }
        if (server_) {
            server_->Shutdown(std::chrono::system_clock::now() + 2s);
            server_.reset();
        }
    }

    grpc::Status registerWith(const TestKubelet& kubelet, const std::string& resource,
                              const std::string& version = "v1beta1")
    {
        auto stub = v1beta1::Registration::NewStub(dial(kubelet.socketPath()));
        v1beta1::RegisterRequest request;
        request.set_version(version);
        request.set_endpoint(fs::path(socket_).filename().string());
        request.set_resource_name(resource);
        request.mutable_options()->set_get_preferred_allocation_available(
            options_.preferredAllocation);
        request.mutable_options()->set_pre_start_required(options_.preStartRequired);
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + 15s);
        v1beta1::Empty response;
        return stub->Register(&context, request, &response);
    }

    void setDevices(std::vector<TestKubelet::Device> devices)
    {
        std::lock_guard lock(mu_);
        devices_ = std::move(devices);
        ++devicesVersion_;
        changed_.notify_all();
    }
    // Makes every open ListAndWatch return OK, which the kubelet sees as EOF.
    void endStreams()
    {
        std::lock_guard lock(mu_);
        ++endGeneration_;
        changed_.notify_all();
    }
    void blockOptions(bool block)
    {
        std::lock_guard lock(mu_);
        blockOptions_ = block;
        changed_.notify_all();
    }
    void answerAllocateEmpty(bool empty)
    {
        std::lock_guard lock(mu_);
        emptyAllocate_ = empty;
    }

    int optionsCalls() const { return optionsCalls_; }
    int streamsOpened() const { return streamsOpened_; }
    int streamsActive() const { return streamsActive_; }
    int streamsCancelled() const { return streamsCancelled_; }
    int allocateCalls() const { return allocateCalls_; }
    std::vector<std::string> preStarted() const
    {
        std::lock_guard lock(mu_);
        return preStarted_;
    }

    grpc::Status GetDevicePluginOptions(grpc::ServerContext* context, const v1beta1::Empty*,
                                        v1beta1::DevicePluginOptions* response) override
    {
        ++optionsCalls_;
        std::unique_lock lock(mu_);
        while (blockOptions_ && !stopping_ && !context->IsCancelled())
            changed_.wait_for(lock, 10ms);
        response->set_get_preferred_allocation_available(options_.preferredAllocation);
        response->set_pre_start_required(options_.preStartRequired);
        return grpc::Status::OK;
    }

    grpc::Status ListAndWatch(grpc::ServerContext* context, const v1beta1::Empty*,
                              grpc::ServerWriter<v1beta1::ListAndWatchResponse>* writer) override
    {
        ++streamsOpened_;
        ++streamsActive_;
        std::unique_lock lock(mu_);
        const uint64_t endGeneration = endGeneration_;
        uint64_t sent = 0;
        bool first = true;
        for (;;) {
            if (context->IsCancelled()) {
                ++streamsCancelled_;
                break;
            }
            if (stopping_ || endGeneration_ != endGeneration)
                break;
            if (first || sent != devicesVersion_) {
                first = false;
                sent = devicesVersion_;
                v1beta1::ListAndWatchResponse message = snapshot();
                lock.unlock();
                writer->Write(message);
                lock.lock();
                continue;
            }
            // The sync API has no cancellation callback, so poll for it.
            changed_.wait_for(lock, 10ms);
        }
        --streamsActive_;
        return grpc::Status::OK;
    }

    grpc::Status GetPreferredAllocation(grpc::ServerContext*,
                                        const v1beta1::PreferredAllocationRequest* request,
                                        v1beta1::PreferredAllocationResponse* response) override
    {
        for (const auto& container : request->container_requests()) {
            auto* answer = response->add_container_responses();
            for (const std::string& id : container.must_include_deviceids())
                answer->add_deviceids(id);
            for (const std::string& id : container.available_deviceids()) {
                if (answer->deviceids_size() >= container.allocation_size())
                    break;
                if (std::find(answer->deviceids().begin(), answer->deviceids().end(), id) ==
                    answer->deviceids().end())
                    answer->add_deviceids(id);
            }
        }
        return grpc::Status::OK;
    }

    grpc::Status Allocate(grpc::ServerContext*, const v1beta1::AllocateRequest* request,
                          v1beta1::AllocateResponse* response) override
    {
        ++allocateCalls_;
        std::lock_guard lock(mu_);
        if (emptyAllocate_)
            return grpc::Status::OK;
        for (const auto& container : request->container_requests()) {
            std::vector<std::string> ids(container.devices_ids().begin(),
                                         container.devices_ids().end());
            for (const std::string& id : ids) {
                if (id == "unknown")
                    return {grpc::StatusCode::INVALID_ARGUMENT, "device unknown does not exist"};
            }
            auto* answer = response->add_container_responses();
            (*answer->mutable_envs())["FAKE_DEVICES"] = fmt::format("{}", fmt::join(ids, ","));
            for (const std::string& id : ids) {
                auto* spec = answer->add_devices();
                spec->set_host_path("/dev/fake/" + id);
                spec->set_container_path("/dev/fake/" + id);
                spec->set_permissions("rw");
            }
        }
        return grpc::Status::OK;
    }

    grpc::Status PreStartContainer(grpc::ServerContext*,
                                   const v1beta1::PreStartContainerRequest* request,
                                   v1beta1::PreStartContainerResponse*) override
    {
        std::lock_guard lock(mu_);
        preStarted_.assign(request->devices_ids().begin(), request->devices_ids().end());
        return grpc::Status::OK;
    }

private:
    v1beta1::ListAndWatchResponse snapshot() const
    {
        v1beta1::ListAndWatchResponse message;
        for (const TestKubelet::Device& device : devices_) {
            v1beta1::Device* d = message.add_devices();
            d->set_id(device.id);
            d->set_health(device.health);
            for (int64_t node : device.numaNodes)
                d->mutable_topology()->add_nodes()->set_id(node);
        }
        return message;
    }

    const std::string socket_;
    std::unique_ptr<grpc::Server> server_;
    std::atomic<int> optionsCalls_{0};
    std::atomic<int> streamsOpened_{0};
    std::atomic<int> streamsActive_{0};
    std::atomic<int> streamsCancelled_{0};
    std::atomic<int> allocateCalls_{0};

    mutable std::mutex mu_;
    std::condition_variable changed_;
    std::vector<TestKubelet::Device> devices_;
    PluginOptions options_;
    uint64_t devicesVersion_ = 0;
    uint64_t endGeneration_ = 0;
    bool stopping_ = false;
    bool blockOptions_ = false;
    bool emptyAllocate_ = false;
    std::vector<std::string> preStarted_;
};

const std::vector<TestKubelet::Device> kTwoGpus = {
    {"0000:65:00.0", "Healthy", {0}},
    {"0000:66:00.0", "Healthy", {}},
};

} // namespace

TEST_CASE("resource names follow the kubelet's rule for extended resources")
{
    using kvgpu::test::resourceNameError;
    for (const std::string& valid : std::vector<std::string>{"nvidia.com/TU104GL_TESLA_T4", "example.com/gpu", "a.b-c.d/x", "x/Y.z-1_2",
          "example.com/" + std::string(63, 'a')}) {
        CAPTURE(valid);
        CHECK_FALSE(resourceNameError(valid).has_value());
    }
    for (const std::string& invalid : std::vector<std::string>{"gpu", "nvidia.com/a/b", "Nvidia.com/gpu", "nvidia.com/", "/gpu", "nvidia.com/-gpu",
          "nvidia.com/gpu_", "nvidia.com/g pu", "kubernetes.io/gpu", "foo.kubernetes.io/gpu",
          "example.com/" + std::string(64, 'a'), "nvidia..com/gpu", "nvidia.com-/gpu",
          "-nvidia.com/gpu", "nvidia_com/gpu", "requests.example.com/gpu",
          std::string(60, 'a') + "." + std::string(60, 'b') + "." + std::string(60, 'c') + "." +
              std::string(60, 'd') + "/gpu"}) {
        CAPTURE(invalid);
        CHECK(resourceNameError(invalid).has_value());
    }
}

TEST_CASE("a plugin registers, is called back, and its device updates are recorded")
{
    TempDir dir;
    TestKubelet kubelet(dir.path());
    std::mutex hookMutex;
    std::vector<std::string> hookResources;
    kubelet.onUpdate([&](const std::string& resource, const TestKubelet::Update&) {
        std::lock_guard lock(hookMutex);
        hookResources.push_back(resource);
    });
    kubelet.start();
    CHECK(fs::is_socket(dir / "kubelet.sock"));

    FakePlugin plugin(dir / "kvgpu-t4.sock", kTwoGpus, {.preferredAllocation = true});
    plugin.serve();
    REQUIRE(plugin.registerWith(kubelet, kResource).ok());
    // The kubelet has called the plugin back before Register returned.
    CHECK(plugin.optionsCalls() == 1);
    CHECK(kubelet.isRegistered(kResource));

    auto registrations = kubelet.registrations();
    REQUIRE(registrations.size() == 1);
    CHECK(registrations[0].resource == kResource);
    CHECK(registrations[0].endpoint == "kvgpu-t4.sock");
    CHECK(registrations[0].version == "v1beta1");
    CHECK(registrations[0].preferredAllocation);
    CHECK_FALSE(registrations[0].preStartRequired);
    CHECK(registrations[0].generation == 0);

    REQUIRE(kubelet.waitFor([](const TestKubelet& k) { return k.latest(kResource).has_value(); },
                            kWait));
    CHECK(*kubelet.latest(kResource) == kTwoGpus);
    CHECK(kubelet.openStreams() == 1);

    plugin.setDevices({{"0000:65:00.0", "Unhealthy", {0}}, {"0000:66:00.0", "Healthy", {}}});
    REQUIRE(kubelet.waitFor(
        [](const TestKubelet& k) { return k.latest(kResource)->at(0).health == "Unhealthy"; },
        kWait));
    auto updates = kubelet.updates(kResource);
    REQUIRE(updates.size() == 2);
    CHECK(updates[0].stream == updates[1].stream);
    CHECK(updates[0].at <= updates[1].at);
    // The hook runs right after the update is recorded, so it may lag slightly.
    CHECK(eventually([&] {
        std::lock_guard lock(hookMutex);
        return hookResources.size() == 2;
    }));
    {
        std::lock_guard lock(hookMutex);
        CHECK(hookResources == std::vector<std::string>{kResource, kResource});
    }
    CHECK(kubelet.endedStreams(kResource) == 0);
    CHECK(kubelet.updates("other.com/gpu").empty());
    CHECK_FALSE(kubelet.latest("other.com/gpu").has_value());
}

TEST_CASE("Register is refused where the real kubelet refuses it")
{
    TempDir dir;
    TestKubelet kubelet(dir.path());
    kubelet.start();
    FakePlugin plugin(dir / "p.sock", kTwoGpus);
    plugin.serve();

    grpc::Status status = plugin.registerWith(kubelet, kResource, "v1beta2");
    CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(status.error_message().find("v1beta2") != std::string::npos);

    status = plugin.registerWith(kubelet, "nvidia.com/TU104GL TESLA T4");
    CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(status.error_message().find("invalid resource name") != std::string::npos);

    status = plugin.registerWith(kubelet, "kubernetes.io/gpu");
    CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);

    SUBCASE("a plugin that is not serving cannot register")
    {
        FakePlugin absent(dir / "absent.sock", kTwoGpus);
        status = absent.registerWith(kubelet, kResource);
        CHECK(status.error_code() == grpc::StatusCode::UNAVAILABLE);
        CHECK(status.error_message().find("GetDevicePluginOptions") != std::string::npos);
        CHECK(kubelet.rejections().size() == 4);
    }
    SUBCASE("a plugin that cannot answer while its Register is pending cannot register")
    {
        kubelet.setDialTimeout(300ms);
        plugin.blockOptions(true);
        status = plugin.registerWith(kubelet, kResource);
        CHECK(status.error_code() == grpc::StatusCode::UNAVAILABLE);
        CHECK(status.error_message().find("DEADLINE_EXCEEDED") != std::string::npos);
        plugin.blockOptions(false);
    }
    CHECK(kubelet.registrations().empty());
    CHECK(kubelet.openStreams() == 0);
    CHECK(plugin.streamsOpened() == 0);
    auto rejections = kubelet.rejections();
    REQUIRE(rejections.size() == 4);
    CHECK(rejections[0].code == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(rejections[0].version == "v1beta2");
}

TEST_CASE("the newest registration of a resource replaces the older one")
{
    TempDir dir;
    TestKubelet kubelet(dir.path());
    kubelet.start();
    FakePlugin older(dir / "a.sock", {{"old", "Healthy", {}}});
    FakePlugin newer(dir / "b.sock", {{"new", "Healthy", {}}});
    older.serve();
    newer.serve();

    REQUIRE(older.registerWith(kubelet, kResource).ok());
    REQUIRE(kubelet.waitFor([](const TestKubelet& k) { return k.latest(kResource).has_value(); },
                            kWait));
    REQUIRE(newer.registerWith(kubelet, kResource).ok());
    // The older stream was cancelled before Register of the newer one returned.
    CHECK(eventually([&] { return older.streamsCancelled() == 1; }));
    REQUIRE(kubelet.waitFor(
        [](const TestKubelet& k) { return k.latest(kResource)->at(0).id == "new"; }, kWait));

    CHECK(kubelet.openStreams() == 1);
    CHECK(kubelet.endedStreams(kResource) == 0);
    CHECK(kubelet.registrations().size() == 2);
    auto updates = kubelet.updates(kResource);
    REQUIRE(updates.size() == 2);
    CHECK(updates[0].stream != updates[1].stream);

    v1beta1::AllocateResponse response;
    CHECK(kubelet.allocate(kResource, {{"new"}}, &response).ok());
    CHECK(newer.allocateCalls() == 1);
    CHECK(older.allocateCalls() == 0);
}

TEST_CASE("a stream the plugin ends is recorded and never redialled")
{
    TempDir dir;
    TestKubelet kubelet(dir.path());
    std::mutex endedMutex;
    std::vector<grpc::StatusCode> endedCodes;
    std::vector<std::string> endedResources;
    kubelet.onStreamEnded([&](const std::string& resource, int, const grpc::Status& status) {
        std::lock_guard lock(endedMutex);
        endedResources.push_back(resource);
        endedCodes.push_back(status.error_code());
    });
    kubelet.start();
    FakePlugin plugin(dir / "p.sock", kTwoGpus);
    plugin.serve();
    REQUIRE(plugin.registerWith(kubelet, kResource).ok());
    REQUIRE(kubelet.waitFor([](const TestKubelet& k) { return k.latest(kResource).has_value(); },
                            kWait));

    plugin.endStreams();
    REQUIRE(kubelet.waitFor([](const TestKubelet& k) { return k.endedStreams(kResource) == 1; },
                            kWait));
    CHECK(kubelet.openStreams() == 0);
    std::this_thread::sleep_for(100ms);
    CHECK(plugin.streamsOpened() == 1);
    CHECK(eventually([&] {
        std::lock_guard lock(endedMutex);
        return endedCodes.size() == 1;
    }));
    std::lock_guard lock(endedMutex);
    CHECK(endedCodes == std::vector<grpc::StatusCode>{grpc::StatusCode::OK});
    CHECK(endedResources == std::vector<std::string>{kResource});
}

TEST_CASE("a kubelet restart deletes the sockets and forgets the registrations")
{
    TempDir dir;
    { std::ofstream(dir / "kubelet_internal_checkpoint") << "{}"; }
    fs::create_directory(dir / "subdir");
    TestKubelet kubelet(dir.path());
    kubelet.start();
    auto plugin = std::make_unique<FakePlugin>(dir / "p.sock", kTwoGpus);
    plugin->serve();
    REQUIRE(plugin->registerWith(kubelet, kResource).ok());
    REQUIRE(kubelet.waitFor([](const TestKubelet& k) { return k.latest(kResource).has_value(); },
                            kWait));

    kubelet.restart();
    CHECK(kubelet.restarts() == 1);
    CHECK_FALSE(fs::exists(dir / "p.sock"));
    CHECK(fs::is_regular_file(dir / "kubelet_internal_checkpoint"));
    CHECK(fs::is_directory(dir / "subdir"));
    CHECK(fs::is_socket(dir / "kubelet.sock"));
    CHECK(eventually([&] { return plugin->streamsCancelled() == 1; }));
    CHECK_FALSE(kubelet.isRegistered(kResource));
    CHECK(kubelet.openStreams() == 0);
    CHECK(kubelet.endedStreams(kResource) == 0);
    v1beta1::AllocateResponse response;
    CHECK(kubelet.allocate(kResource, {{"0000:65:00.0"}}, &response).error_code() ==
          grpc::StatusCode::FAILED_PRECONDITION);

    // The plugin notices, serves a fresh socket and registers again.
    plugin = std::make_unique<FakePlugin>(dir / "p.sock", kTwoGpus);
    plugin->serve();
    REQUIRE(plugin->registerWith(kubelet, kResource).ok());
    auto registrations = kubelet.registrations();
    REQUIRE(registrations.size() == 2);
    CHECK(registrations[1].generation == 1);
    REQUIRE(kubelet.waitFor(
        [](const TestKubelet& k) { return k.updates(kResource).size() == 2; }, kWait));
    CHECK(kubelet.openStreams() == 1);
}

TEST_CASE("a stopped kubelet leaves kubelet.sock behind, refusing connections, until it starts again")
{
    // As the real kubelet does when stopped (checked on the cluster bench):
    // a plugin started while it is down finds a socket file it cannot reach.
    TempDir dir;
    TestKubelet kubelet(dir.path());
    kubelet.start();
    kubelet.stop();
    REQUIRE(fs::is_socket(dir / "kubelet.sock"));
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    const std::string path = dir / "kubelet.sock";
    path.copy(address.sun_path, path.size());
    CHECK(::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == -1);
    CHECK(errno == ECONNREFUSED);
    ::close(fd);

    kubelet.start();
    FakePlugin plugin(dir / "p.sock", kTwoGpus);
    plugin.serve();
    CHECK(plugin.registerWith(kubelet, kResource).ok());
}

TEST_CASE("actions reach the registered plugin as the kubelet would send them")
{
    TempDir dir;
    TestKubelet kubelet(dir.path());
    kubelet.start();
    v1beta1::AllocateResponse response;

    CHECK(kubelet.allocate(kResource, {{"0000:65:00.0"}}, &response).error_code() ==
          grpc::StatusCode::FAILED_PRECONDITION);

    FakePlugin plain(dir / "plain.sock", kTwoGpus);
    plain.serve();
    REQUIRE(plain.registerWith(kubelet, kResource).ok());

    grpc::Status status =
        kubelet.allocate(kResource, {{"0000:65:00.0", "0000:66:00.0"}, {"x"}}, &response);
    REQUIRE(status.ok());
    REQUIRE(response.container_responses_size() == 2);
    CHECK(response.container_responses(0).envs().at("FAKE_DEVICES") ==
          "0000:65:00.0,0000:66:00.0");
    CHECK(response.container_responses(0).devices_size() == 2);

    status = kubelet.allocate(kResource, {{"unknown"}}, &response);
    CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(status.error_message() == "device unknown does not exist");

    plain.answerAllocateEmpty(true);
    CHECK(kubelet.allocate(kResource, {{"0000:65:00.0"}}, &response).error_code() ==
          grpc::StatusCode::INTERNAL);

    std::vector<std::string> preferred;
    CHECK(kubelet.preferredAllocation(kResource, {"a", "b"}, {}, 1, &preferred).error_code() ==
          grpc::StatusCode::FAILED_PRECONDITION);
    CHECK(kubelet.preStart(kResource, {"a"}).error_code() ==
          grpc::StatusCode::FAILED_PRECONDITION);

    const std::string other = "example.com/gpu";
    FakePlugin capable(dir / "capable.sock", kTwoGpus,
                       {.preferredAllocation = true, .preStartRequired = true});
    capable.serve();
    REQUIRE(capable.registerWith(kubelet, other).ok());
    REQUIRE(kubelet.preferredAllocation(other, {"a", "b", "c"}, {"c"}, 2, &preferred).ok());
    CHECK(preferred == std::vector<std::string>{"c", "a"});
    REQUIRE(kubelet.preStart(other, {"a", "b"}).ok());
    CHECK(capable.preStarted() == std::vector<std::string>{"a", "b"});
}

TEST_CASE("waitFor gives up at its timeout")
{
    TempDir dir;
    TestKubelet kubelet(dir.path());
    const auto before = std::chrono::steady_clock::now();
    CHECK_FALSE(kubelet.waitFor([](const TestKubelet&) { return false; }, 50ms));
    CHECK(std::chrono::steady_clock::now() - before >= 50ms);
    CHECK(kubelet.waitFor([](const TestKubelet&) { return true; }, 0ms));
}

TEST_CASE("destroying the kubelet cancels its streams and removes its socket")
{
    TempDir dir;
    FakePlugin plugin(dir / "p.sock", kTwoGpus);
    plugin.serve();
    {
        TestKubelet kubelet(dir.path());
        kubelet.start();
        REQUIRE(plugin.registerWith(kubelet, kResource).ok());
        // Wait until the plugin itself serves the stream, so the cancellation
        // has a call to reach.
        REQUIRE(eventually([&] { return plugin.streamsActive() == 1; }));
    }
    CHECK_FALSE(fs::exists(dir / "kubelet.sock"));
    CHECK(eventually([&] { return plugin.streamsCancelled() == 1; }));
    CHECK(eventually([&] { return plugin.streamsActive() == 0; }));
}
