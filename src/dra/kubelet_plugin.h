// The DRA driver's kubelet-facing side: serves the DRAPlugin service (v1 and
// v1beta1) and the DRAResourceHealth service (v1alpha1) on
// <pluginDir>/dra.sock, then registers with the kubelet through
// <registryDir>/<driver>-reg.sock. Prepare and unprepare calls are handed to
// a ClaimHandler that the owner implements; health is a list the owner sets.
//
// What the kubelet relies on, and how it is kept here:
//  - dra.sock is served before the registration socket exists, so the
//    kubelet never dials an endpoint that is not there yet.
//  - GetInfo is answered at once on a gRPC thread (the kubelet waits 1 s),
//    never behind a prepare: claim calls run on a worker thread of their own.
//  - Every claim UID in a request is answered, with a per-claim error where
//    the handler failed or gave no outcome; a gRPC error would fail the pod's
//    every claim, so it is only sent when the plugin stops mid-call.
//  - stop() removes the registration socket first (the kubelet deregisters),
//    then the servers and dra.sock; it removes only the sockets it created.
//
// Threading contract: start(), stop() and the destructor are called by the
// owner on one thread; setHealth() and registered() may be called from any
// thread. ClaimHandler calls are made on the plugin's worker thread, one at a
// time (prepare and unprepare never overlap), so the handler may block, e.g.
// on the API server. The registration callback runs on a gRPC thread.
#pragma once

#include "base/result.h"

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace kvgpu::dra {

// A claim as the kubelet names it in a prepare or unprepare call.
struct ClaimRef {
    std::string ns, uid, name;

    bool operator==(const ClaimRef &) const = default;
};

// One device prepared for a claim: what the kubelet hands to the runtime.
struct PreparedDevice {
    std::vector<std::string> requestNames; // base request names; empty = all requests of the claim
    std::string pool, device;
    std::vector<std::string> cdiIds; // "vendor/class=name"

    bool operator==(const PreparedDevice &) const = default;
};

struct ClaimOutcome {
    std::vector<PreparedDevice> devices;
    std::string error; // non-empty = this claim failed (devices are then not sent)

    bool operator==(const ClaimOutcome &) const = default;
};

// Implemented by the owner. Both calls get all claims of one kubelet call and
// return an outcome per claim UID; a UID missing from the result is answered
// with an error. Called on the plugin's worker thread, never concurrently.
// The handler must outlive the KubeletPlugin.
class ClaimHandler {
public:
    virtual ~ClaimHandler() = default;
    virtual std::map<std::string /*uid*/, ClaimOutcome> prepare(const std::vector<ClaimRef> &claims) = 0;
    // Value: the claim's error, empty = unprepared (or never prepared).
    virtual std::map<std::string /*uid*/, std::string /*error*/> unprepare(const std::vector<ClaimRef> &claims) = 0;
};

struct DeviceHealthEntry {
    std::string pool, device;
    enum Health { Unknown, Healthy, Unhealthy } health = Unknown;
    std::string message;          // sent truncated to 1024 bytes
    std::int64_t lastUpdated = 0; // Unix seconds

    bool operator==(const DeviceHealthEntry &) const = default;
};

struct KubeletPluginOptions {
    std::string driverName;                                   // "gpu-vm.example.com"
    std::string pluginDir;                                    // "/var/lib/kubelet/plugins/<driver>": holds dra.sock
    std::string registryDir = "/var/lib/kubelet/plugins_registry"; // holds <driver>-reg.sock
    // Called on a gRPC thread each time the kubelet reports a registration
    // outcome (error is the kubelet's text when registered is false). It must
    // not call stop(): stopping waits for this call to return.
    std::function<void(bool registered, const std::string &error)> registrationChanged;
    // Every open health stream gets the full list at least this often.
    std::chrono::milliseconds healthResendInterval = std::chrono::seconds(10);
};

class KubeletPluginImpl; // kubelet_plugin.cpp

class KubeletPlugin {
public:
    // The services announced in GetInfo, preferred first.
    static const std::vector<std::string> &supportedVersions();

    // Creates the directories if missing, replaces a stale socket at either
    // path, serves dra.sock, then the registration socket. The error names the
    // path and what to check.
    static Result<std::unique_ptr<KubeletPlugin>> start(const KubeletPluginOptions &options, ClaimHandler &handler);
    // stop(), then waits for a handler call still running (see stop()).
    ~KubeletPlugin();
    KubeletPlugin(const KubeletPlugin &) = delete;
    KubeletPlugin &operator=(const KubeletPlugin &) = delete;

    // Replaces the health list; open streams get it at once when it differs
    // from the last one. Thread-safe.
    void setHealth(std::vector<DeviceHealthEntry> devices);

    // Whether the kubelet's last NotifyRegistrationStatus said registered.
    bool registered() const;

    // Removes the registration socket, ends the health streams, answers every
    // queued or running claim call with UNAVAILABLE (the kubelet retries the
    // pod later; a handler call in progress is left to finish on the worker
    // thread and its result is dropped), shuts the servers down and removes
    // dra.sock. Returns within about a second whatever the handler or the
    // kubelet do. Idempotent.
    void stop();

    const std::string &draSocketPath() const;
    const std::string &registrationSocketPath() const;

private:
    explicit KubeletPlugin(std::unique_ptr<KubeletPluginImpl> impl);
    std::unique_ptr<KubeletPluginImpl> impl_;
};

} // namespace kvgpu::dra
