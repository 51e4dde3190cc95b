#include "plugin/plugin_manager.h"

#include "base/log.h"

#include <algorithm>
#include <sys/stat.h>

#include <fmt/format.h>

namespace kvgpu {

namespace {
constexpr const char *kKubeletSocket = "kubelet.sock";
constexpr uint64_t kFirstRetryMs = 100;
constexpr uint64_t kMaxRetryMs = 30000;
} // namespace

PluginManager::PluginManager(EventLoop &loop, PluginConfig config) : loop_(loop), config_(std::move(config)) {}

PluginManager::~PluginManager() { shutdown(); }

std::string PluginManager::kubeletSocketPath() const
{
    return fmt::format("{}/{}", config_.pluginDir, kKubeletSocket);
}

std::optional<PluginManager::KubeletId> PluginManager::currentKubelet() const
{
    struct stat st;
    if (::stat(kubeletSocketPath().c_str(), &st) != 0)
        return std::nullopt;
    return KubeletId{st.st_dev, st.st_ino};
}

void PluginManager::update(std::map<std::string, Resource> changed)
{
    if (shutDown_)
        return;
    for (auto &[name, resource] : changed) {
        auto snapshot = std::make_shared<const Resource>(std::move(resource));
        auto it = entries_.find(name);
        if (it != entries_.end()) {
            it->second.resource = snapshot;
            if (it->second.server)
                it->second.server->service().publish(snapshot);
            continue;
        }
        Entry &entry = entries_[name];
        entry.name = name;
        entry.socketFile = socketFileName(name);
        entry.resource = snapshot;
        entry.retry = std::make_unique<Timer>(loop_);
        log::info("new resource", {{"resource", name}, {"devices", std::to_string(snapshot->devices.size())}});
        reconnect(entry, "new resource");
    }
}

void PluginManager::kubeletSocketCreated()
{
    std::optional<KubeletId> kubelet = currentKubelet();
    if (!kubelet)
        return;
    log::info("kubelet socket appeared", {{"socket", kubeletSocketPath()}});
    for (auto &[name, entry] : entries_) {
        bool current = entry.registeredWith == *kubelet &&
                       (entry.state == State::Registered || entry.state == State::Registering);
        if (!current)
            reconnect(entry, "kubelet started");
    }
}

void PluginManager::socketDeleted(const std::string &fileName)
{
    if (shutDown_)
        return;
    for (auto &[name, entry] : entries_) {
        if (entry.socketFile != fileName)
            continue;
        // Our own restarts delete and re-create the socket; by the time the
        // deletion is reported the new socket is there and nothing is lost.
        struct stat st;
        if (::stat(fmt::format("{}/{}", config_.pluginDir, fileName).c_str(), &st) == 0)
            continue;
        // Whoever deleted it, the kubelet can no longer reach this server: serve
        // again on the same path and register again.
        reconnect(entry, "plugin socket deleted");
    }
}

void PluginManager::reconnect(Entry &entry, const char *why)
{
    if (shutDown_)
        return;
    log::debug("reconnecting resource", {{"resource", entry.name}, {"reason", why}});
    entry.retry->stop();
    if (!restartServer(entry)) {
        scheduleRetry(entry);
        return;
    }
    startRegistration(entry);
}

bool PluginManager::restartServer(Entry &entry)
{
    // Before registering again, the old server and its streams are stopped: an
    // old stream that ends late can make some kubelets drop the new client.
    if (entry.server) {
        entry.server->stop();
        entry.server.reset();
    }
    ++entry.serverGeneration;
    unsigned generation = entry.serverGeneration;
    std::string name = entry.name;
    auto service = std::make_unique<DevicePluginService>(
        entry.resource, config_.sysfs, config_.dev,
        [this, inbox = loop_.inbox(), name, generation](bool byClient) {
            inbox->post([this, name, generation, byClient] { streamEnded(name, generation, byClient); });
        },
        *config_.metrics);
    entry.server = ResourceServer::start(fmt::format("{}/{}", config_.pluginDir, entry.socketFile),
                                         std::move(service));
    return entry.server != nullptr;
}

void PluginManager::startRegistration(Entry &entry)
{
    config_.metrics->registrationState(entry.name, false);
    std::optional<KubeletId> kubelet = currentKubelet();
    if (!kubelet) {
        if (entry.state != State::Waiting)
            log::info("waiting for the kubelet", {{"resource", entry.name}, {"socket", kubeletSocketPath()}});
        entry.state = State::Waiting;
        return;
    }
    entry.state = State::Registering;
    entry.registeredWith = *kubelet;
    v1beta1::RegisterRequest request;
    request.set_version("v1beta1");
    request.set_endpoint(entry.socketFile);
    request.set_resource_name(entry.name);
    request.mutable_options()->set_get_preferred_allocation_available(true);
    request.mutable_options()->set_pre_start_required(false);
    unsigned generation = entry.serverGeneration;
    std::string name = entry.name;
    // The completion may arrive after shutdown; the inbox then drops it, and
    // `this` is only used if the loop runs the task.
    registerWithKubelet(kubeletSocketPath(), request,
                        [this, inbox = loop_.inbox(), name, generation](grpc::Status status) {
                            inbox->post([this, name, generation, status] { registrationDone(name, generation, status); });
                        });
}

void PluginManager::registrationDone(const std::string &name, unsigned generation, const grpc::Status &status)
{
    auto it = entries_.find(name);
    if (shutDown_ || it == entries_.end() || it->second.serverGeneration != generation)
        return; // a newer server has taken over since this call started
    Entry &entry = it->second;
    config_.metrics->registrationFinished(name, status.ok());
    config_.metrics->registrationState(name, status.ok());
    if (status.ok()) {
        entry.state = State::Registered;
        entry.attempt = 0;
        entry.lastError.clear();
        log::info("registered with the kubelet",
                  {{"resource", name}, {"endpoint", entry.socketFile},
                   {"devices", std::to_string(entry.resource->devices.size())}});
        return;
    }
    std::string error = status.error_message();
    entry.state = State::Failed;
    // Logged once per distinct failure, not once per retry.
    if (error != entry.lastError)
        log::warn("registration failed; retrying with backoff", {{"resource", name}, {"error", error}});
    entry.lastError = error;
    scheduleRetry(entry);
}

void PluginManager::scheduleRetry(Entry &entry)
{
    uint64_t delay = std::min<uint64_t>(kMaxRetryMs, kFirstRetryMs << std::min(entry.attempt, 10u));
    ++entry.attempt;
    std::string name = entry.name;
    entry.retry->start(delay, 0, [this, name] {
        auto it = entries_.find(name);
        if (it != entries_.end())
            reconnect(it->second, "retry");
    });
}

void PluginManager::streamEnded(const std::string &name, unsigned generation, bool byClient)
{
    auto it = entries_.find(name);
    if (shutDown_ || !byClient || it == entries_.end() || it->second.serverGeneration != generation)
        return;
    Entry &entry = it->second;
    if (entry.state != State::Registered || !entry.server || entry.server->service().openStreams() > 0)
        return;
    // The kubelet never redials a stream: without a new registration the
    // resource would stay unhealthy until its devices are dropped.
    if (!currentKubelet())
        return; // the kubelet is gone; its socket appearing will bring us back
    log::info("ListAndWatch stream cancelled by the kubelet; registering again", {{"resource", name}});
    reconnect(entry, "stream cancelled");
}

void PluginManager::shutdown()
{
    if (shutDown_)
        return;
    shutDown_ = true;
    for (auto &[name, entry] : entries_) {
        entry.retry.reset();
        if (entry.server)
            entry.server->stop();
        entry.server.reset();
    }
}

bool PluginManager::allRegistered() const
{
    return std::all_of(entries_.begin(), entries_.end(),
                       [](const auto &e) { return e.second.state == State::Registered; });
}

} // namespace kvgpu
