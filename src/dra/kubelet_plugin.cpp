#include "dra/kubelet_plugin.h"

#include "base/log.h"
#include "rpc/unix_socket_server.h"
#include "dra_health_v1alpha1.grpc.pb.h"
#include "dra_v1.grpc.pb.h"
#include "dra_v1beta1.grpc.pb.h"
#include "pluginregistration.grpc.pb.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <filesystem>
#include <mutex>
#include <optional>
#include <set>
#include <sys/stat.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>
#include <utility>

namespace kvgpu::dra {

namespace {

namespace drav1 = k8s::io::kubelet::pkg::apis::dra::v1;
namespace drav1beta1 = k8s::io::kubelet::pkg::apis::dra::v1beta1;
using HealthResponse = v1alpha1::NodeWatchResourcesResponse;

// The error a claim gets when the handler returned nothing for it.
const char kNotAnswered[] = "not answered: the DRA driver returned no outcome for this claim";
// How long a stopping server lets calls already answered reach the kubelet
// before it cancels them.
constexpr auto kShutdownGrace = std::chrono::milliseconds(200);
constexpr std::size_t kMaxHealthMessage = 1024;

std::string joinUids(const std::vector<ClaimRef> &claims)
{
    std::string out;
    for (const ClaimRef &claim : claims)
        out += (out.empty() ? "" : ",") + claim.uid;
    return out;
}

// At most `limit` bytes, cut before a UTF-8 continuation byte so that the
// kubelet never receives a broken character.
std::string truncateUtf8(const std::string &text, std::size_t limit)
{
    if (text.size() <= limit)
        return text;
    std::size_t end = limit;
    while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80)
        --end;
    return text.substr(0, end);
}

std::shared_ptr<const HealthResponse> healthMessage(const std::vector<DeviceHealthEntry> &entries)
{
    auto message = std::make_shared<HealthResponse>();
    for (const DeviceHealthEntry &entry : entries) {
        v1alpha1::DeviceHealth *out = message->add_devices();
        out->mutable_device()->set_pool_name(entry.pool);
        out->mutable_device()->set_device_name(entry.device);
        switch (entry.health) {
        case DeviceHealthEntry::Healthy: out->set_health(v1alpha1::HEALTHY); break;
        case DeviceHealthEntry::Unhealthy: out->set_health(v1alpha1::UNHEALTHY); break;
        case DeviceHealthEntry::Unknown: out->set_health(v1alpha1::UNKNOWN); break;
        }
        out->set_last_updated_time(entry.lastUpdated);
        out->set_message(truncateUtf8(entry.message, kMaxHealthMessage));
    }
    return message;
}

template <typename Request>
std::vector<ClaimRef> claimsOf(const Request &request)
{
    std::vector<ClaimRef> claims;
    claims.reserve(static_cast<std::size_t>(request.claims_size()));
    for (const auto &claim : request.claims())
        claims.push_back({claim.namespace_(), claim.uid(), claim.name()});
    return claims;
}

// Serves `services` on `path` (rpc/unix_socket_server.h), saying so when a
// stale socket was replaced.
Result<ServedSocket> serve(const std::string &path, std::initializer_list<grpc::Service *> services)
{
    bool replaced = false;
    Result<ServedSocket> served = serveUnixSocket(path, services, &replaced);
    if (served && replaced)
        log::info("replaced a stale socket", {{"path", path}});
    return served;
}

// One NodePrepareResources or NodeUnprepareResources call, from its arrival
// until it is answered. The claims are copied out of the request at once; the
// handler's result is kept until the worker answers. `finished` (guarded by
// the plugin's claim mutex) makes the answer happen once: by the worker, or
// by stop() while the handler still runs.
class ClaimCall {
public:
    ClaimCall(grpc::CallbackServerContext *context, grpc::ServerUnaryReactor *reactor, std::vector<ClaimRef> claims)
        : claims_(std::move(claims)), context_(context), reactor_(reactor)
    {
    }
    virtual ~ClaimCall() = default;

