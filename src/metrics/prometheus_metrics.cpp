#include "metrics/prometheus_metrics.h"

#include <algorithm>
#include <array>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

namespace kvgpu {

namespace {

// Free-form values become one of a fixed set, so a stray event cannot grow
// the number of series.
template <size_t N>
std::string bounded(std::string_view value, const std::array<std::string_view, N> &known)
{
    return std::find(known.begin(), known.end(), value) != known.end() ? std::string(value) : std::string("other");
}

constexpr std::array<std::string_view, 3> kSubsystems = {"pci", "mdev", "vfio"};
constexpr std::array<std::string_view, 8> kActions = {"add", "remove", "bind", "unbind",
                                                      "change", "move", "online", "offline"};
constexpr std::array<std::string_view, 2> kOverflowSources = {"uevent", "inotify"};
constexpr std::array<std::string_view, 3> kRescanCauses = {"start", "overflow", "sighup"};
constexpr std::array<std::string_view, 2> kReloadResults = {"applied", "refused"};

std::string statusName(int code)
{
    // The gRPC codes Allocate can end with; the rest are folded into "other".
    switch (code) {
    case 0: return "ok";
    case 1: return "cancelled";
    case 3: return "invalid_argument";
    case 4: return "deadline_exceeded";
    case 5: return "not_found";
    case 9: return "failed_precondition";
    case 13: return "internal";
    case 14: return "unavailable";
    default: return "other";
    }
}

// Event-to-publish latency: 50 µs to 2.5 s (the loop publishes within
// milliseconds; a rescan of a large node may take longer).
const prometheus::Histogram::BucketBoundaries kLatencyBuckets = {
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};

} // namespace

PrometheusMetrics::PrometheusMetrics(const std::string &version)
    : registry_(std::make_shared<prometheus::Registry>()),
      devices_(prometheus::BuildGauge()
                   .Name("kvgpu_devices")
                   .Help("Devices advertised per resource, by health (healthy, unhealthy)")
                   .Register(*registry_)),
      unhealthyDevice_(prometheus::BuildGauge()
                           .Name("kvgpu_device_unhealthy")
                           .Help("1 for each advertised device that is unhealthy, with the reason")
                           .Register(*registry_)),
      registered_(prometheus::BuildGauge()
                      .Name("kvgpu_resource_registered")
                      .Help("1 when the resource is registered with the running kubelet, else 0")
                      .Register(*registry_)),
      registrations_(prometheus::BuildCounter()
                         .Name("kvgpu_registrations_total")
                         .Help("Register calls to the kubelet, by resource and result (success, failure)")
                         .Register(*registry_)),
      allocations_(prometheus::BuildCounter()
                       .Name("kvgpu_allocate_calls_total")
                       .Help("Allocate calls from the kubelet, by resource and result (a gRPC status)")
                       .Register(*registry_)),
      uevents_(prometheus::BuildCounter()
                   .Name("kvgpu_uevents_total")
                   .Help("Kernel uevents received, by subsystem and action")
                   .Register(*registry_)),
      overflows_(prometheus::BuildCounter()
                     .Name("kvgpu_overflows_total")
                     .Help("Event queues that overflowed and lost events, by source (uevent, inotify)")
                     .Register(*registry_)),
      rescans_(prometheus::BuildCounter()
                   .Name("kvgpu_rescans_total")
                   .Help("Full rescans of the node, by cause (start, overflow, sighup)")
                   .Register(*registry_)),
      reloads_(prometheus::BuildCounter()
                   .Name("kvgpu_config_reloads_total")
                   .Help("Changes of the configuration file, by result (applied, refused)")
                   .Register(*registry_)),
      configGeneration_(prometheus::BuildGauge()
                            .Name("kvgpu_config_generation")
                            .Help("How many configurations have been applied since the plugin started")
                            .Register(*registry_)),
      configInfo_(prometheus::BuildGauge()
                      .Name("kvgpu_config_info")
                      .Help("1, labelled with the fingerprint of the configuration in force (empty: none)")
                      .Register(*registry_)),
      eventToPublish_(prometheus::BuildHistogram()
                          .Name("kvgpu_event_to_publish_seconds")
                          .Help("Time from an event reaching the plugin to its devices being published")
                          .Register(*registry_)
                          .Add({}, kLatencyBuckets)),
      draSyncs_(prometheus::BuildCounter()
                    .Name("kvgpu_dra_slice_syncs_total")
                    .Help("DRA: syncs of this node's ResourceSlices with the API server, by result (success, "
                          "failure; a failure is retried with backoff)")
                    .Register(*registry_)),
      draPool_(prometheus::BuildGauge()
                   .Name("kvgpu_dra_pool")
                   .Help("DRA: what the API server holds of this node's pool after the last successful sync "
                         "(what: slices, devices)")
                   .Register(*registry_)),
      draClaims_(prometheus::BuildCounter()
                     .Name("kvgpu_dra_claims_total")
                     .Help("DRA: claims the kubelet asked to prepare or unprepare, by call and result (success, "
                           "failure)")
                     .Register(*registry_)),
      draRegistered_(prometheus::BuildGauge()
                         .Name("kvgpu_dra_registered")
                         .Help("DRA: 1 when the kubelet accepted the DRA plugin's registration, else 0")
                         .Register(*registry_))
{
    prometheus::BuildGauge()
        .Name("kvgpu_build_info")
        .Help("1, labelled with the plugin's version")
        .Register(*registry_)
        .Add({{"version", version}})
        .Set(1);
    // Counters of fixed label sets start at zero, so rate() and alerts work
    // before the first event.
    for (std::string_view source : kOverflowSources)
        overflows_.Add({{"source", std::string(source)}});
    for (std::string_view cause : kRescanCauses)
        rescans_.Add({{"cause", std::string(cause)}});
    for (std::string_view result : kReloadResults)
        reloads_.Add({{"result", std::string(result)}});
    configGeneration_.Add({}).Set(0);
    activeConfig_ = &configInfo_.Add({{"hash", ""}});
    activeConfig_->Set(1);
}

PrometheusMetrics::~PrometheusMetrics() = default;

void PrometheusMetrics::resourcesChanged(const std::map<std::string, ResourceDelta> &changed)
{
    std::lock_guard lock(mutex_);
    for (const auto &[name, delta] : changed) {
        // Only the devices that changed: their old series go, unhealthy ones get a new one.
        std::map<std::string, prometheus::Gauge *> &series = unhealthyByResource_[name];
        auto drop = [&](const std::string &id) {
            if (auto it = series.find(id); it != series.end()) {
                unhealthyDevice_.Remove(it->second);
                series.erase(it);
            }
        };
        for (const std::string &id : delta.removed)
            drop(id);
        for (const AdvertisedDevice &device : delta.set) {
            drop(device.id);
            if (device.healthy)
                continue;
            prometheus::Gauge &gauge =
                unhealthyDevice_.Add({{"resource", name}, {"device", device.id}, {"reason", device.healthReason}});
            gauge.Set(1);
            series.emplace(device.id, &gauge);
        }
        devices_.Add({{"resource", name}, {"health", "healthy"}}).Set(static_cast<double>(delta.healthy));
        devices_.Add({{"resource", name}, {"health", "unhealthy"}}).Set(static_cast<double>(delta.unhealthy));
    }
}

void PrometheusMetrics::registrationFinished(const std::string &resource, bool succeeded)
{
    registrations_.Add({{"resource", resource}, {"result", succeeded ? "success" : "failure"}}).Increment();
}

void PrometheusMetrics::registrationState(const std::string &resource, bool registered)
{
    registered_.Add({{"resource", resource}}).Set(registered ? 1 : 0);
}

void PrometheusMetrics::allocateCall(const std::string &resource, int grpcStatusCode)
{
    allocations_.Add({{"resource", resource}, {"result", statusName(grpcStatusCode)}}).Increment();
}

void PrometheusMetrics::ueventReceived(std::string_view subsystem, std::string_view action)
{
    uevents_.Add({{"subsystem", bounded(subsystem, kSubsystems)}, {"action", bounded(action, kActions)}})
        .Increment();
}

void PrometheusMetrics::overflow(std::string_view source)
{
    overflows_.Add({{"source", bounded(source, kOverflowSources)}}).Increment();
}

void PrometheusMetrics::rescan(std::string_view cause)
{
    rescans_.Add({{"cause", bounded(cause, kRescanCauses)}}).Increment();
}

void PrometheusMetrics::configReload(std::string_view result)
{
    reloads_.Add({{"result", bounded(result, kReloadResults)}}).Increment();
}

void PrometheusMetrics::draSlicesSynced(bool succeeded, std::size_t slices, std::size_t devices)
{
    draSyncs_.Add({{"result", succeeded ? "success" : "failure"}}).Increment();
    if (!succeeded)
        return;
    draPool_.Add({{"what", "slices"}}).Set(static_cast<double>(slices));
    draPool_.Add({{"what", "devices"}}).Set(static_cast<double>(devices));
}

void PrometheusMetrics::draClaimCall(std::string_view call, bool succeeded)
{
    draClaims_.Add({{"call", call == "unprepare" ? "unprepare" : "prepare"}, {"result", succeeded ? "success" : "failure"}})
        .Increment();
}

void PrometheusMetrics::draRegistered(bool registered) { draRegistered_.Add({}).Set(registered ? 1 : 0); }

void PrometheusMetrics::activeConfig(const std::string &hash, unsigned generation)
{
    std::lock_guard lock(mutex_);
    configGeneration_.Add({}).Set(generation);
    if (activeConfig_)
        configInfo_.Remove(activeConfig_);
    activeConfig_ = &configInfo_.Add({{"hash", hash}});
    activeConfig_->Set(1);
}

void PrometheusMetrics::eventToPublish(std::chrono::nanoseconds latency)
{
    eventToPublish_.Observe(std::chrono::duration<double>(latency).count());
}

std::string PrometheusMetrics::render() const
{
    return prometheus::TextSerializer().Serialize(registry_->Collect());
}

} // namespace kvgpu
