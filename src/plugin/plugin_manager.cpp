#include "plugin/plugin_manager.h"

#include "base/log.h"
#include "plugin/resource_server.h"

#include <algorithm>

namespace kvgpu {

namespace {

const std::string &idOf(const AdvertisedDevice &device) { return device.id; }
const std::string &idOf(const std::string &id) { return id; }

} // namespace

void PluginManager::Tally::begin()
{
    std::lock_guard lock(mutex);
    ++pending;
}

void PluginManager::Tally::end()
{
    std::lock_guard lock(mutex);
    --pending;
    changed.notify_all();
}

PluginManager::PluginManager(EventLoop &loop, PluginConfig config)
    : PluginManager(loop, config.pluginDir,
                    std::make_unique<GrpcEndpointFactory>(config.sysfs, config.dev, *config.metrics),
                    std::make_unique<GrpcKubeletRegistrar>(PluginDirectory(config.pluginDir).kubeletSocket()))
{
    metrics_ = config.metrics;
}

PluginManager::PluginManager(EventLoop &loop, std::string pluginDir, std::unique_ptr<EndpointFactory> endpoints,
                             std::unique_ptr<KubeletRegistrar> registrar, PluginTiming timing)
    : loop_(loop), dir_(std::move(pluginDir)), endpoints_(std::move(endpoints)),
      registrar_(std::move(registrar)), timing_(timing)
{
}

PluginManager::~PluginManager()
{
    shutdown();
    awaitStopped(std::chrono::seconds(2));
}

template <typename Task>
void PluginManager::postBack(Task task)
{
    loop_.post(lifeline_.guard([this, task = std::move(task)]() mutable { task(*this); }));
}

bool PluginManager::socketIntact(const Entry &entry) const
{
    std::optional<FileIdentity> now = dir_.identityOf(entry.socketFile);
    return now && now == entry.serverSocket;
}

void PluginManager::update(std::map<std::string, Resource> changed)
{
    for (const auto &[name, resource] : changed) {
        // The whole list as a change: everything it has, and whatever it no longer has.
        ResourceDelta delta{.kind = resource.kind, .set = resource.devices};
        if (auto it = entries_.find(name); it != entries_.end())
            for (const auto &[id, device] : it->second.devices)
                if (!std::binary_search(resource.devices.begin(), resource.devices.end(), id,
                                        [](const auto &a, const auto &b) { return idOf(a) < idOf(b); }))
                    delta.removed.push_back(id);
        apply(name, delta);
    }
}

void PluginManager::indexChanged(const IndexChanges &changes)
{
    for (const auto &[name, delta] : changes.resources)
        apply(name, delta);
}

void PluginManager::apply(const std::string &name, const ResourceDelta &everyApi)
{
    if (shutDown_)
        return;
    // Devices that DRA offers are not ours: a resource only DRA offers gets no
    // server, and a device that moved to DRA is withdrawn here. Without DRA
    // the delta is used as it is, uncopied.
    ResourceDelta restricted;
    const bool mixed = !allOfferedBy(everyApi, DeviceApi::DevicePlugin);
    if (mixed)
        restricted = restrictTo(everyApi, DeviceApi::DevicePlugin);
    const ResourceDelta &delta = mixed ? restricted : everyApi;
    auto it = entries_.find(name);
    if (it == entries_.end() && delta.set.empty())
        return;
    if (it != entries_.end()) {
        applyDelta(it->second.devices, delta);
        // A server that is stopping is served again with the list as it is then.
        if (it->second.server && !it->second.stopping)
            it->second.server->publish(delta);
        return;
    }
    Entry &entry = entries_[name];
    entry.name = name;
    entry.kind = delta.kind;
    applyDelta(entry.devices, delta);
    entry.socketFile = PluginDirectory::socketFileOf(name);
    entry.retry = std::make_unique<Timer>(loop_);
    log::info("new resource", {{"resource", name}, {"devices", std::to_string(entry.devices.size())}});
    reconcile(entry, "new resource");
}

void PluginManager::kubeletChanged()
{
    if (shutDown_)
        return;
    if (dir_.kubelet())
        log::info("kubelet socket appeared", {{"socket", dir_.kubeletSocket()}});
    reconcileAll("kubelet socket changed");
}

void PluginManager::socketDeleted(const std::string &fileName)
{
    for (auto &[name, entry] : entries_)
        if (entry.socketFile == fileName)
            reconcile(entry, "plugin socket deleted");
}

void PluginManager::pluginDirectoryGone()
{
    if (directoryGone_)
        return;
    directoryGone_ = true;
    log::error("the kubelet plugin directory was removed; reporting not live so that the pod restarts "
               "(its hostPath mount cannot see a re-created directory)",
               {{"path", dir_.path()}});
}

void PluginManager::reconcileAll(const char *why)
{
    for (auto &[name, entry] : entries_)
        reconcile(entry, why);
}

void PluginManager::reconcile(Entry &entry, const char *why)
{
    if (shutDown_ || entry.stopping)
        return; // a stopping server comes back through serverStopped
    if (!entry.server) {
        if (entry.retry->active())
            return; // serving failed; the retry timer tries again
        if (!serve(entry)) {
            scheduleRetry(entry);
            return;
        }
    } else if (!socketIntact(entry)) {
        restartServer(entry, why);
        return;
    }

    std::optional<KubeletInstance> kubelet = dir_.kubelet();
    if (!kubelet) {
        cancelCall(entry);
        entry.retry->stop();
        if (entry.state != Registration::Waiting)
            log::info("waiting for the kubelet", {{"resource", entry.name}, {"socket", dir_.kubeletSocket()}});
        entry.state = Registration::Waiting;
        return;
    }
    bool sameKubelet = entry.target && *entry.target == *kubelet;
    if (sameKubelet && (entry.state == Registration::Registering || entry.state == Registration::Registered ||
                        entry.state == Registration::BackingOff))
        return;
    if (!sameKubelet) {
        // A new kubelet deserves a fresh start, not the backoff of the old one.
        entry.attempt = 0;
        entry.lastError.clear();
    }
    log::debug("registering", {{"resource", entry.name}, {"reason", why}});
    sendRegister(entry, *kubelet);
}

bool PluginManager::serve(Entry &entry)
{
    ++entry.serverGeneration;
    unsigned generation = entry.serverGeneration;
    std::string name = entry.name;
    auto server = endpoints_->serve(dir_.pathOf(entry.socketFile),
                                    std::make_shared<const Resource>(toResource(entry.name, entry.kind, entry.devices)),
                                    [inbox = loop_.inbox(),
                                     ended = lifeline_.guard([this, name, generation](bool byClient) {
                                         streamEnded(name, generation, byClient);
                                     })](bool byClient) {
                                        inbox->post([ended, byClient]() mutable { ended(byClient); });
                                    });
    if (!server) {
        if (server.error() != entry.lastError)
            log::error("cannot serve a resource; retrying with backoff",
                       {{"resource", name}, {"error", server.error()}});
        entry.lastError = server.error();
        return false;
    }
    entry.server = std::move(server).value();
    entry.serverSocket = dir_.identityOf(entry.socketFile);
    entry.lastError.clear();
    log::debug("serving", {{"resource", name}, {"socket", dir_.pathOf(entry.socketFile)}});
    return true;
}

void PluginManager::restartServer(Entry &entry, const char *why)
{
    log::info("plugin socket gone; serving it again", {{"resource", entry.name}, {"reason", why}});
    stopServer(entry);
}

void PluginManager::stopServer(Entry &entry)
{
    cancelCall(entry);
    if (entry.retry)
        entry.retry->stop();
    entry.state = Registration::Waiting;
    if (!entry.server)
        return;
    // Stopping blocks in gRPC, so it runs off the loop; the same path is served
    // again only after the old server stopped listening and removed the file.
    entry.stopping = true;
    unsigned serial = nextSerial_++;
    ResourceEndpoint *server = entry.server.get();
    stoppingServers_[serial] = std::move(entry.server);
    tally_->begin();
    server->stop([tally = tally_, inbox = loop_.inbox(),
                  stopped = lifeline_.guard([this, name = entry.name, serial] { serverStopped(name, serial); })] {
        inbox->post(stopped);
        tally->end();
    });
}

void PluginManager::serverStopped(const std::string &name, unsigned serial)
{
    stoppingServers_.erase(serial); // joins its stopper thread, which has finished
    auto it = entries_.find(name);
    if (it == entries_.end() || shutDown_)
        return;
    it->second.stopping = false;
    reconcile(it->second, "server stopped");
}

void PluginManager::sendRegister(Entry &entry, const KubeletInstance &kubelet)
{
    cancelCall(entry);
    entry.retry->stop();
    v1beta1::RegisterRequest request;
    request.set_version("v1beta1");
    request.set_endpoint(entry.socketFile);
    request.set_resource_name(entry.name);
    request.mutable_options()->set_get_preferred_allocation_available(true);
    request.mutable_options()->set_pre_start_required(false);
    unsigned serial = nextSerial_++;
    std::string name = entry.name;
    log::debug("sending Register", {{"resource", name}});
    tally_->begin();
    calls_[serial] = registrar_->send(
        kubelet, request,
        [tally = tally_, inbox = loop_.inbox(),
         done = lifeline_.guard([this, name, serial](const grpc::Status &status) {
             registrationDone(name, serial, status);
         })](grpc::Status status) {
            // Only hand over: the call (and its channel) is destroyed on the
            // loop, after this completion has returned.
            inbox->post([done, status]() mutable { done(status); });
            tally->end();
        });
    entry.call = serial;
    entry.target = kubelet;
    entry.state = Registration::Registering;
    metrics_->registrationState(entry.name, false);
}

void PluginManager::cancelCall(Entry &entry)
{
    if (entry.call == 0)
        return;
    if (auto it = calls_.find(entry.call); it != calls_.end())
        it->second->cancel(); // stays owned until its completion arrives
    entry.call = 0;
}

void PluginManager::registrationDone(const std::string &name, unsigned serial, const grpc::Status &status)
{
    calls_.erase(serial);
    auto it = entries_.find(name);
    if (shutDown_ || it == entries_.end() || it->second.call != serial)
        return; // cancelled, or a newer call has taken over since this one started
    Entry &entry = it->second;
    entry.call = 0;
    metrics_->registrationFinished(name, status.ok());
    metrics_->registrationState(name, status.ok());
    if (status.ok()) {
        entry.state = Registration::Registered;
        entry.registeredAt = std::chrono::steady_clock::now();
        entry.lastError.clear();
        log::info("registered with the kubelet",
                  {{"resource", name}, {"endpoint", entry.socketFile},
                   {"devices", std::to_string(entry.devices.size())}});
        return;
    }
    std::string error = status.error_message();
    // Logged once per distinct failure, not once per retry.
    if (error != entry.lastError)
        log::warn("registration failed; retrying with backoff", {{"resource", name}, {"error", error}});
    entry.lastError = error;
    scheduleRetry(entry);
}

void PluginManager::scheduleRetry(Entry &entry)
{
    auto delay = std::min<std::chrono::milliseconds>(timing_.maxRetry, timing_.firstRetry * (1u << std::min(entry.attempt, 16u)));
    ++entry.attempt;
    if (entry.server)
        entry.state = Registration::BackingOff;
    log::debug("retrying later", {{"resource", entry.name}, {"delay_ms", std::to_string(delay.count())}});
    std::string name = entry.name;
    entry.retry->start(static_cast<uint64_t>(delay.count()), 0, [this, name] {
        auto it = entries_.find(name);
        if (it == entries_.end())
            return;
        if (it->second.state == Registration::BackingOff)
            it->second.state = Registration::Due;
        reconcile(it->second, "retry");
    });
}

void PluginManager::streamEnded(const std::string &name, unsigned generation, bool byClient)
{
    auto it = entries_.find(name);
    if (shutDown_ || !byClient || it == entries_.end() || it->second.serverGeneration != generation)
        return;
    Entry &entry = it->second;
    if (entry.state != Registration::Registered || !entry.server || entry.stopping ||
        entry.server->openStreams() > 0)
        return;
    std::optional<KubeletInstance> kubelet = dir_.kubelet();
    if (!kubelet || !entry.target || !(*kubelet == *entry.target)) {
        // The kubelet went away or was replaced: its socket events drive this.
        reconcile(entry, "stream ended with its kubelet");
        return;
    }
    // The kubelet never redials a stream: without a new registration the
    // resource would stay unhealthy until its devices are dropped. A kubelet
    // that cancels every stream must not make us re-register in a tight loop.
    auto upFor = std::chrono::steady_clock::now() - entry.registeredAt;
    if (upFor >= timing_.stableStream) {
        entry.attempt = 0;
        log::info("ListAndWatch stream cancelled by the kubelet; registering again", {{"resource", name}});
        entry.state = Registration::Due;
        reconcile(entry, "stream cancelled");
        return;
    }
    // Once may be a kubelet shutting down (it cancels streams before its
    // socket goes); a warning when it happens again.
    log::write(entry.attempt == 0 ? log::Level::Info : log::Level::Warn,
               "ListAndWatch stream cancelled soon after registering; registering again with backoff",
               {{"resource", name},
                {"up_ms", std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(upFor).count())}});
    scheduleRetry(entry);
}

void PluginManager::shutdown()
{
    if (shutDown_)
        return;
    for (auto &[name, entry] : entries_)
        stopServer(entry);
    shutDown_ = true;
    for (auto &[name, entry] : entries_)
        entry.retry.reset();
}

bool PluginManager::awaitStopped(std::chrono::milliseconds limit)
{
    bool all;
    {
        std::unique_lock lock(tally_->mutex);
        all = tally_->changed.wait_for(lock, limit, [&] { return tally_->pending == 0; });
    }
    stoppingServers_.clear();
    if (!all) {
        // A completion that never came: destroying its call now would free what
        // gRPC is about to use. Leaking it at exit is the lesser harm.
        log::warn("Register calls still in flight at exit; leaving them", {{"calls", std::to_string(calls_.size())}});
        for (auto &[serial, call] : calls_)
            static_cast<void>(call.release());
    }
    calls_.clear();
    return all;
}

bool PluginManager::allRegistered() const
{
    return std::all_of(entries_.begin(), entries_.end(),
                       [](const auto &e) { return e.second.state == Registration::Registered; });
}

} // namespace kvgpu
