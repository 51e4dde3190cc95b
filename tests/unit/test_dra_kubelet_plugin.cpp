// The DRA kubelet plugin as the kubelet sees it: a client on the registration
// socket and on dra.sock, in a temporary directory, calling GetInfo,
// NotifyRegistrationStatus, NodePrepareResources / NodeUnprepareResources
// (v1 and v1beta1) and NodeWatchResources, while a fake driver stands behind
// the ClaimHandler interface.
#include "dra/kubelet_plugin.h"

#include "dra_health_v1alpha1.grpc.pb.h"
#include "dra_v1.grpc.pb.h"
#include "dra_v1beta1.grpc.pb.h"
#include "pluginregistration.grpc.pb.h"
#include "temp_tree.h"
#include "timeouts.h"

#include <doctest/doctest.h>
#include <fmt/ranges.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace kvgpu;
using namespace kvgpu::dra;
using namespace std::chrono_literals;
namespace drav1 = k8s::io::kubelet::pkg::apis::dra::v1;
namespace drav1beta1 = k8s::io::kubelet::pkg::apis::dra::v1beta1;

namespace {

const std::string kDriver = "gpu-vm.example.com";

// A driver behind the ClaimHandler interface: answers from its tables,
// records what it was asked, can hold calls (like a slow API server), and
// notices when two calls overlap.
class FakeDriver final : public ClaimHandler {
public:
    // What prepare answers, by claim UID; a UID not listed is not answered.
    std::map<std::string, ClaimOutcome> outcomes;
    // What unprepare answers, by claim UID; a UID not listed is not answered.
    std::map<std::string, std::string> unprepareErrors;
    // How long each call keeps the handler busy.
    std::chrono::milliseconds busyFor{0};

    std::map<std::string, ClaimOutcome> prepare(const std::vector<ClaimRef> &claims) override
    {
        enter(prepared_, claims);
        std::map<std::string, ClaimOutcome> out;
        for (const ClaimRef &claim : claims)
            if (auto it = outcomes.find(claim.uid); it != outcomes.end())
                out.insert(*it);
        leave();
        return out;
    }

    std::map<std::string, std::string> unprepare(const std::vector<ClaimRef> &claims) override
    {
        enter(unprepared_, claims);
        std::map<std::string, std::string> out;
        for (const ClaimRef &claim : claims)
            if (auto it = unprepareErrors.find(claim.uid); it != unprepareErrors.end())
                out.insert(*it);
        leave();
        return out;
    }

    // Calls from now on wait in the handler until release().
    void hold()
    {
        std::lock_guard lock(mutex_);
        held_ = true;
    }
    void release()
    {
        std::lock_guard lock(mutex_);
        held_ = false;
        changed_.notify_all();
    }
    bool waitUntilEntered(int calls)
    {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, test::scaled(5s), [&] { return entered_ >= calls; });
    }

    std::vector<std::vector<ClaimRef>> prepared() const
    {
        std::lock_guard lock(mutex_);
        return prepared_;
    }
    std::vector<std::vector<ClaimRef>> unprepared() const
    {
        std::lock_guard lock(mutex_);
        return unprepared_;
    }
    int mostAtOnce() const
    {
        std::lock_guard lock(mutex_);
        return mostAtOnce_;
    }

private:
    void enter(std::vector<std::vector<ClaimRef>> &log, const std::vector<ClaimRef> &claims)
    {
        std::unique_lock lock(mutex_);
        log.push_back(claims);
        ++entered_;
        mostAtOnce_ = std::max(mostAtOnce_, ++active_);
        changed_.notify_all();
        changed_.wait(lock, [&] { return !held_; });
        lock.unlock();
        std::this_thread::sleep_for(busyFor);
    }
    void leave()
    {
        std::lock_guard lock(mutex_);
        --active_;
    }

    mutable std::mutex mutex_;
    std::condition_variable changed_;
    bool held_ = false;
    int entered_ = 0;
    int active_ = 0;
    int mostAtOnce_ = 0;
    std::vector<std::vector<ClaimRef>> prepared_;
    std::vector<std::vector<ClaimRef>> unprepared_;
};

