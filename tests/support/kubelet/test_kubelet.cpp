#include "test_kubelet.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <utility>

#include <fmt/format.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include "api.grpc.pb.h"
#include "api.pb.h"

namespace kvgpu::test {

namespace {

constexpr std::string_view kApiVersion = "v1beta1";
constexpr std::string_view kKubeletSocket = "kubelet.sock";
// sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
constexpr size_t kMaxSocketPath = 107;
// The kubelet calls Allocate without a deadline; a test should rather fail with a
// message than hang until the test runner kills it.
constexpr std::chrono::seconds kActionTimeout{30};
// The kubelet's PreStartContainer timeout.
constexpr std::chrono::seconds kPreStartTimeout{30};
constexpr std::chrono::seconds kShutdownGrace{2};

bool isLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

bool isAlnum(char c) { return isLowerAlnum(c) || (c >= 'A' && c <= 'Z'); }

std::optional<std::string> domainError(std::string_view domain)
{
    if (domain.empty())
        return "the domain part before '/' is empty";
    size_t begin = 0;
    while (begin <= domain.size()) {
        size_t end = domain.find('.', begin);
        if (end == std::string_view::npos)
            end = domain.size();
        std::string_view label = domain.substr(begin, end - begin);
        if (label.empty())
            return fmt::format("the domain \"{}\" has an empty label", domain);
        for (char c : label) {
            if (!isLowerAlnum(c) && c != '-')
                return fmt::format("the domain \"{}\" may contain only lowercase letters, digits, "
                                   "'-' and '.'",
                                   domain);
        }
        if (!isLowerAlnum(label.front()) || !isLowerAlnum(label.back()))
            return fmt::format("every label of the domain \"{}\" must start and end with a "
                               "lowercase letter or digit",
                               domain);
        begin = end + 1;
    }
    return std::nullopt;
}

std::optional<std::string> namePartError(std::string_view name)
{
    if (name.empty())
        return "the name part after '/' is empty";
    if (name.size() > 63)
        return fmt::format("the name part \"{}\" is {} characters long; at most 63 are allowed",
                           name, name.size());
    for (char c : name) {
        if (!isAlnum(c) && c != '-' && c != '_' && c != '.')
            return fmt::format("the name part \"{}\" may contain only letters, digits, '-', '_' "
                               "and '.'",
                               name);
    }
    if (!isAlnum(name.front()) || !isAlnum(name.back()))
        return fmt::format("the name part \"{}\" must start and end with a letter or digit", name);
    return std::nullopt;
}

std::shared_ptr<grpc::Channel> dialUnix(const std::string& path)
{
    grpc::ChannelArguments args;
    // Every registration gets a fresh connection, as in the kubelet. A subchannel
    // shared through gRPC's global pool could still be backing off from the
    // plugin's previous server and fail the first call for no good reason.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return grpc::CreateCustomChannel("unix://" + path, grpc::InsecureChannelCredentials(), args);
}

std::vector<TestKubelet::Device> devicesOf(const v1beta1::ListAndWatchResponse& response)
{
    std::vector<TestKubelet::Device> devices;
    devices.reserve(static_cast<size_t>(response.devices_size()));
    for (const v1beta1::Device& d : response.devices()) {
        TestKubelet::Device device{d.id(), d.health(), {}};
        if (d.has_topology()) {
            for (const v1beta1::NUMANode& node : d.topology().nodes())
                device.numaNodes.push_back(node.id());
        }
        devices.push_back(std::move(device));
    }
    return devices;
}

grpc::Status notRegistered(const std::string& resource)
{
    return {grpc::StatusCode::FAILED_PRECONDITION,
            fmt::format("no device plugin is registered for resource {}", resource)};
}

} // namespace

std::optional<std::string> resourceNameError(std::string_view name)
{
    size_t slash = name.find('/');
    if (slash == std::string_view::npos || name.find('/', slash + 1) != std::string_view::npos)
        return "an extended resource name must contain exactly one '/' (domain/name)";
    std::string_view domain = name.substr(0, slash);
    if (auto error = domainError(domain))
        return error;
    if (auto error = namePartError(name.substr(slash + 1)))
        return error;
    if (domain.ends_with("kubernetes.io"))
        return fmt::format("the domain \"{}\" is reserved for native Kubernetes resources", domain);
    if (name.starts_with("requests."))
        return "the prefix \"requests.\" is reserved for resource quota";
    constexpr size_t quotaPrefix = std::string_view("requests.").size();
    if (quotaPrefix + name.size() > 253)
        return fmt::format("the name is {} characters long; at most {} are allowed", name.size(),
                           253 - quotaPrefix);
    return std::nullopt;
}

std::string_view statusCodeName(grpc::StatusCode code)
{
    switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    default: return "UNKNOWN_CODE";
    }
}

