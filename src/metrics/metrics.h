// What the daemon reports for graphs and alerts, as calls the code that knows
// a fact makes at one line each. This base class records nothing (the null
// object, for `list`, check-config and tests that do not look); the daemon
// uses PrometheusMetrics (prometheus_metrics.h).
//
// Label values are bounded: resources and devices are the node's own, and
// the free-form ones (uevent subsystems and actions, causes, results) are
// mapped onto fixed sets by the implementation.
//
// Threading contract: every method may be called from any thread (the loop
// records events, gRPC threads record Allocate calls); implementations are
// thread-safe.
#pragma once

#include "index/index_changes.h"

#include <chrono>
#include <map>
#include <string>
#include <string_view>

namespace kvgpu {

class Metrics {
public:
    virtual ~Metrics() = default;

    // A shared instance that records nothing, for code run without metrics.
    static Metrics &none();

    // What changed in the resources, as published to the index's subscribers.
    virtual void resourcesChanged(const std::map<std::string, ResourceDelta> & /*changed*/) {}

    // A Register call to the kubelet finished, accepted or not.
    virtual void registrationFinished(const std::string & /*resource*/, bool /*succeeded*/) {}
    // The resource is (no longer) registered, e.g. the kubelet restarted or a server restarts.
    virtual void registrationState(const std::string & /*resource*/, bool /*registered*/) {}

    // An Allocate call ended with this gRPC status code (0 is OK).
    virtual void allocateCall(const std::string & /*resource*/, int /*grpcStatusCode*/) {}

    virtual void ueventReceived(std::string_view /*subsystem*/, std::string_view /*action*/) {}
    // A receive queue overflowed and events were lost: "uevent" or "inotify".
    virtual void overflow(std::string_view /*source*/) {}
    // Every device was read again: "start", "overflow", "sighup".
    virtual void rescan(std::string_view /*cause*/) {}

    // A changed configuration file was "applied" or "refused".
    virtual void configReload(std::string_view /*result*/) {}
    // The configuration in force: its fingerprint ("" without --config) and
    // how many configurations have been applied since start.
    virtual void activeConfig(const std::string & /*hash*/, unsigned /*generation*/) {}

    // DRA: a sync of this node's ResourceSlices ended; on success with the
    // pool's slice and device counts.
    virtual void draSlicesSynced(bool /*succeeded*/, std::size_t /*slices*/, std::size_t /*devices*/) {}
    // DRA: one claim of a NodePrepareResources ("prepare") or
    // NodeUnprepareResources ("unprepare") call, served or failed.
    virtual void draClaimCall(std::string_view /*call*/, bool /*succeeded*/) {}
    // DRA: the kubelet accepted (or dropped) the plugin's registration.
    virtual void draRegistered(bool /*registered*/) {}
    // From an event's arrival on the loop to its publication to the kubelet.
    virtual void eventToPublish(std::chrono::nanoseconds /*latency*/) {}
};

} // namespace kvgpu