template <typename Response>
std::map<std::string, ClaimOutcome> outcomesOf(const Response &response)
{
    std::map<std::string, ClaimOutcome> out;
    for (const auto &[uid, claim] : response.claims()) {
        ClaimOutcome &outcome = out[uid];
        outcome.error = claim.error();
        for (const auto &device : claim.devices())
            outcome.devices.push_back({{device.request_names().begin(), device.request_names().end()},
                                       device.pool_name(),
                                       device.device_name(),
                                       {device.cdi_device_ids().begin(), device.cdi_device_ids().end()}});
    }
    return out;
}

template <typename Response>
std::map<std::string, std::string> errorsOf(const Response &response)
{
    std::map<std::string, std::string> out;
    for (const auto &[uid, claim] : response.claims())
        out[uid] = claim.error();
    return out;
}

template <typename Request>
Request requestFor(const std::vector<ClaimRef> &claims)
{
    Request request;
    for (const ClaimRef &claim : claims) {
        auto *c = request.add_claims();
        c->set_namespace_(claim.ns);
        c->set_uid(claim.uid);
        c->set_name(claim.name);
    }
    return request;
}

std::chrono::system_clock::time_point deadlineIn(std::chrono::milliseconds bound)
{
    return std::chrono::system_clock::now() + test::scaled(bound);
}

std::shared_ptr<grpc::Channel> dial(const std::string &socket)
{
    return grpc::CreateChannel("unix:" + socket, grpc::InsecureChannelCredentials());
}

template <typename Answer>
struct Reply {
    grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
    Answer claims;
};

// The kubelet's side of both sockets.
class Kubelet {
public:
    explicit Kubelet(const KubeletPlugin &plugin)
        : registration_(pluginregistration::Registration::NewStub(dial(plugin.registrationSocketPath()))),
          v1_(drav1::DRAPlugin::NewStub(dial(plugin.draSocketPath()))),
          v1beta1_(drav1beta1::DRAPlugin::NewStub(dial(plugin.draSocketPath()))),
          health_(v1alpha1::DRAResourceHealth::NewStub(dial(plugin.draSocketPath())))
    {
    }

    // With the kubelet's own deadline for GetInfo: 1 s.
    std::optional<pluginregistration::PluginInfo> getInfo()
    {
        grpc::ClientContext context;
        context.set_deadline(deadlineIn(1s));
        pluginregistration::PluginInfo info;
        if (!registration_->GetInfo(&context, {}, &info).ok())
            return std::nullopt;
        return info;
    }

    bool notifyRegistration(bool registered, const std::string &error = "")
    {
        grpc::ClientContext context;
        context.set_deadline(deadlineIn(5s));
        pluginregistration::RegistrationStatus status;
        status.set_plugin_registered(registered);
        status.set_error(error);
        pluginregistration::RegistrationStatusResponse response;
        return registration_->NotifyRegistrationStatus(&context, status, &response).ok();
    }

    Reply<std::map<std::string, ClaimOutcome>> prepareV1(const std::vector<ClaimRef> &claims,
                                                          drav1::NodePrepareResourcesResponse *raw = nullptr)
    {
        grpc::ClientContext context;
        context.set_deadline(deadlineIn(45s));
        drav1::NodePrepareResourcesResponse response;
        grpc::Status status = v1_->NodePrepareResources(
            &context, requestFor<drav1::NodePrepareResourcesRequest>(claims), &response);
        if (raw)
            *raw = response;
        return {status.error_code(), outcomesOf(response)};
    }

    Reply<std::map<std::string, ClaimOutcome>> prepareV1beta1(const std::vector<ClaimRef> &claims)
    {
        grpc::ClientContext context;
        context.set_deadline(deadlineIn(45s));
        drav1beta1::NodePrepareResourcesResponse response;
        grpc::Status status = v1beta1_->NodePrepareResources(
            &context, requestFor<drav1beta1::NodePrepareResourcesRequest>(claims), &response);
        return {status.error_code(), outcomesOf(response)};
    }