// The Registration service only forwards to the kubelet, which owns the state.
class TestKubelet::RegistrationService final : public v1beta1::Registration::Service {
public:
    // `instance`: which start of the kubelet this server belongs to.
    RegistrationService(TestKubelet& kubelet, int instance) : kubelet_(kubelet), instance_(instance) {}

    grpc::Status Register(grpc::ServerContext*, const v1beta1::RegisterRequest* request,
                          v1beta1::Empty*) override
    {
        return kubelet_.handleRegister(request->version(), request->endpoint(),
                                       request->resource_name(), instance_);
    }

private:
    TestKubelet& kubelet_;
    const int instance_;
};

// One ListAndWatch call. The context lives here so that stop() and a newer
// registration can cancel the call from another thread.
struct TestKubelet::Stream {
    int id = 0;
    std::string resource;
    std::shared_ptr<grpc::Channel> channel;
    grpc::ClientContext context;
    std::thread thread;
    bool cancelled = false; // guarded by the kubelet's mu_
};

// The kubelet's view of one registered plugin.
struct TestKubelet::Client {
    std::string endpoint;
    std::unique_ptr<v1beta1::DevicePlugin::Stub> stub;
    bool preferredAllocation = false;
    bool preStartRequired = false;
    std::shared_ptr<Stream> stream;
};

TestKubelet::TestKubelet(std::string pluginDir)
    : pluginDir_(std::move(pluginDir))
{
}

TestKubelet::~TestKubelet()
{
    stop();
    // Test hygiene, not kubelet behaviour: a destroyed stand-in takes its
    // stale socket along.
    std::error_code ignored;
    std::filesystem::remove(socketPath(), ignored);
}

std::string TestKubelet::socketPath() const
{
    return pluginDir_ + "/" + std::string(kKubeletSocket);
}

void TestKubelet::start()
{
    std::lock_guard lifecycle(lifecycleMutex_);
    if (server_)
        return;
    const std::string path = socketPath();
    if (path.size() > kMaxSocketPath)
        throw std::runtime_error(fmt::format(
            "kubelet socket path {} is {} bytes long; unix sockets allow at most {}", path,
            path.size(), kMaxSocketPath));

    grpc::ServerBuilder builder;
    builder.AddListeningPort("unix://" + path, grpc::InsecureServerCredentials());
    {
        // Register may arrive as soon as the server starts.
        std::lock_guard lock(mu_);
        serving_ = true;
        // A service per start, so that a Register knows which instance of
        // the kubelet handles it; all are kept for the kubelet's life, as a
        // late handler of a stopped server may still run in one.
        services_.push_back(std::make_unique<RegistrationService>(*this, restarts_));
    }
    builder.RegisterService(services_.back().get());
    server_ = builder.BuildAndStart();
    if (!server_) {
        std::lock_guard lock(mu_);
        serving_ = false;
        throw std::runtime_error(fmt::format("cannot serve the kubelet socket {}", path));
    }
    std::lock_guard lock(mu_);
    notifyChanged();
}