    virtual const char *method() const = 0;
    // Calls the handler (on the worker thread, without the mutex).
    virtual void run(ClaimHandler &handler) = 0;

    const std::vector<ClaimRef> &claims() const { return claims_; }
    bool finished() const { return finished_; }
    // Only while not finished: the context lives until Finish.
    bool cancelledByClient() const { return context_->IsCancelled(); }

    void answer()
    {
        finished_ = true;
        fillResponse();
        reactor_->Finish(grpc::Status::OK);
    }
    void fail(grpc::Status status)
    {
        finished_ = true;
        reactor_->Finish(std::move(status));
    }

protected:
    virtual void fillResponse() = 0;
    const std::vector<ClaimRef> claims_;

private:
    grpc::CallbackServerContext *const context_;
    grpc::ServerUnaryReactor *const reactor_;
    bool finished_ = false;
};

template <typename Request, typename Response>
class PrepareCall final : public ClaimCall {
public:
    PrepareCall(grpc::CallbackServerContext *context, grpc::ServerUnaryReactor *reactor, const Request *request,
                Response *response)
        : ClaimCall(context, reactor, claimsOf(*request)), response_(response)
    {
    }

    const char *method() const override { return "NodePrepareResources"; }

    void run(ClaimHandler &handler) override
    {
        if (claims_.empty())
            return;
        try {
            outcomes_ = handler.prepare(claims_);
        } catch (const std::exception &e) {
            // A bug in the handler; the claims fail, the plugin stays up.
            log::error("the claim handler threw during prepare", {{"claims", joinUids(claims_)}, {"what", e.what()}});
            for (const ClaimRef &claim : claims_)
                outcomes_[claim.uid].error = std::string("internal error in the DRA driver: ") + e.what();
        }
    }

protected:
    void fillResponse() override
    {
        auto &out = *response_->mutable_claims();
        for (const ClaimRef &claim : claims_) {
            auto &answer = out[claim.uid];
            auto it = outcomes_.find(claim.uid);
            if (it == outcomes_.end()) {
                answer.set_error(kNotAnswered);
                log::error("claim not answered by the handler", {{"method", method()}, {"claim", claim.uid}});
                continue;
            }
            if (!it->second.error.empty()) {
                answer.set_error(it->second.error);
                log::warn("claim not prepared",
                          {{"claim", claim.uid}, {"namespace", claim.ns}, {"name", claim.name},
                           {"error", it->second.error}});
                continue;
            }
            for (const PreparedDevice &device : it->second.devices) {
                auto *d = answer.add_devices();
                for (const std::string &request : device.requestNames)
                    d->add_request_names(request);
                d->set_pool_name(device.pool);
                d->set_device_name(device.device);
                for (const std::string &id : device.cdiIds)
                    d->add_cdi_device_ids(id);
            }
        }
    }

private:
    Response *const response_;
    std::map<std::string, ClaimOutcome> outcomes_;
};

template <typename Request, typename Response>
class UnprepareCall final : public ClaimCall {
public:
    UnprepareCall(grpc::CallbackServerContext *context, grpc::ServerUnaryReactor *reactor, const Request *request,
                  Response *response)
        : ClaimCall(context, reactor, claimsOf(*request)), response_(response)
    {
    }

    const char *method() const override { return "NodeUnprepareResources"; }

    void run(ClaimHandler &handler) override
    {
        if (claims_.empty())
            return;
        try {
            errors_ = handler.unprepare(claims_);
        } catch (const std::exception &e) {
            log::error("the claim handler threw during unprepare", {{"claims", joinUids(claims_)}, {"what", e.what()}});
            for (const ClaimRef &claim : claims_)
                errors_[claim.uid] = std::string("internal error in the DRA driver: ") + e.what();
        }
    }

protected:
    void fillResponse() override
    {
        auto &out = *response_->mutable_claims();
        for (const ClaimRef &claim : claims_) {
            auto &answer = out[claim.uid];
            auto it = errors_.find(claim.uid);
            if (it == errors_.end()) {
                answer.set_error(kNotAnswered);
                log::error("claim not answered by the handler", {{"method", method()}, {"claim", claim.uid}});
            } else if (!it->second.empty()) {
                answer.set_error(it->second);
                log::warn("claim not unprepared",
                          {{"claim", claim.uid}, {"namespace", claim.ns}, {"name", claim.name}, {"error", it->second}});
            }
        }
    }

private:
    Response *const response_;
    std::map<std::string, std::string> errors_;
};

class HealthStream;

} // namespace