    Reply<std::map<std::string, std::string>> unprepareV1(const std::vector<ClaimRef> &claims)
    {
        grpc::ClientContext context;
        context.set_deadline(deadlineIn(45s));
        drav1::NodeUnprepareResourcesResponse response;
        grpc::Status status = v1_->NodeUnprepareResources(
            &context, requestFor<drav1::NodeUnprepareResourcesRequest>(claims), &response);
        return {status.error_code(), errorsOf(response)};
    }

    Reply<std::map<std::string, std::string>> unprepareV1beta1(const std::vector<ClaimRef> &claims)
    {
        grpc::ClientContext context;
        context.set_deadline(deadlineIn(45s));
        drav1beta1::NodeUnprepareResourcesResponse response;
        grpc::Status status = v1beta1_->NodeUnprepareResources(
            &context, requestFor<drav1beta1::NodeUnprepareResourcesRequest>(claims), &response);
        return {status.error_code(), errorsOf(response)};
    }

    // One NodeWatchResources stream, as the kubelet's health manager opens it.
    class HealthWatch {
    public:
        explicit HealthWatch(v1alpha1::DRAResourceHealth::Stub &stub)
        {
            context_.set_deadline(deadlineIn(20s));
            reader_ = stub.NodeWatchResources(&context_, {});
        }
        // The next message, or nullopt when the stream ended.
        std::optional<v1alpha1::NodeWatchResourcesResponse> next()
        {
            v1alpha1::NodeWatchResourcesResponse message;
            if (!reader_->Read(&message))
                return std::nullopt;
            return message;
        }
        grpc::StatusCode finish() { return reader_->Finish().error_code(); }

    private:
        grpc::ClientContext context_;
        std::unique_ptr<grpc::ClientReader<v1alpha1::NodeWatchResourcesResponse>> reader_;
    };
    std::unique_ptr<HealthWatch> watchHealth() { return std::make_unique<HealthWatch>(*health_); }

private:
    std::unique_ptr<pluginregistration::Registration::Stub> registration_;
    std::unique_ptr<drav1::DRAPlugin::Stub> v1_;
    std::unique_ptr<drav1beta1::DRAPlugin::Stub> v1beta1_;
    std::unique_ptr<v1alpha1::DRAResourceHealth::Stub> health_;
};

// A node's kubelet directories under a temporary root.
struct Node {
    test::TempTree tree;
    std::string pluginDir() const { return tree.path("plugins/" + kDriver); }
    std::string registryDir() const { return tree.path("plugins_registry"); }
    std::string draSocket() const { return pluginDir() + "/dra.sock"; }
    std::string registrationSocket() const { return registryDir() + "/" + kDriver + "-reg.sock"; }

    KubeletPluginOptions options() const
    {
        KubeletPluginOptions options;
        options.driverName = kDriver;
        options.pluginDir = pluginDir();
        options.registryDir = registryDir();
        return options;
    }

    std::unique_ptr<KubeletPlugin> start(ClaimHandler &driver, KubeletPluginOptions options)
    {
        auto plugin = KubeletPlugin::start(options, driver);
        REQUIRE_MESSAGE(plugin, plugin.error());
        return std::move(plugin).value();
    }
    std::unique_ptr<KubeletPlugin> start(ClaimHandler &driver) { return start(driver, options()); }

    // A socket file left behind by a process that died.
    void leaveStaleSocket(const std::string &path)
    {
        std::filesystem::create_directories(std::filesystem::path(path).parent_path());
        int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        path.copy(address.sun_path, sizeof(address.sun_path) - 1);
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr *>(&address), sizeof(address)) == 0);
        ::close(fd);
        REQUIRE(std::filesystem::is_socket(path));
    }
};