void TestKubelet::stop() { stopServing(StaleSocket::Leave); }

void TestKubelet::stopServing(StaleSocket stale)
{
    std::lock_guard lifecycle(lifecycleMutex_);
    {
        std::lock_guard lock(mu_);
        serving_ = false;
        // A Register handler may be waiting for a plugin that never answers;
        // cancelling lets the server shut down now instead of after the timeout.
        for (grpc::ClientContext* dial : pendingDials_)
            dial->TryCancel();
    }
    if (server_) {
        server_->Shutdown(std::chrono::system_clock::now() + kShutdownGrace);
        server_.reset();
    }

    std::map<std::string, std::shared_ptr<Client>> clients;
    {
        std::lock_guard replace(registerMutex_);
        std::lock_guard lock(mu_);
        clients.swap(clients_);
    }
    for (auto& [resource, client] : clients) {
        if (client->stream)
            cancelAndJoin(client->stream);
    }

    // The real kubelet, stopped, leaves kubelet.sock behind: a socket file
    // nobody listens on (connect() is refused) until the next start deletes
    // it and serves a new one. gRPC unlinks the file at shutdown, so one is
    // bound here and closed without listening (a watcher sees a delete and a
    // create the real kubelet does not make; the end state is the real one).
    // A restart goes on at once, and the real one's start deletes the socket
    // anyway, so restart() does not make one.
    if (stale == StaleSocket::Leave)
        leaveStaleSocket();
    std::lock_guard lock(mu_);
    notifyChanged();
}

void TestKubelet::leaveStaleSocket() const
{
    const std::string path = socketPath();
    std::error_code error;
    if (std::filesystem::is_socket(path, error))
        return;
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (path.size() < sizeof address.sun_path) {
        path.copy(address.sun_path, path.size());
        (void)::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address);
    }
    ::close(fd);
}

void TestKubelet::restart()
{
    stopServing(StaleSocket::Skip);
    // Like the real kubelet (os.ReadDir, then a remove per name), the
    // directory is read whole first: a socket a plugin serves again while
    // the removal runs is not removed too.
    std::error_code error;
    std::vector<std::filesystem::path> sockets;
    for (const auto& entry : std::filesystem::directory_iterator(pluginDir_, error)) {
        std::error_code statusError;
        if (entry.is_socket(statusError))
            sockets.push_back(entry.path());
    }
    for (const auto& socket : sockets) {
        std::error_code removeError;
        std::filesystem::remove(socket, removeError);
    }
    {
        std::lock_guard lock(mu_);
        ++restarts_;
        notifyChanged();
    }
    start();
}

void TestKubelet::setDialTimeout(std::chrono::milliseconds timeout)
{
    std::lock_guard lock(mu_);
    dialTimeout_ = timeout;
}