class KubeletPluginImpl {
public:
    KubeletPluginImpl(const KubeletPluginOptions &options, ClaimHandler &handler, std::string draPath, std::string regPath);
    ~KubeletPluginImpl();

    Result<void> start();
    void stop();

    // Claim calls, from the gRPC threads.
    void submit(std::unique_ptr<ClaimCall> call);
    // Health streams, from the gRPC threads.
    grpc::ServerWriteReactor<HealthResponse> *openHealthStream();
    void healthStreamDone(HealthStream *stream);
    void setHealth(std::vector<DeviceHealthEntry> devices);

    void registrationStatus(bool registered, const std::string &error);
    void fillInfo(pluginregistration::PluginInfo &info) const;

    const KubeletPluginOptions options_;
    ClaimHandler &handler_;
    const std::string draPath_;
    const std::string regPath_;
    std::atomic<bool> registered_{false};

private:
    void work();
    void tick();

    // The services; they forward to this Impl.
    class DraV1 final : public drav1::DRAPlugin::CallbackService {
    public:
        explicit DraV1(KubeletPluginImpl &impl) : impl_(impl) {}
        grpc::ServerUnaryReactor *NodePrepareResources(grpc::CallbackServerContext *context,
                                                       const drav1::NodePrepareResourcesRequest *request,
                                                       drav1::NodePrepareResourcesResponse *response) override;
        grpc::ServerUnaryReactor *NodeUnprepareResources(grpc::CallbackServerContext *context,
                                                         const drav1::NodeUnprepareResourcesRequest *request,
                                                         drav1::NodeUnprepareResourcesResponse *response) override;

    private:
        KubeletPluginImpl &impl_;
    };
    class DraV1beta1 final : public drav1beta1::DRAPlugin::CallbackService {
    public:
        explicit DraV1beta1(KubeletPluginImpl &impl) : impl_(impl) {}
        grpc::ServerUnaryReactor *NodePrepareResources(grpc::CallbackServerContext *context,
                                                       const drav1beta1::NodePrepareResourcesRequest *request,
                                                       drav1beta1::NodePrepareResourcesResponse *response) override;
        grpc::ServerUnaryReactor *NodeUnprepareResources(grpc::CallbackServerContext *context,
                                                         const drav1beta1::NodeUnprepareResourcesRequest *request,
                                                         drav1beta1::NodeUnprepareResourcesResponse *response) override;

    private:
        KubeletPluginImpl &impl_;
    };
    class Health final : public v1alpha1::DRAResourceHealth::CallbackService {
    public:
        explicit Health(KubeletPluginImpl &impl) : impl_(impl) {}
        grpc::ServerWriteReactor<HealthResponse> *NodeWatchResources(grpc::CallbackServerContext *,
                                                                     const v1alpha1::NodeWatchResourcesRequest *) override
        {
            return impl_.openHealthStream();
        }

    private:
        KubeletPluginImpl &impl_;
    };
    class Registration final : public pluginregistration::Registration::CallbackService {
    public:
        explicit Registration(KubeletPluginImpl &impl) : impl_(impl) {}
        grpc::ServerUnaryReactor *GetInfo(grpc::CallbackServerContext *context, const pluginregistration::InfoRequest *,
                                          pluginregistration::PluginInfo *info) override
        {
            impl_.fillInfo(*info);
            auto *reactor = context->DefaultReactor();
            reactor->Finish(grpc::Status::OK);
            return reactor;
        }
        grpc::ServerUnaryReactor *NotifyRegistrationStatus(grpc::CallbackServerContext *context,
                                                           const pluginregistration::RegistrationStatus *status,
                                                           pluginregistration::RegistrationStatusResponse *) override
        {
            impl_.registrationStatus(status->plugin_registered(), status->error());
            auto *reactor = context->DefaultReactor();
            reactor->Finish(grpc::Status::OK);
            return reactor;
        }