// The kubelet's view of its plugin directories: file creations and removals,
// in the order they happened (one inotify queue for all directories).
class DirectoryEvents {
public:
    explicit DirectoryEvents(std::initializer_list<std::string> dirs) : fd_(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC))
    {
        for (const std::string &dir : dirs) {
            std::filesystem::create_directories(dir);
            REQUIRE(::inotify_add_watch(fd_, dir.c_str(), IN_CREATE | IN_MOVED_TO | IN_DELETE) >= 0);
        }
    }
    ~DirectoryEvents() { ::close(fd_); }

    // What happened since the last call: "+name" for a creation (or a file
    // moved in, which the kubelet's watcher also sees as a creation), "-name"
    // for a removal.
    std::vector<std::string> drain()
    {
        std::vector<std::string> out;
        alignas(inotify_event) char buffer[4096];
        ssize_t n;
        while ((n = ::read(fd_, buffer, sizeof(buffer))) > 0) {
            for (char *p = buffer; p < buffer + n;) {
                auto *event = reinterpret_cast<inotify_event *>(p);
                if (event->len > 0)
                    out.push_back(std::string((event->mask & IN_DELETE) ? "-" : "+") + event->name);
                p += sizeof(inotify_event) + event->len;
            }
        }
        return out;
    }

private:
    int fd_;
};

std::ptrdiff_t positionOf(const std::vector<std::string> &events, const std::string &event)
{
    auto it = std::find(events.begin(), events.end(), event);
    return it == events.end() ? -1 : it - events.begin();
}

// A pod "vm1" with two claims: one the driver prepares, one it cannot.
const ClaimRef kGpuClaim{"vms", "0d5f7c2e-uid-a", "vm1-gpu-x7k2q"};
const ClaimRef kBrokenClaim{"vms", "9a1b3c4d-uid-b", "vm1-gpu2-p8r4t"};

void answerVm1(FakeDriver &driver)
{
    driver.outcomes[kGpuClaim.uid] = {
        {{{"vgpu"}, "node-a", "pci-0000-65-00-0", {"gpu-vm.example.com/claim=0d5f7c2e-uid-a-pci-0000-65-00-0"}}},
        ""};
    driver.outcomes[kBrokenClaim.uid] = {{}, "device pci-0000-66-00-0 is not bound to vfio-pci (driver: nvidia)"};
}

std::vector<DeviceHealthEntry> twoGpus(DeviceHealthEntry::Health second)
{
    return {{"node-a", "pci-0000-65-00-0", DeviceHealthEntry::Healthy, "", 1764680000},
            {"node-a", "pci-0000-66-00-0", second, second == DeviceHealthEntry::Unhealthy ? "Xid 79: fallen off the bus" : "",
             1764680001}};
}

std::vector<std::pair<std::string, v1alpha1::HealthStatus>> healthOf(const v1alpha1::NodeWatchResourcesResponse &message)
{
    std::vector<std::pair<std::string, v1alpha1::HealthStatus>> out;
    for (const auto &device : message.devices())
        out.emplace_back(device.device().pool_name() + "/" + device.device().device_name(), device.health());
    return out;
}

} // namespace

TEST_CASE("GetInfo names the driver, the absolute dra.sock path and the three services, v1 first")
{
    Node node; // the kubelet directories do not exist yet: the plugin creates them
    FakeDriver driver;
    auto plugin = node.start(driver);
    CHECK(plugin->draSocketPath() == node.draSocket());
    CHECK(plugin->registrationSocketPath() == node.registrationSocket());

    Kubelet kubelet(*plugin);
    auto info = kubelet.getInfo();
    REQUIRE(info);
    CHECK(info->type() == "DRAPlugin");
    CHECK(info->name() == kDriver);
    CHECK(info->endpoint() == node.draSocket());
    CHECK(info->endpoint().front() == '/');
    std::vector<std::string> versions(info->supported_versions().begin(), info->supported_versions().end());
    CHECK(versions == std::vector<std::string>{"v1.DRAPlugin", "v1beta1.DRAPlugin", "v1alpha1.DRAResourceHealth"});
}

