// The kubelet-facing DevicePlugin service of one resource.
//
// Threading contract: gRPC calls every RPC on its own threads. The service
// never touches the device registry: the loop thread hands it immutable
// snapshots through publish(), and RPCs read the newest one. publish() is
// called by one thread (the loop); closeStreams(), openStreams() and
// snapshot() are thread-safe. ListAndWatch streams keep
// one write in flight each; a burst of publishes coalesces so that a stream
// always ends with the newest list.
#pragma once

#include "api.grpc.pb.h"
#include "device/resource.h"
#include "device/node_reader.h"
#include "device/sysfs.h"

#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>

namespace kvgpu {

class ListAndWatchStream;

// What ListAndWatch sends for a resource: the full list of devices.
std::shared_ptr<const v1beta1::ListAndWatchResponse> listAndWatchMessage(const Resource &resource);
// Whether two lists give the same ListAndWatch message (ids, health, NUMA).
bool sameListAndWatchView(const Resource &a, const Resource &b);

class DevicePluginService final : public v1beta1::DevicePlugin::CallbackService {
public:
    // Called from a gRPC thread when a ListAndWatch stream ends; `byClient` is
    // true when the kubelet cancelled it (rather than us closing it).
    using StreamEnded = std::function<void(bool byClient)>;

    DevicePluginService(std::shared_ptr<const Resource> initial, SysfsTree sysfs, DevTree dev,
                        StreamEnded streamEnded);
    ~DevicePluginService() override;

    // Makes `resource` the current snapshot. Open streams get a new message only
    // when what ListAndWatch shows (ids, health, topology) changed.
    void publish(std::shared_ptr<const Resource> resource);
    // Finishes every open stream (before the server shuts down or re-registers).
    void closeStreams();
    int openStreams() const;
    std::shared_ptr<const Resource> snapshot() const;

    grpc::ServerUnaryReactor *GetDevicePluginOptions(grpc::CallbackServerContext *context,
                                                     const v1beta1::Empty *request,
                                                     v1beta1::DevicePluginOptions *response) override;
    grpc::ServerWriteReactor<v1beta1::ListAndWatchResponse> *
    ListAndWatch(grpc::CallbackServerContext *context, const v1beta1::Empty *request) override;
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

    mutable std::mutex mutex_;
    std::shared_ptr<const Resource> resource_;                       // guarded by mutex_
    std::shared_ptr<const v1beta1::ListAndWatchResponse> message_;   // guarded by mutex_
    std::set<ListAndWatchStream *> streams_;                         // guarded by mutex_
    bool closing_ = false;                                           // guarded by mutex_
};

} // namespace kvgpu