grpc::Status TestKubelet::handleRegister(const std::string& version, const std::string& endpoint,
                                         const std::string& resource, int instance)
{
    auto refuse = [&](grpc::StatusCode code, std::string message) {
        return reject(Rejection{resource, endpoint, version, code, std::move(message),
                                std::chrono::steady_clock::now()});
    };

    if (version != kApiVersion)
        return refuse(grpc::StatusCode::INVALID_ARGUMENT,
                      fmt::format("device plugin API version \"{}\" is not supported; this "
                                  "kubelet supports {}",
                                  version, kApiVersion));
    if (auto error = resourceNameError(resource))
        return refuse(grpc::StatusCode::INVALID_ARGUMENT,
                      fmt::format("invalid resource name \"{}\": {}", resource, *error));

    const std::string path = pluginDir_ + "/" + endpoint;
    if (endpoint.empty())
        return refuse(grpc::StatusCode::UNAVAILABLE,
                      fmt::format("resource {} registered without an endpoint", resource));
    if (path.size() > kMaxSocketPath)
        return refuse(grpc::StatusCode::UNAVAILABLE,
                      fmt::format("plugin socket path {} is {} bytes long; unix sockets allow "
                                  "at most {}",
                                  path, path.size(), kMaxSocketPath));

    // Like the kubelet, call the plugin back before answering Register: a plugin
    // whose server is not yet serving, or is blocked by this very call, fails.
    std::shared_ptr<grpc::Channel> channel = dialUnix(path);
    auto stub = v1beta1::DevicePlugin::NewStub(channel);
    v1beta1::DevicePluginOptions options;
    grpc::Status dialed;
    {
        grpc::ClientContext context;
        {
            std::lock_guard lock(mu_);
            if (!serving_)
                dialed = {grpc::StatusCode::CANCELLED, "the kubelet is shutting down"};
            context.set_deadline(std::chrono::system_clock::now() + dialTimeout_);
            pendingDials_.insert(&context);
        }
        if (dialed.ok())
            dialed = stub->GetDevicePluginOptions(&context, v1beta1::Empty(), &options);
        std::lock_guard lock(mu_);
        pendingDials_.erase(&context);
    }
    if (!dialed.ok()) {
        // The instance that handles the call stopped (or was restarted,
        // wiping the plugins' sockets) before or while it called the plugin
        // back: the real kubelet's process is gone by then, and its failed
        // call is nobody's rejection.
        std::lock_guard lock(mu_);
        if (!serving_ || restarts_ != instance)
            return {grpc::StatusCode::UNAVAILABLE, "the kubelet stopped while it called the plugin back"};
    }
    if (!dialed.ok())
        return refuse(grpc::StatusCode::UNAVAILABLE,
                      fmt::format("cannot call GetDevicePluginOptions on the plugin for {} at "
                                  "{}: {}: {}",
                                  resource, path, statusCodeName(dialed.error_code()),
                                  dialed.error_message()));

    // The newest registration wins. Its stream starts only after the previous
    // one has ended, because a late end of the old stream must not be mistaken
    // for an end of the new one.
    std::lock_guard replace(registerMutex_);
    std::shared_ptr<Client> previous;
    {
        std::lock_guard lock(mu_);
        if (auto it = clients_.find(resource); it != clients_.end()) {
            previous = std::move(it->second);
            clients_.erase(it);
        }
    }
    if (previous && previous->stream)
        cancelAndJoin(previous->stream);

    Registration registration{resource,
                              endpoint,
                              version,
                              options.get_preferred_allocation_available(),
                              options.pre_start_required(),
                              std::chrono::steady_clock::now(),
                              0};
    bool accepted = false;
    RegistrationHook hook;
    {
        std::lock_guard lock(mu_);
        // stop() may have begun while the plugin was being called back.
        accepted = serving_;
        if (accepted) {
            registration.generation = restarts_;
            auto stream = std::make_shared<Stream>();
            stream->id = nextStreamId_++;
            stream->resource = resource;
            stream->channel = channel;

            auto client = std::make_shared<Client>();
            client->endpoint = endpoint;
            client->stub = std::move(stub);
            client->preferredAllocation = registration.preferredAllocation;
            client->preStartRequired = registration.preStartRequired;
            client->stream = stream;
            clients_[resource] = client;
            registrations_.push_back(registration);
            ++openStreams_;
            // The kubelet opens ListAndWatch from a goroutine started just before
            // Register returns, so the plugin must cope with either order.
            stream->thread = std::thread(&TestKubelet::runStream, this, stream);
            hook = registrationHook_;
            notifyChanged();
        }
    }
    if (!accepted)
        return refuse(grpc::StatusCode::UNAVAILABLE, "the kubelet is shutting down");
    if (hook)
        hook(registration);
    return grpc::Status::OK;
}

grpc::Status TestKubelet::reject(Rejection rejection)
{
    grpc::Status status(rejection.code, rejection.message);
    RejectionHook hook;
    {
        std::lock_guard lock(mu_);
        rejections_.push_back(rejection);
        hook = rejectionHook_;
        notifyChanged();
    }
    if (hook)
        hook(rejection);
    return status;
}