TEST_CASE("dra.sock is served before the registration socket appears")
{
    Node node;
    DirectoryEvents events({node.pluginDir(), node.registryDir()});
    FakeDriver driver;
    auto plugin = node.start(driver);

    auto created = events.drain();
    INFO("events: ", fmt::format("{}", fmt::join(created, " ")));
    auto dra = positionOf(created, "+dra.sock");
    auto registration = positionOf(created, "+" + kDriver + "-reg.sock");
    REQUIRE(dra >= 0);
    REQUIRE(registration >= 0);
    CHECK(dra < registration);

    // And the endpoint GetInfo names answers calls.
    Kubelet kubelet(*plugin);
    CHECK(kubelet.prepareV1({}).code == grpc::StatusCode::OK);
}

TEST_CASE("NotifyRegistrationStatus is recorded and reported to the owner")
{
    Node node;
    FakeDriver driver;
    std::mutex mutex;
    std::vector<std::pair<bool, std::string>> reports;
    KubeletPluginOptions options = node.options();
    options.registrationChanged = [&](bool registered, const std::string &error) {
        std::lock_guard lock(mutex);
        reports.emplace_back(registered, error);
    };
    auto plugin = node.start(driver, options);
    Kubelet kubelet(*plugin);
    CHECK_FALSE(plugin->registered());

    REQUIRE(kubelet.notifyRegistration(true));
    CHECK(plugin->registered());
    REQUIRE(kubelet.notifyRegistration(false, "endpoint already registered for driver"));
    CHECK_FALSE(plugin->registered());

    std::lock_guard lock(mutex);
    CHECK(reports == std::vector<std::pair<bool, std::string>>{{true, ""},
                                                               {false, "endpoint already registered for driver"}});
}

TEST_CASE("a prepare via v1 and via v1beta1 reaches the driver with the same claims and returns its answers by UID")
{
    Node node;
    FakeDriver driver;
    answerVm1(driver);
    auto plugin = node.start(driver);
    Kubelet kubelet(*plugin);

    drav1::NodePrepareResourcesResponse raw;
    auto v1 = kubelet.prepareV1({kGpuClaim, kBrokenClaim}, &raw);
    auto v1beta1 = kubelet.prepareV1beta1({kGpuClaim, kBrokenClaim});

    CHECK(v1.code == grpc::StatusCode::OK);
    CHECK(v1beta1.code == grpc::StatusCode::OK);
    CHECK(v1.claims == driver.outcomes);
    CHECK(v1beta1.claims == driver.outcomes);
    CHECK_FALSE(raw.claims().at(kGpuClaim.uid).devices(0).has_share_id());
    CHECK(driver.prepared() == std::vector<std::vector<ClaimRef>>{{kGpuClaim, kBrokenClaim}, {kGpuClaim, kBrokenClaim}});
}

TEST_CASE("a claim the driver does not answer gets an error, the others their answers")
{
    Node node;
    FakeDriver driver;
    answerVm1(driver);
    driver.unprepareErrors[kGpuClaim.uid] = "";
    auto plugin = node.start(driver);
    Kubelet kubelet(*plugin);
    const ClaimRef forgotten{"vms", "5e6f7a8b-uid-c", "vm1-gpu3-z9w1q"};

    auto prepared = kubelet.prepareV1({kGpuClaim, forgotten});
    CHECK(prepared.code == grpc::StatusCode::OK);
    REQUIRE(prepared.claims.size() == 2);
    CHECK(prepared.claims[kGpuClaim.uid] == driver.outcomes[kGpuClaim.uid]);
    CHECK(prepared.claims[forgotten.uid].error.find("not answered") != std::string::npos);
    CHECK(prepared.claims[forgotten.uid].devices.empty());

    auto unprepared = kubelet.unprepareV1({kGpuClaim, forgotten});
    CHECK(unprepared.code == grpc::StatusCode::OK);
    REQUIRE(unprepared.claims.size() == 2);
    CHECK(unprepared.claims[kGpuClaim.uid].empty());
    CHECK(unprepared.claims[forgotten.uid].find("not answered") != std::string::npos);
}