    private:
        KubeletPluginImpl &impl_;
    };

    DraV1 draV1_{*this};
    DraV1beta1 draV1beta1_{*this};
    Health health_{*this};
    Registration registration_{*this};

    // Servers and sockets: touched by the owner's thread only.
    std::unique_ptr<grpc::Server> draServer_;
    std::unique_ptr<grpc::Server> regServer_;
    std::optional<SocketFile> draSocket_;
    std::optional<SocketFile> regSocket_;
    bool stopped_ = false;

    // Claim calls: a queue served by one worker thread, so the handler sees
    // one call at a time and no gRPC thread ever waits for it.
    std::mutex claimMutex_;
    std::condition_variable claimWake_;
    std::deque<std::unique_ptr<ClaimCall>> queue_; // guarded by claimMutex_
    ClaimCall *running_ = nullptr;                 // guarded by claimMutex_; owned by the worker
    bool claimsStopping_ = false;                  // guarded by claimMutex_
    std::thread worker_;

    // Health: the current message, the open streams and the resend ticker.
    std::mutex healthMutex_;
    std::condition_variable healthWake_;
    std::vector<DeviceHealthEntry> healthEntries_;        // guarded by healthMutex_
    std::shared_ptr<const HealthResponse> healthMessage_; // guarded by healthMutex_
    std::set<HealthStream *> streams_;                    // guarded by healthMutex_
    bool healthStopping_ = false;                         // guarded by healthMutex_
    std::thread ticker_;
};

namespace {

// One NodeWatchResources stream, alive from the call until OnDone, where it
// deletes itself. One write in flight; a newer list replaces a pending one.
// Finish runs once, never with a write in flight.
class HealthStream final : public grpc::ServerWriteReactor<HealthResponse> {
public:
    HealthStream(KubeletPluginImpl &plugin, std::shared_ptr<const HealthResponse> first) : plugin_(plugin)
    {
        std::lock_guard lock(mutex_);
        pending_ = std::move(first);
        writeNextLocked();
    }

    void push(std::shared_ptr<const HealthResponse> message)
    {
        std::lock_guard lock(mutex_);
        pending_ = std::move(message);
        if (!writing_)
            writeNextLocked();
    }

    void close()
    {
        std::lock_guard lock(mutex_);
        finishLocked(grpc::Status::OK);
    }

    void OnWriteDone(bool ok) override
    {
        std::lock_guard lock(mutex_);
        writing_ = false;
        inFlight_.reset();
        if (finishRequested_) {
            Finish(finishStatus_);
            return;
        }
        if (!ok) {
            finishLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, "health stream write failed"));
            return;
        }
        writeNextLocked();
    }

    void OnCancel() override
    {
        std::lock_guard lock(mutex_);
        finishLocked(grpc::Status::CANCELLED);
    }

    void OnDone() override
    {
        // gRPC orders OnDone after the constructor, but through code TSan
        // does not see; the reactor's mutex says so in a way it does.
        KubeletPluginImpl *plugin = nullptr;
        {
            std::lock_guard lock(mutex_);
            plugin = &plugin_;
        }
        plugin->healthStreamDone(this);
        delete this;
    }

