// Keeps this node's ResourceSlices in the API server equal to the devices the
// DRA side offers. The loop states the pool it wants (want(), never blocking);
// a worker thread compares it with what the server holds and makes the
// smallest change, in the order the API asks (obsolete slices deleted first,
// then updates, then creates), with the pool's generation bumped whenever
// more than one slice changes. Level-based and coalesced: a burst of device
// changes costs one sync with the newest pool, a failed sync is retried with
// backoff, and a watch on the node's slices re-checks them whenever anybody
// else changes them (the kubelet deletes every slice of its node when it
// starts, and a driver's slices 30 s after its socket went away).
//
// Pool: one per node, named after the node; slices are owned by the Node
// object (they go when the Node is deleted). Stop deletes nothing: the kubelet
// removes the slices of a driver that stayed away.
//
// Thread safety: want(), publishedVersion() and stop() are thread-safe; the
// sync and watch threads talk to the API server through kube::Client, which
// is thread-safe. The callbacks run on the sync thread.
#pragma once

#include "dra/dra_pool.h"
#include "kube/client.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace kvgpu::dra {

struct SlicePublisherOptions {
    std::string driver;
    std::string nodeName; // also the pool's name
    std::chrono::milliseconds minBackoff{250};
    std::chrono::milliseconds maxBackoff{30000};
    // Called after every sync attempt: the pool version it brought to the
    // server (0 on failure), how many slices and devices the pool has, and
    // the error when it failed.
    std::function<void(std::uint64_t version, std::size_t slices, std::size_t devices, const std::string &error)>
        synced;
};

class SlicePublisher {
public:
    SlicePublisher(kube::Client &client, SlicePublisherOptions options);
    ~SlicePublisher(); // stop()
    SlicePublisher(const SlicePublisher &) = delete;
    SlicePublisher &operator=(const SlicePublisher &) = delete;

    // Starts the sync and watch threads; the first sync publishes the pool
    // wanted so far (an empty pool is one empty slice).
    void start();
    // The pool to publish, numbered by the caller (increasing).
    void want(DevicesByName devices, std::uint64_t version);
    // The newest version the server holds; 0 before the first success.
    std::uint64_t publishedVersion() const;
    // Waits until publishedVersion() >= version or the timeout passes.
    bool waitPublished(std::uint64_t version, std::chrono::milliseconds timeout) const;
    // Ends both threads within about 200 ms (their calls are cancelled).
    void stop();

private:
    void syncLoop();
    void watchLoop();
    // One comparison and the writes it needs; the error says what failed.
    Result<void> syncOnce(const DevicesByName &devices);
    Result<void> ensureNodeUid();
    // The resourceVersion of a list of this node's slices, to watch from.
    void requestResync();
    // The node's slices of this driver: the List object the server answers.
    Result<nlohmann::json> listSlices();
    // Keeps `items` as the server's slices (whole) or adds their versions
    // (one written), as echoes the watch may ignore.
    void remember(const std::vector<nlohmann::json> &items, bool whole = true);
    void forgetHeld();

    kube::Client &client_;
    const SlicePublisherOptions options_;
    const std::string selector_; // the field selector of this node's and driver's slices, escaped
    // Sync thread only.
    std::string nodeUid_;
    std::size_t lastSliceCount_ = 0;
    bool taintsDropped_ = false;

    mutable std::mutex mutex_;
    mutable std::condition_variable changed_;
    DevicesByName wanted_;
    std::uint64_t wantedVersion_ = 0;
    std::uint64_t publishedVersion_ = 0;
    bool resync_ = true;
    // The node's slices as the server held them after our last sync, while
    // nobody else changed them; and the versions of them we know.
    std::optional<std::vector<nlohmann::json>> held_;
    std::set<std::string> ourVersions_;
    bool stopping_ = false;
    std::atomic<bool> stopFlag_{false};
    std::thread sync_;
    std::thread watch_;
};

} // namespace kvgpu::dra