TEST_CASE("unprepare via v1 and v1beta1 returns the driver's per-claim errors by UID")
{
    Node node;
    FakeDriver driver;
    driver.unprepareErrors[kGpuClaim.uid] = "";
    driver.unprepareErrors[kBrokenClaim.uid] = "cannot remove /var/run/cdi/gpu-vm.example.com-claim_9a1b3c4d-uid-b.json: read-only file system";
    auto plugin = node.start(driver);
    Kubelet kubelet(*plugin);

    auto v1 = kubelet.unprepareV1({kGpuClaim, kBrokenClaim});
    auto v1beta1 = kubelet.unprepareV1beta1({kBrokenClaim});

    CHECK(v1.code == grpc::StatusCode::OK);
    CHECK(v1.claims == driver.unprepareErrors);
    CHECK(v1beta1.code == grpc::StatusCode::OK);
    CHECK(v1beta1.claims == std::map<std::string, std::string>{{kBrokenClaim.uid, driver.unprepareErrors[kBrokenClaim.uid]}});
    CHECK(driver.unprepared() == std::vector<std::vector<ClaimRef>>{{kGpuClaim, kBrokenClaim}, {kBrokenClaim}});
    CHECK(driver.prepared().empty());
}

TEST_CASE("prepares and unprepares of several pods reach the driver one at a time")
{
    Node node;
    FakeDriver driver;
    answerVm1(driver);
    driver.unprepareErrors[kGpuClaim.uid] = "";
    // Each call keeps the driver busy as an API-server read would: calls that
    // were not serialized would overlap.
    driver.busyFor = 50ms;
    auto plugin = node.start(driver);
    Kubelet kubelet(*plugin);

    constexpr int kPods = 6;
    std::vector<grpc::StatusCode> codes(kPods, grpc::StatusCode::UNKNOWN);
    std::vector<std::thread> pods;
    for (int i = 0; i < kPods; ++i)
        pods.emplace_back([&, i] {
            codes[static_cast<std::size_t>(i)] =
                i % 3 == 0 ? kubelet.unprepareV1({kGpuClaim}).code
                           : (i % 2 ? kubelet.prepareV1({kGpuClaim}).code : kubelet.prepareV1beta1({kGpuClaim}).code);
        });
    for (std::thread &pod : pods)
        pod.join();

    CHECK(std::all_of(codes.begin(), codes.end(), [](auto code) { return code == grpc::StatusCode::OK; }));
    CHECK(driver.prepared().size() + driver.unprepared().size() == kPods);
    CHECK(driver.mostAtOnce() == 1);
}

TEST_CASE("GetInfo answers within the kubelet's 1 s while a prepare waits in the driver")
{
    Node node;
    FakeDriver driver;
    answerVm1(driver);
    driver.hold();
    auto plugin = node.start(driver);
    Kubelet kubelet(*plugin);

    Reply<std::map<std::string, ClaimOutcome>> prepared;
    std::thread pod([&] { prepared = kubelet.prepareV1({kGpuClaim}); });
    REQUIRE(driver.waitUntilEntered(1));

    auto before = std::chrono::steady_clock::now();
    auto info = kubelet.getInfo(); // with a 1 s deadline
    CHECK(info);
    CHECK(std::chrono::steady_clock::now() - before < test::scaled(1s));
    CHECK(kubelet.notifyRegistration(true));

    driver.release();
    pod.join();
    CHECK(prepared.code == grpc::StatusCode::OK);
    CHECK(prepared.claims[kGpuClaim.uid] == driver.outcomes[kGpuClaim.uid]);
}

