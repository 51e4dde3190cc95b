#include "plugin/device_plugin_service.h"

#include "base/log.h"
#include "allocation/allocation.h"

#include "base/strings.h"

#include <algorithm>
#include <utility>


namespace kvgpu {

// One ListAndWatch stream. Lives from the RPC's start until OnDone, where it
// deletes itself. All state is guarded by mutex_ because pushes come from the
// loop thread (through publish) while gRPC threads run the callbacks.
class ListAndWatchStream final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
public:
    ListAndWatchStream(DevicePluginService *service, std::shared_ptr<const ListAndWatchMessage> first)
        : service_(service)
    {
        std::lock_guard lock(mutex_);
        pending_ = std::move(first);
        writeNextLocked();
    }

    void push(std::shared_ptr<const ListAndWatchMessage> message)
    {
        std::lock_guard lock(mutex_);
        pending_ = std::move(message);
        if (!writing_)
            writeNextLocked();
    }

    // Ends the stream from our side (shutdown, re-registration).
    void close()
    {
        std::lock_guard lock(mutex_);
        finishLocked(grpc::Status::OK, false);
    }

    void OnWriteDone(bool ok) override
    {
        std::lock_guard lock(mutex_);
        writing_ = false;
        inFlight_.Clear();
        if (finishRequested_) {
            Finish(finishStatus_);
            return;
        }
        if (!ok) {
            finishLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, "stream write failed"), true);
            return;
        }
        writeNextLocked();
    }

    void OnCancel() override
    {
        std::lock_guard lock(mutex_);
        finishLocked(grpc::Status::CANCELLED, true);
    }

    void OnDone() override
    {
        bool byClient;
        {
            std::lock_guard lock(mutex_);
            byClient = byClient_;
        }
        service_->streamDone(this, byClient);
        delete this;
    }

private:
    void writeNextLocked()
    {
        if (!pending_ || finishRequested_)
            return;
        inFlight_ = toByteBuffer(std::move(pending_));
        pending_.reset();
        writing_ = true;
        StartWrite(&inFlight_);
    }

    // Finish runs exactly once, and never with a write in flight: then it waits
    // for OnWriteDone.
    void finishLocked(grpc::Status status, bool byClient)
    {
        if (finishRequested_)
            return;
        finishRequested_ = true;
        byClient_ = byClient;
        finishStatus_ = std::move(status);
        if (!writing_)
            Finish(finishStatus_);
    }

    DevicePluginService *const service_;
    std::mutex mutex_;
    std::shared_ptr<const ListAndWatchMessage> pending_; // guarded by mutex_
    grpc::ByteBuffer inFlight_;                          // guarded by mutex_; gRPC reads it until OnWriteDone
    bool writing_ = false;                               // guarded by mutex_
    bool finishRequested_ = false;                       // guarded by mutex_
    bool byClient_ = false;                              // guarded by mutex_
    grpc::Status finishStatus_;                          // guarded by mutex_
};

DevicePluginService::DevicePluginService(std::shared_ptr<const Resource> initial, SysfsTree sysfs,
                                         DevTree dev, StreamEnded streamEnded, Metrics &metrics)
    : sysfs_(std::move(sysfs)), dev_(std::move(dev)), streamEnded_(std::move(streamEnded)), metrics_(metrics),
      name_(initial->name), kind_(initial->kind)
{
    // Under the mutex although nothing else can see the service yet: gRPC
    // hands it to its threads through locks TSan cannot see, and the first
    // ListAndWatch reads these under the mutex.
    std::lock_guard lock(mutex_);
    message_ = ListAndWatchMessage::build(*initial);
    for (const AdvertisedDevice &device : initial->devices)
        devices_.emplace(device.id, device);
}

DevicePluginService::~DevicePluginService() = default;

void DevicePluginService::publish(const ResourceDelta &delta)
{
    // Only this (loop) thread writes devices_ and message_, so reading them
    // unlocked here is safe. What the kubelet can see of the change:
    ResourceDelta visible{.kind = delta.kind};
    for (const std::string &id : delta.removed)
        if (devices_.contains(id))
            visible.removed.push_back(id);
    for (const AdvertisedDevice &device : delta.set)
        if (auto it = devices_.find(device.id); it == devices_.end() || !sameListAndWatchView(it->second, device))
            visible.set.push_back(device);
    // Only the devices that changed are encoded; the rest are copied from the
    // previous message.
    std::shared_ptr<const ListAndWatchMessage> message;
    if (!visible.removed.empty() || !visible.set.empty())
        message = ListAndWatchMessage::apply(*message_, visible);
    // The message replaced here is released when this returns, after the
    // streams have started writing the new one: freeing a list of thousands of
    // devices is work the kubelet need not wait for.
    std::shared_ptr<const ListAndWatchMessage> replaced;
    std::lock_guard lock(mutex_);
    applyDelta(devices_, delta);
    if (!message)
        return;
    replaced = std::exchange(message_, message);
    for (ListAndWatchStream *stream : streams_)
        stream->push(message);
}

void DevicePluginService::closeStreams()
{
    std::lock_guard lock(mutex_);
    closing_ = true;
    for (ListAndWatchStream *stream : streams_)
        stream->close();
}