void TestKubelet::runStream(std::shared_ptr<Stream> stream)
{
    auto stub = v1beta1::DevicePlugin::NewStub(stream->channel);
    auto reader = stub->ListAndWatch(&stream->context, v1beta1::Empty());
    v1beta1::ListAndWatchResponse response;
    while (reader->Read(&response)) {
        // Stamped as soon as the message is read, before the test's own bookkeeping.
        const auto readAt = std::chrono::steady_clock::now();
        Update update{devicesOf(response), readAt, stream->id};
        UpdateHook hook;
        {
            std::lock_guard lock(mu_);
            updates_[stream->resource].push_back(update);
            hook = updateHook_;
            notifyChanged();
        }
        if (hook)
            hook(stream->resource, update);
    }
    grpc::Status status = reader->Finish();

    // The real kubelet now marks the resource's devices unhealthy and waits for
    // a new registration; it never dials the plugin again by itself.
    bool endedByPlugin = false;
    StreamEndedHook hook;
    {
        std::lock_guard lock(mu_);
        --openStreams_;
        endedByPlugin = !stream->cancelled;
        if (endedByPlugin) {
            ++endedStreams_[stream->resource];
            hook = streamEndedHook_;
        }
        notifyChanged();
    }
    if (hook)
        hook(stream->resource, stream->id, status);
}

void TestKubelet::cancelAndJoin(const std::shared_ptr<Stream>& stream)
{
    {
        std::lock_guard lock(mu_);
        stream->cancelled = true;
    }
    stream->context.TryCancel();
    if (stream->thread.joinable())
        stream->thread.join();
}

void TestKubelet::notifyChanged()
{
    ++changes_;
    changed_.notify_all();
}

std::shared_ptr<TestKubelet::Client> TestKubelet::clientFor(const std::string& resource) const
{
    std::lock_guard lock(mu_);
    auto it = clients_.find(resource);
    return it == clients_.end() ? nullptr : it->second;
}

std::vector<TestKubelet::Registration> TestKubelet::registrations() const
{
    std::lock_guard lock(mu_);
    return registrations_;
}

std::vector<TestKubelet::Rejection> TestKubelet::rejections() const
{
    std::lock_guard lock(mu_);
    return rejections_;
}

std::vector<TestKubelet::Update> TestKubelet::updates(const std::string& resource) const
{
    std::lock_guard lock(mu_);
    auto it = updates_.find(resource);
    return it == updates_.end() ? std::vector<Update>{} : it->second;
}

std::optional<std::vector<TestKubelet::Device>>
TestKubelet::latest(const std::string& resource) const
{
    std::lock_guard lock(mu_);
    auto it = updates_.find(resource);
    if (it == updates_.end() || it->second.empty())
        return std::nullopt;
    return it->second.back().devices;
}

int TestKubelet::openStreams() const
{
    std::lock_guard lock(mu_);
    return openStreams_;
}

int TestKubelet::endedStreams(const std::string& resource) const
{
    std::lock_guard lock(mu_);
    auto it = endedStreams_.find(resource);
    return it == endedStreams_.end() ? 0 : it->second;
}

int TestKubelet::restarts() const
{
    std::lock_guard lock(mu_);
    return restarts_;
}

bool TestKubelet::isRegistered(const std::string& resource) const
{
    std::lock_guard lock(mu_);
    return clients_.contains(resource);
}

bool TestKubelet::waitFor(const std::function<bool(const TestKubelet&)>& predicate,
                          std::chrono::milliseconds timeout) const
{
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::unique_lock lock(mu_);
    for (;;) {
        // Remember the change count before evaluating, so a change that lands
        // while the predicate runs unlocked still wakes the wait below.
        const uint64_t seen = changes_;
        lock.unlock();
        if (predicate(*this))
            return true;
        lock.lock();
        if (!changed_.wait_until(lock, deadline, [&] { return changes_ != seen; })) {
            lock.unlock();
            return predicate(*this);
        }
    }
}

