// The kubelet-facing DevicePlugin service of one resource.
//
// Threading contract: gRPC calls every RPC on its own threads. The service
// never touches the device registry: the loop thread hands it what changed
// through publish(), which it applies to its own list under its mutex, and
// RPCs copy the few devices they need from that list. publish() is called by
// one thread (the loop); closeStreams(), openStreams() and devices() are
// thread-safe. ListAndWatch streams keep
// one write in flight each; a burst of publishes coalesces so that a stream
// always ends with the newest list.
//
// ListAndWatch is served raw: each list is encoded once into its wire bytes
// (list_and_watch_message.h), re-encoding only the devices that changed, and
// every stream writes those bytes as they are.
#pragma once

#include "api.grpc.pb.h"
#include "index/resource.h"
#include "sysfs/node_reader.h"
#include "sysfs/sysfs.h"
#include "metrics/metrics.h"
#include "plugin/list_and_watch_message.h"

#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>

namespace kvgpu {

class ListAndWatchStream;

// The callback service with ListAndWatch taking and writing raw bytes.
using DevicePluginCallbacks = v1beta1::DevicePlugin::WithCallbackMethod_GetDevicePluginOptions<
    v1beta1::DevicePlugin::WithRawCallbackMethod_ListAndWatch<
        v1beta1::DevicePlugin::WithCallbackMethod_GetPreferredAllocation<
            v1beta1::DevicePlugin::WithCallbackMethod_Allocate<
                v1beta1::DevicePlugin::WithCallbackMethod_PreStartContainer<v1beta1::DevicePlugin::Service>>>>>;

class DevicePluginService final : public DevicePluginCallbacks {
public:
    // Called from a gRPC thread when a ListAndWatch stream ends; `byClient` is
    // true when the kubelet cancelled it (rather than us closing it).
    using StreamEnded = std::function<void(bool byClient)>;

    // Allocate calls are counted in `metrics`, which must outlive the service.
    DevicePluginService(std::shared_ptr<const Resource> initial, SysfsTree sysfs, DevTree dev,
                        StreamEnded streamEnded, Metrics &metrics = Metrics::none());
    ~DevicePluginService() override;

    // Applies `delta` to the list. Open streams get a new message only when
    // what ListAndWatch shows (ids, health, topology) changed.
    void publish(const ResourceDelta &delta);
    // Finishes every open stream (before the server shuts down or re-registers).
    void closeStreams();
    int openStreams() const;
    // The resource with just the listed devices that it has (for an RPC).
    Resource devices(const std::vector<std::string> &ids) const;

    grpc::ServerUnaryReactor *GetDevicePluginOptions(grpc::CallbackServerContext *context,
                                                     const v1beta1::Empty *request,
                                                     v1beta1::DevicePluginOptions *response) override;
    // The synchronous overload stays the generated one (never called).
    using DevicePluginCallbacks::ListAndWatch;
    grpc::ServerWriteReactor<grpc::ByteBuffer> *ListAndWatch(grpc::CallbackServerContext *context,
                                                             const grpc::ByteBuffer *request) override;
    grpc::ServerUnaryReactor *GetPreferredAllocation(grpc::CallbackServerContext *context,
                                                     const v1beta1::PreferredAllocationRequest *request,
                                                     v1beta1::PreferredAllocationResponse *response) override;
    grpc::ServerUnaryReactor *Allocate(grpc::CallbackServerContext *context,
                                       const v1beta1::AllocateRequest *request,
                                       v1beta1::AllocateResponse *response) override;
    grpc::ServerUnaryReactor *PreStartContainer(grpc::CallbackServerContext *context,
                                                const v1beta1::PreStartContainerRequest *request,
                                                v1beta1::PreStartContainerResponse *response) override;

private:
    friend class ListAndWatchStream;
    void streamDone(ListAndWatchStream *stream, bool byClient);

    const SysfsTree sysfs_;
    const DevTree dev_;
    const StreamEnded streamEnded_;
    Metrics &metrics_;

    const std::string name_;
    const DeviceKind kind_;
    mutable std::mutex mutex_;
    DeviceMap devices_;                                              // guarded by mutex_; written by the loop only
    std::shared_ptr<const ListAndWatchMessage> message_;             // guarded by mutex_
    std::set<ListAndWatchStream *> streams_;                         // guarded by mutex_
    bool closing_ = false;                                           // guarded by mutex_
};

} // namespace kvgpu