int DevicePluginService::openStreams() const
{
    std::lock_guard lock(mutex_);
    return static_cast<int>(streams_.size());
}

Resource DevicePluginService::devices(const std::vector<std::string> &ids) const
{
    Resource out{name_, kind_, {}};
    std::lock_guard lock(mutex_);
    for (const std::string &id : ids)
        if (auto it = devices_.find(id); it != devices_.end())
            out.devices.push_back(it->second);
    std::sort(out.devices.begin(), out.devices.end(), [](const auto &a, const auto &b) { return a.id < b.id; });
    out.devices.erase(std::unique(out.devices.begin(), out.devices.end(),
                                  [](const auto &a, const auto &b) { return a.id == b.id; }),
                      out.devices.end());
    return out;
}

void DevicePluginService::streamDone(ListAndWatchStream *stream, bool byClient)
{
    {
        std::lock_guard lock(mutex_);
        streams_.erase(stream);
    }
    if (streamEnded_)
        streamEnded_(byClient);
}

grpc::ServerUnaryReactor *DevicePluginService::GetDevicePluginOptions(grpc::CallbackServerContext *context,
                                                                      const v1beta1::Empty *,
                                                                      v1beta1::DevicePluginOptions *response)
{
    response->set_pre_start_required(false);
    response->set_get_preferred_allocation_available(true);
    auto *reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
}

grpc::ServerWriteReactor<grpc::ByteBuffer> *DevicePluginService::ListAndWatch(grpc::CallbackServerContext *,
                                                                             const grpc::ByteBuffer *)
{
    std::lock_guard lock(mutex_);
    auto *stream = new ListAndWatchStream(this, message_);
    streams_.insert(stream);
    if (closing_)
        stream->close();
    log::debug("ListAndWatch stream opened",
               {{"resource", name_}, {"streams", std::to_string(streams_.size())}});
    return stream;
}

grpc::ServerUnaryReactor *DevicePluginService::GetPreferredAllocation(
    grpc::CallbackServerContext *context, const v1beta1::PreferredAllocationRequest *request,
    v1beta1::PreferredAllocationResponse *response)
{
    auto *reactor = context->DefaultReactor();
    for (const auto &container : request->container_requests()) {
        std::vector<std::string> available(container.available_deviceids().begin(),
                                           container.available_deviceids().end());
        std::vector<std::string> must(container.must_include_deviceids().begin(),
                                      container.must_include_deviceids().end());
        std::vector<std::string> named = available;
        named.insert(named.end(), must.begin(), must.end());
        Resource resource = devices(named);
        Result<std::vector<std::string>> chosen =
            preferredAllocation(resource, available, must, container.allocation_size());
        if (!chosen) {
            log::warn("GetPreferredAllocation refused", {{"resource", name_}, {"reason", chosen.error()}});
            reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, chosen.error()));
            return reactor;
        }
        auto *out = response->add_container_responses();
        for (const std::string &id : *chosen)
            out->add_deviceids(id);
    }
    reactor->Finish(grpc::Status::OK);
    return reactor;
}

grpc::ServerUnaryReactor *DevicePluginService::Allocate(grpc::CallbackServerContext *context,
                                                        const v1beta1::AllocateRequest *request,
                                                        v1beta1::AllocateResponse *response)
{
    grpc::ServerUnaryReactor *reactor = context->DefaultReactor();
    auto finish = [&](const grpc::Status &status) {
        metrics_.allocateCall(name_, status.error_code());
        reactor->Finish(status);
    };
    if (request->container_requests().empty()) {
        finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            "Allocate request for " + name_ + " has no container requests"));
        return reactor;
    }
    for (const auto &container : request->container_requests()) {
        std::vector<std::string> ids(container.devices_ids().begin(), container.devices_ids().end());
        Result<ContainerAllocation, AllocationError> result = allocateContainer(devices(ids), ids, sysfs_, dev_);
        if (!result) {
            bool invalid = result.failure().code == AllocationError::Code::InvalidArgument;
            log::warn("Allocate refused", {{"resource", name_}, {"reason", result.error()}});
            finish(grpc::Status(invalid ? grpc::StatusCode::INVALID_ARGUMENT
                                        : grpc::StatusCode::FAILED_PRECONDITION,
                                result.error()));
            return reactor;
        }
        auto *out = response->add_container_responses();
        for (const auto &[key, value] : result->envs)
            (*out->mutable_envs())[key] = value;
        for (const DeviceNode &node : result->devices) {
            auto *spec = out->add_devices();
            spec->set_container_path(node.containerPath);
            spec->set_host_path(node.hostPath);
            spec->set_permissions(node.permissions);
        }
        log::info("allocated", {{"resource", name_}, {"devices", join(ids, ",")}});
    }
    finish(grpc::Status::OK);
    return reactor;
}

grpc::ServerUnaryReactor *DevicePluginService::PreStartContainer(grpc::CallbackServerContext *context,
                                                                 const v1beta1::PreStartContainerRequest *,
                                                                 v1beta1::PreStartContainerResponse *)
{
    auto *reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
}

} // namespace kvgpu