TEST_CASE("a health stream gets the whole list at once, again after setHealth, and again when nothing changed")
{
    Node node;
    FakeDriver driver;
    KubeletPluginOptions options = node.options();
    options.healthResendInterval = 300ms;
    auto plugin = node.start(driver, options);
    plugin->setHealth(twoGpus(DeviceHealthEntry::Healthy));
    Kubelet kubelet(*plugin);

    auto watch = kubelet.watchHealth();
    auto first = watch->next();
    REQUIRE(first);
    using Seen = std::vector<std::pair<std::string, v1alpha1::HealthStatus>>;
    CHECK(healthOf(*first) == Seen{{"node-a/pci-0000-65-00-0", v1alpha1::HEALTHY}, {"node-a/pci-0000-66-00-0", v1alpha1::HEALTHY}});
    CHECK(first->devices(0).last_updated_time() == 1764680000);

    plugin->setHealth(twoGpus(DeviceHealthEntry::Unhealthy));
    // The resend of the old list may come first; the new list follows at once.
    std::optional<v1alpha1::NodeWatchResourcesResponse> update;
    do
        update = watch->next();
    while (update && update->devices(1).health() == v1alpha1::HEALTHY);
    REQUIRE(update);
    CHECK(healthOf(*update) == Seen{{"node-a/pci-0000-65-00-0", v1alpha1::HEALTHY}, {"node-a/pci-0000-66-00-0", v1alpha1::UNHEALTHY}});
    CHECK(update->devices(1).message() == "Xid 79: fallen off the bus");

    // Nothing changes: the kubelet still hears the full list within the interval.
    auto resent = watch->next();
    REQUIRE(resent);
    CHECK(healthOf(*resent) == healthOf(*update));
}

TEST_CASE("a long health message is cut to 1024 bytes on a character boundary")
{
    Node node;
    FakeDriver driver;
    auto plugin = node.start(driver);
    std::string text = "x";
    for (int i = 0; i < 1000; ++i)
        text += "\xc3\xa9"; // é, two bytes
    plugin->setHealth({{"node-a", "pci-0000-65-00-0", DeviceHealthEntry::Unhealthy, text, 1}});
    Kubelet kubelet(*plugin);

    auto watch = kubelet.watchHealth();
    auto message = watch->next();
    REQUIRE(message);
    const std::string &sent = message->devices(0).message();
    CHECK(sent.size() == 1023);
    CHECK(sent == text.substr(0, 1023));
}

TEST_CASE("stop() deregisters first, then removes dra.sock, within 2 s despite an open stream and a waiting prepare")
{
    Node node;
    FakeDriver driver;
    answerVm1(driver);
    auto plugin = node.start(driver);
    Kubelet kubelet(*plugin);
    auto watch = kubelet.watchHealth();
    REQUIRE(watch->next());
    driver.hold();
    Reply<std::map<std::string, ClaimOutcome>> prepared;
    std::thread pod([&] { prepared = kubelet.prepareV1({kGpuClaim}); });
    REQUIRE(driver.waitUntilEntered(1));
    DirectoryEvents events({node.pluginDir(), node.registryDir()});

    auto before = std::chrono::steady_clock::now();
    plugin->stop();
    CHECK(std::chrono::steady_clock::now() - before < test::scaled(2s));

    auto removed = events.drain();
    INFO("events: ", fmt::format("{}", fmt::join(removed, " ")));
    auto registration = positionOf(removed, "-" + kDriver + "-reg.sock");
    auto dra = positionOf(removed, "-dra.sock");
    REQUIRE(registration >= 0);
    REQUIRE(dra >= 0);
    CHECK(registration < dra);
    CHECK_FALSE(std::filesystem::exists(node.registrationSocket()));
    CHECK_FALSE(std::filesystem::exists(node.draSocket()));
    CHECK(std::filesystem::is_directory(node.pluginDir()));

    // The waiting prepare is failed as a whole: the kubelet retries the pod
    // with the next plugin instance, and the driver's late answer is dropped.
    pod.join();
    CHECK(prepared.code == grpc::StatusCode::UNAVAILABLE);
    CHECK_FALSE(watch->next());
    CHECK(watch->finish() == grpc::StatusCode::OK);

    driver.release();
    plugin.reset(); // waits for the driver's call to return
    CHECK(driver.prepared().size() == 1);
}