private:
    void writeNextLocked()
    {
        if (!pending_ || finishRequested_)
            return;
        inFlight_ = std::move(pending_);
        pending_.reset();
        writing_ = true;
        StartWrite(inFlight_.get());
    }

    void finishLocked(grpc::Status status)
    {
        if (finishRequested_)
            return;
        finishRequested_ = true;
        finishStatus_ = std::move(status);
        if (!writing_)
            Finish(finishStatus_);
    }

    KubeletPluginImpl &plugin_;
    std::mutex mutex_;
    std::shared_ptr<const HealthResponse> pending_;  // guarded by mutex_
    std::shared_ptr<const HealthResponse> inFlight_; // guarded by mutex_; gRPC reads it until OnWriteDone
    bool writing_ = false;                           // guarded by mutex_
    bool finishRequested_ = false;                   // guarded by mutex_
    grpc::Status finishStatus_;                      // guarded by mutex_
};

} // namespace

KubeletPluginImpl::KubeletPluginImpl(const KubeletPluginOptions &options, ClaimHandler &handler, std::string draPath,
                          std::string regPath)
    : options_(options), handler_(handler), draPath_(std::move(draPath)), regPath_(std::move(regPath))
{
    std::lock_guard lock(healthMutex_);
    healthMessage_ = healthMessage({});
}

KubeletPluginImpl::~KubeletPluginImpl()
{
    stop();
    if (worker_.joinable())
        worker_.join();
    // The servers are shut down, so every stream's OnDone has run; taking
    // the locks they took tells TSan so too (gRPC's own ordering it cannot see).
    std::scoped_lock settled(healthMutex_, claimMutex_);
}

Result<void> KubeletPluginImpl::start()
{
    worker_ = std::thread([this] { work(); });
    ticker_ = std::thread([this] { tick(); });

    // The DRA socket first: once the registration socket exists, the kubelet
    // may dial the endpoint at any moment.
    auto dra = serve(draPath_, {&draV1_, &draV1beta1_, &health_});
    if (!dra)
        return dra.failure();
    draServer_ = std::move(dra->server);
    draSocket_ = dra->file;

    auto reg = serve(regPath_, {&registration_});
    if (!reg)
        return reg.failure();
    regServer_ = std::move(reg->server);
    regSocket_ = reg->file;
    log::info("DRA kubelet plugin serving",
              {{"driver", options_.driverName}, {"endpoint", draPath_}, {"registration", regPath_}});
    return {};
}