void TestKubelet::onUpdate(UpdateHook hook)
{
    std::lock_guard lock(mu_);
    updateHook_ = std::move(hook);
}

void TestKubelet::onRegistration(RegistrationHook hook)
{
    std::lock_guard lock(mu_);
    registrationHook_ = std::move(hook);
}

void TestKubelet::onRejection(RejectionHook hook)
{
    std::lock_guard lock(mu_);
    rejectionHook_ = std::move(hook);
}

void TestKubelet::onStreamEnded(StreamEndedHook hook)
{
    std::lock_guard lock(mu_);
    streamEndedHook_ = std::move(hook);
}

grpc::Status TestKubelet::allocate(const std::string& resource,
                                   const std::vector<std::vector<std::string>>& containerRequests,
                                   v1beta1::AllocateResponse* out)
{
    std::shared_ptr<Client> client = clientFor(resource);
    if (!client)
        return notRegistered(resource);
    v1beta1::AllocateRequest request;
    for (const auto& ids : containerRequests) {
        v1beta1::ContainerAllocateRequest* container = request.add_container_requests();
        for (const std::string& id : ids)
            container->add_devices_ids(id);
    }
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + kActionTimeout);
    v1beta1::AllocateResponse response;
    grpc::Status status = client->stub->Allocate(&context, request, &response);
    if (out)
        *out = response;
    // The kubelet fails admission on an empty answer just as on an error.
    if (status.ok() && response.container_responses_size() == 0)
        return {grpc::StatusCode::INTERNAL,
                fmt::format("the plugin for {} returned no container responses from Allocate",
                            resource)};
    return status;
}

grpc::Status TestKubelet::preferredAllocation(const std::string& resource,
                                              const std::vector<std::string>& available,
                                              const std::vector<std::string>& mustInclude,
                                              int size, std::vector<std::string>* out)
{
    std::shared_ptr<Client> client = clientFor(resource);
    if (!client)
        return notRegistered(resource);
    if (!client->preferredAllocation)
        return {grpc::StatusCode::FAILED_PRECONDITION,
                fmt::format("the plugin for {} does not advertise GetPreferredAllocation; the "
                            "kubelet would not call it",
                            resource)};
    v1beta1::PreferredAllocationRequest request;
    v1beta1::ContainerPreferredAllocationRequest* container = request.add_container_requests();
    for (const std::string& id : available)
        container->add_available_deviceids(id);
    for (const std::string& id : mustInclude)
        container->add_must_include_deviceids(id);
    container->set_allocation_size(size);

    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + kActionTimeout);
    v1beta1::PreferredAllocationResponse response;
    grpc::Status status = client->stub->GetPreferredAllocation(&context, request, &response);
    if (out) {
        out->clear();
        // Only the first container's answer is used, as in the kubelet.
        if (status.ok() && response.container_responses_size() > 0) {
            for (const std::string& id : response.container_responses(0).deviceids())
                out->push_back(id);
        }
    }
    return status;
}

grpc::Status TestKubelet::preStart(const std::string& resource,
                                   const std::vector<std::string>& ids)
{
    std::shared_ptr<Client> client = clientFor(resource);
    if (!client)
        return notRegistered(resource);
    if (!client->preStartRequired)
        return {grpc::StatusCode::FAILED_PRECONDITION,
                fmt::format("the plugin for {} does not require PreStartContainer; the kubelet "
                            "would not call it",
                            resource)};
    v1beta1::PreStartContainerRequest request;
    for (const std::string& id : ids)
        request.add_devices_ids(id);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + kPreStartTimeout);
    v1beta1::PreStartContainerResponse response;
    return client->stub->PreStartContainer(&context, request, &response);
}

} // namespace kvgpu::test