TEST_CASE("stale sockets at both paths are replaced; a regular file there is refused and left alone")
{
    Node node;
    FakeDriver driver;
    answerVm1(driver);
    node.leaveStaleSocket(node.draSocket());
    node.leaveStaleSocket(node.registrationSocket());

    {
        auto plugin = node.start(driver);
        Kubelet kubelet(*plugin);
        auto info = kubelet.getInfo();
        REQUIRE(info);
        CHECK(info->name() == kDriver);
        CHECK(kubelet.prepareV1({kGpuClaim}).claims[kGpuClaim.uid] == driver.outcomes[kGpuClaim.uid]);
    }

    node.tree.write("plugins/" + kDriver + "/dra.sock", "not a socket");
    auto refused = KubeletPlugin::start(node.options(), driver);
    REQUIRE_FALSE(refused);
    CHECK(refused.error().find(node.draSocket()) != std::string::npos);
    CHECK(std::filesystem::is_regular_file(node.draSocket()));
    CHECK_FALSE(std::filesystem::exists(node.registrationSocket()));
}

TEST_CASE("in a rolling update, the old plugin's stop leaves its successor's sockets alone")
{
    Node node;
    FakeDriver oldDriver;
    FakeDriver newDriver;
    answerVm1(newDriver);
    auto old = node.start(oldDriver);
    auto successor = node.start(newDriver); // same directories: takes both paths over

    old->stop();

    CHECK(std::filesystem::is_socket(node.registrationSocket()));
    CHECK(std::filesystem::is_socket(node.draSocket()));
    Kubelet kubelet(*successor);
    auto info = kubelet.getInfo();
    REQUIRE(info);
    CHECK(info->endpoint() == node.draSocket());
    CHECK(kubelet.prepareV1({kGpuClaim}).claims[kGpuClaim.uid] == newDriver.outcomes[kGpuClaim.uid]);
    CHECK(oldDriver.prepared().empty());

    // Only the plugin's own sockets were ever in the directories.
    std::vector<std::string> names;
    for (const std::string &dir : {node.pluginDir(), node.registryDir()})
        for (const auto &entry : std::filesystem::directory_iterator(dir))
            names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    CHECK(names == std::vector<std::string>{"dra.sock", kDriver + "-reg.sock"});
}

TEST_CASE("a socket path longer than a unix socket allows is refused before anything is created")
{
    Node node;
    FakeDriver driver;
    KubeletPluginOptions options = node.options();
    options.pluginDir = node.tree.path(std::string(120, 'p'));

    auto refused = KubeletPlugin::start(options, driver);
    REQUIRE_FALSE(refused);
    CHECK(refused.error().find("dra.sock") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(options.pluginDir));
    CHECK_FALSE(std::filesystem::exists(node.registryDir()));
}

TEST_CASE("a driver that throws fails its claims, not the call, and the plugin keeps serving")
{
    struct ThrowingDriver final : ClaimHandler {
        std::map<std::string, ClaimOutcome> prepare(const std::vector<ClaimRef> &) override
        {
            throw std::runtime_error("claim cache corrupted");
        }
        std::map<std::string, std::string> unprepare(const std::vector<ClaimRef> &claims) override
        {
            return {{claims.at(0).uid, ""}};
        }
    };
    Node node;
    ThrowingDriver driver;
    auto plugin = node.start(driver);
    Kubelet kubelet(*plugin);

    auto prepared = kubelet.prepareV1({kGpuClaim, kBrokenClaim});
    CHECK(prepared.code == grpc::StatusCode::OK);
    REQUIRE(prepared.claims.size() == 2);
    CHECK(prepared.claims[kGpuClaim.uid].error.find("claim cache corrupted") != std::string::npos);
    CHECK(prepared.claims[kBrokenClaim.uid].error.find("claim cache corrupted") != std::string::npos);
    CHECK(kubelet.unprepareV1({kGpuClaim}).claims == std::map<std::string, std::string>{{kGpuClaim.uid, ""}});
}