void KubeletPluginImpl::stop()
{
    if (stopped_)
        return;
    stopped_ = true;

    // Deregister first: the kubelet stops using the endpoint on the
    // socket's removal, before the calls below start failing.
    if (regSocket_)
        regSocket_->remove();
    if (regServer_) {
        regServer_->Shutdown(std::chrono::system_clock::now() + kShutdownGrace);
        regServer_->Wait();
    }

    // Queued and running claim calls get UNAVAILABLE now; a handler still
    // running finishes on the worker, and its result is dropped.
    {
        std::lock_guard lock(claimMutex_);
        claimsStopping_ = true;
        for (auto &call : queue_)
            call->fail(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the DRA plugin is stopping"));
        queue_.clear();
        if (running_ && !running_->finished())
            running_->fail(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the DRA plugin is stopping"));
    }
    claimWake_.notify_all();

    {
        std::lock_guard lock(healthMutex_);
        healthStopping_ = true;
        for (HealthStream *stream : streams_)
            stream->close();
    }
    healthWake_.notify_all();
    if (ticker_.joinable())
        ticker_.join();

    if (draServer_) {
        draServer_->Shutdown(std::chrono::system_clock::now() + kShutdownGrace);
        draServer_->Wait();
    }
    if (draSocket_)
        draSocket_->remove();
    const bool served = draServer_ != nullptr;
    regServer_.reset();
    draServer_.reset();
    if (served)
        log::info("DRA kubelet plugin stopped", {{"driver", options_.driverName}});
}

void KubeletPluginImpl::submit(std::unique_ptr<ClaimCall> call)
{
    {
        std::lock_guard lock(claimMutex_);
        if (!claimsStopping_) {
            queue_.push_back(std::move(call));
            claimWake_.notify_one();
            return;
        }
        call->fail(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the DRA plugin is stopping"));
    }
}

void KubeletPluginImpl::work()
{
    std::unique_lock lock(claimMutex_);
    for (;;) {
        claimWake_.wait(lock, [this] { return claimsStopping_ || !queue_.empty(); });
        if (queue_.empty())
            return;
        std::unique_ptr<ClaimCall> call = std::move(queue_.front());
        queue_.pop_front();
        if (call->cancelledByClient()) {
            // The kubelet gave up (its 45 s deadline) while the call queued:
            // it will send the claims again.
            log::warn("claim call cancelled before it ran", {{"method", call->method()}, {"claims", joinUids(call->claims())}});
            call->fail(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the kubelet"));
            continue;
        }
        running_ = call.get();
        lock.unlock();
        log::debug("claim call", {{"method", call->method()}, {"claims", joinUids(call->claims())}});
        call->run(handler_);
        lock.lock();
        running_ = nullptr;
        if (!call->finished())
            call->answer();
    }
}

grpc::ServerWriteReactor<HealthResponse> *KubeletPluginImpl::openHealthStream()
{
    std::lock_guard lock(healthMutex_);
    auto *stream = new HealthStream(*this, healthMessage_);
    streams_.insert(stream);
    if (healthStopping_)
        stream->close();
    log::debug("health stream opened", {{"streams", std::to_string(streams_.size())}});
    return stream;
}

void KubeletPluginImpl::healthStreamDone(HealthStream *stream)
{
    std::lock_guard lock(healthMutex_);
    streams_.erase(stream);
}

void KubeletPluginImpl::setHealth(std::vector<DeviceHealthEntry> devices)
{
    std::shared_ptr<const HealthResponse> message = healthMessage(devices);
    std::shared_ptr<const HealthResponse> replaced;
    std::lock_guard lock(healthMutex_);
    if (devices == healthEntries_)
        return;
    healthEntries_ = std::move(devices);
    replaced = std::exchange(healthMessage_, message);
    for (HealthStream *stream : streams_)
        stream->push(message);
}

void KubeletPluginImpl::tick()
{
    std::unique_lock lock(healthMutex_);
    for (;;) {
        auto next = std::chrono::steady_clock::now() + options_.healthResendInterval;
        if (healthWake_.wait_until(lock, next, [this] { return healthStopping_; }))
            return;
        // The kubelet takes a device as Unknown after 30 s without a report.
        for (HealthStream *stream : streams_)
            stream->push(healthMessage_);
    }
}

void KubeletPluginImpl::registrationStatus(bool registered, const std::string &error)
{
    registered_ = registered;
    if (registered)
        log::info("registered with the kubelet", {{"driver", options_.driverName}});
    else
        log::error("the kubelet refused the DRA plugin's registration",
                   {{"driver", options_.driverName}, {"error", error}});
    if (options_.registrationChanged)
        options_.registrationChanged(registered, error);
}

void KubeletPluginImpl::fillInfo(pluginregistration::PluginInfo &info) const
{
    info.set_type("DRAPlugin");
    info.set_name(options_.driverName);
    info.set_endpoint(draPath_);
    for (const std::string &version : KubeletPlugin::supportedVersions())
        info.add_supported_versions(version);
}

template <typename Call, typename Request, typename Response>
static grpc::ServerUnaryReactor *submitCall(KubeletPluginImpl &impl, grpc::CallbackServerContext *context,
                                           const Request *request, Response *response)
{
    grpc::ServerUnaryReactor *reactor = context->DefaultReactor();
    impl.submit(std::make_unique<Call>(context, reactor, request, response));
    return reactor;
}

grpc::ServerUnaryReactor *KubeletPluginImpl::DraV1::NodePrepareResources(
    grpc::CallbackServerContext *context, const drav1::NodePrepareResourcesRequest *request,
    drav1::NodePrepareResourcesResponse *response)
{
    return submitCall<PrepareCall<drav1::NodePrepareResourcesRequest, drav1::NodePrepareResourcesResponse>>(
        impl_, context, request, response);
}

grpc::ServerUnaryReactor *KubeletPluginImpl::DraV1::NodeUnprepareResources(
    grpc::CallbackServerContext *context, const drav1::NodeUnprepareResourcesRequest *request,
    drav1::NodeUnprepareResourcesResponse *response)
{
    return submitCall<UnprepareCall<drav1::NodeUnprepareResourcesRequest, drav1::NodeUnprepareResourcesResponse>>(
        impl_, context, request, response);
}

grpc::ServerUnaryReactor *KubeletPluginImpl::DraV1beta1::NodePrepareResources(
    grpc::CallbackServerContext *context, const drav1beta1::NodePrepareResourcesRequest *request,
    drav1beta1::NodePrepareResourcesResponse *response)
{
    return submitCall<
        PrepareCall<drav1beta1::NodePrepareResourcesRequest, drav1beta1::NodePrepareResourcesResponse>>(
        impl_, context, request, response);
}

grpc::ServerUnaryReactor *KubeletPluginImpl::DraV1beta1::NodeUnprepareResources(
    grpc::CallbackServerContext *context, const drav1beta1::NodeUnprepareResourcesRequest *request,
    drav1beta1::NodeUnprepareResourcesResponse *response)
{
    return submitCall<
        UnprepareCall<drav1beta1::NodeUnprepareResourcesRequest, drav1beta1::NodeUnprepareResourcesResponse>>(
        impl_, context, request, response);
}

const std::vector<std::string> &KubeletPlugin::supportedVersions()
{
    // v1 first: the kubelet takes the first entry it supports.
    static const std::vector<std::string> versions{"v1.DRAPlugin", "v1beta1.DRAPlugin",
                                                   "v1alpha1.DRAResourceHealth"};
    return versions;
}

Result<std::unique_ptr<KubeletPlugin>> KubeletPlugin::start(const KubeletPluginOptions &options,
                                                             ClaimHandler &handler)
{
    if (options.driverName.empty() || options.driverName.find('/') != std::string::npos)
        return Error{"invalid DRA driver name \"" + options.driverName + "\""};
    if (options.pluginDir.empty() || options.registryDir.empty())
        return Error{"the DRA plugin needs both a plugin directory and the kubelet's plugin registry directory"};
    namespace fs = std::filesystem;
    // The kubelet dials the endpoint exactly as GetInfo names it: absolute.
    const fs::path pluginDir = fs::absolute(options.pluginDir).lexically_normal();
    const fs::path registryDir = fs::absolute(options.registryDir).lexically_normal();
    const std::string draPath = (pluginDir / "dra.sock").string();
    const std::string regPath = (registryDir / (options.driverName + "-reg.sock")).string();
    for (const std::string &path : {draPath, regPath})
        if (path.size() >= sizeof(sockaddr_un::sun_path))
            return Error{"the socket path " + path + " is longer than " +
                         std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes"};
    for (const fs::path &dir : {pluginDir, registryDir}) {
        std::error_code ec;
        fs::create_directories(dir, ec);
        if (ec)
            return Error{"cannot create the directory " + dir.string() + ": " + ec.message()};
    }

    auto impl = std::make_unique<KubeletPluginImpl>(options, handler, draPath, regPath);
    if (auto started = impl->start(); !started)
        return started.failure(); // ~KubeletPluginImpl stops what did start
    return std::unique_ptr<KubeletPlugin>(new KubeletPlugin(std::move(impl)));
}

KubeletPlugin::KubeletPlugin(std::unique_ptr<KubeletPluginImpl> impl) : impl_(std::move(impl)) {}

KubeletPlugin::~KubeletPlugin() = default;

void KubeletPlugin::setHealth(std::vector<DeviceHealthEntry> devices) { impl_->setHealth(std::move(devices)); }

bool KubeletPlugin::registered() const { return impl_->registered_; }

void KubeletPlugin::stop() { impl_->stop(); }

const std::string &KubeletPlugin::draSocketPath() const { return impl_->draPath_; }

const std::string &KubeletPlugin::registrationSocketPath() const { return impl_->regPath_; }

} // namespace kvgpu::dra
