// Metrics kept in a prometheus-cpp registry, rendered in the Prometheus text
// format by render() (tests) or by a MetricsServer (/metrics). Series of
// fixed label sets (overflows, rescans, reloads) exist from the start at zero,
// so rate() and alerts work before the first event; series labelled by
// resource or device appear with them.
//
// Threading contract: thread-safe. prometheus-cpp's counters, gauges and
// histograms are atomic and its families lock; the series this class adds
// and removes per resource and per unhealthy device are guarded by mutex_.
#pragma once

#include "metrics/metrics.h"

#include <memory>
#include <mutex>
#include <set>
#include <string>

namespace prometheus {
class Registry;
class Counter;
class Gauge;
class Histogram;
template <typename T> class Family;
} // namespace prometheus

namespace kvgpu {

class PrometheusMetrics final : public Metrics {
public:
    explicit PrometheusMetrics(const std::string &version);
    ~PrometheusMetrics() override;

    void resourcesChanged(const std::map<std::string, ResourceDelta> &changed) override;
    void registrationFinished(const std::string &resource, bool succeeded) override;
    void registrationState(const std::string &resource, bool registered) override;
    void allocateCall(const std::string &resource, int grpcStatusCode) override;
    void ueventReceived(std::string_view subsystem, std::string_view action) override;
    void overflow(std::string_view source) override;
    void rescan(std::string_view cause) override;
    void configReload(std::string_view result) override;
    void activeConfig(const std::string &hash, unsigned generation) override;
    void eventToPublish(std::chrono::nanoseconds latency) override;
    void draSlicesSynced(bool succeeded, std::size_t slices, std::size_t devices) override;
    void draClaimCall(std::string_view call, bool succeeded) override;
    void draRegistered(bool registered) override;

    // The exposition as a scrape would see it.
    std::string render() const;
    std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

private:
    std::shared_ptr<prometheus::Registry> registry_;
    prometheus::Family<prometheus::Gauge> &devices_;
    prometheus::Family<prometheus::Gauge> &unhealthyDevice_;
    prometheus::Family<prometheus::Gauge> &registered_;
    prometheus::Family<prometheus::Counter> &registrations_;
    prometheus::Family<prometheus::Counter> &allocations_;
    prometheus::Family<prometheus::Counter> &uevents_;
    prometheus::Family<prometheus::Counter> &overflows_;
    prometheus::Family<prometheus::Counter> &rescans_;
    prometheus::Family<prometheus::Counter> &reloads_;
    prometheus::Family<prometheus::Gauge> &configGeneration_;
    prometheus::Family<prometheus::Gauge> &configInfo_;
    prometheus::Histogram &eventToPublish_;
    prometheus::Family<prometheus::Counter> &draSyncs_;
    prometheus::Family<prometheus::Gauge> &draPool_;
    prometheus::Family<prometheus::Counter> &draClaims_;
    prometheus::Family<prometheus::Gauge> &draRegistered_;

    std::mutex mutex_;
    // The unhealthy-device series of each resource, by device id.
    std::map<std::string, std::map<std::string, prometheus::Gauge *>> unhealthyByResource_; // guarded by mutex_
    prometheus::Gauge *activeConfig_ = nullptr;                                     // guarded by mutex_
};

} // namespace kvgpu
