// The DRA side of the daemon: a subscriber of the device index (the second,
// beside the device plugin side) that offers the devices whose API is DRA as
// this node's ResourceSlices and serves the kubelet's DRA calls for them.
//
// It starts on the loop when the node's configuration offers devices through
// DRA or the first DRA device appears (start()); until then the daemon is
// exactly the device plugin it always was, with no API access. What it
// starts: the API-server client (kube/), the slice publisher's threads
// (slice_publisher.h), the claim preparer (claim_preparer.h) and the kubelet
// plugin's gRPC servers (kubelet_plugin.h). Nothing on the loop waits for
// the API server: a change is handed to the publisher, which writes it in
// the background.
//
// Thread safety: everything but the snapshot is on the loop thread; the
// preparer reads the snapshot from the kubelet plugin's worker thread.
#pragma once

#include "dra/dra_options.h"
#include "dra/dra_pool.h"
#include "index/index_changes.h"
#include "loop/event_loop.h"
#include "metrics/metrics.h"
#include "sysfs/node_reader.h"
#include "sysfs/sysfs.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace kvgpu::kube {
class Client;
}

namespace kvgpu::dra {

class ClaimPreparer;
class KubeletPlugin;
class SlicePublisher;

struct DraSideConfig {
    DraOptions options;
    std::string nodeName;
    SysfsTree sysfs;
    DevTree dev;
    Metrics *metrics = nullptr;
};

class DraSide : public IndexSubscriber {
public:
    DraSide(EventLoop &loop, DraSideConfig config);
    ~DraSide() override;

    void indexChanged(const IndexChanges &changes) override;
    // Starts the DRA side if it has not started; a failure is logged (the
    // device plugin side goes on) and tried again at the next call.
    void start(const char *why);
    // Deregisters from the kubelet, answers calls in flight, stops the
    // publisher. The slices stay; the kubelet removes them 30 s later.
    void stop();

    bool started() const { return plugin_ != nullptr; }
    // For the readiness probe: not started, or registered with the kubelet.
    bool ready() const;
    // Runs `done` on the loop once the pool as it is now is in the API server
    // (true), or when `timeout` passes first (false). Immediately when the
    // DRA side has not started.
    void whenPublished(std::chrono::milliseconds timeout, std::function<void(bool)> done);

    const DraOptions &options() const { return config_.options; }

private:
    Result<void> startOnce();
    void publish();

    EventLoop &loop_;
    const DraSideConfig config_;
    DraPool pool_;
    std::uint64_t version_ = 0;
    std::atomic<bool> registered_{false};
    std::string lastStartError_;

    mutable std::mutex snapshotMutex_;
    std::shared_ptr<const DevicesByName> snapshot_;

    std::unique_ptr<kube::Client> client_;
    std::unique_ptr<SlicePublisher> publisher_;
    std::unique_ptr<ClaimPreparer> preparer_;
    std::unique_ptr<KubeletPlugin> plugin_;
    std::vector<std::thread> waiters_; // whenPublished(), joined at stop()
};

} // namespace kvgpu::dra
