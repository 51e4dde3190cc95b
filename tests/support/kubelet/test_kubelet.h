// A kubelet for tests: it serves the v1beta1 Registration service and talks to
// device plugins the way the real kubelet does, so that tests, the demo and the
// benchmarks can assert on what a kubelet would have seen.
//
// The behaviour copied from the real kubelet is the part a plugin can get wrong:
// Register is answered only after the kubelet has dialled the plugin back and
// called GetDevicePluginOptions (so a plugin that is not yet serving, or that
// blocks its own server while Register is pending, fails to register); the
// ListAndWatch stream is opened as the registration is accepted and is never
// redialled when it ends; a newer registration of the same resource replaces the
// older one; and a restart deletes every socket in the plugin directory and
// forgets all registrations, so the plugin has to notice and register again;
// a stopped kubelet leaves a stale kubelet.sock behind (found against the real
// kubelet on the cluster bench, docs/cluster-bench.md).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <grpcpp/support/status.h>

namespace grpc {
class ClientContext;
class Server;
} // namespace grpc

namespace v1beta1 {
class AllocateResponse;
} // namespace v1beta1

namespace kvgpu::test {

// Checks a resource name with the kubelet's rule for extended resources and
// returns why it is invalid, or nothing when the kubelet would accept it. It is
// a pure function so the rule itself can be tested without sockets.
std::optional<std::string> resourceNameError(std::string_view name);

// The canonical name of a gRPC status code ("FAILED_PRECONDITION"), for
// messages a reader can match against the gRPC documentation.
std::string_view statusCodeName(grpc::StatusCode code);

// Threading contract: TestKubelet is thread-safe. All state is guarded by one
// internal mutex, and every observer returns a copy, so tests may call any
// method from any thread while gRPC threads record what the plugin sends.
// The hooks (onUpdate, onRegistration, onRejection, onStreamEnded) run on
// gRPC or stream threads without the mutex held; they may call the observers
// and the actions but must not call start(), stop() or restart(), which join
// those very threads.
class TestKubelet {
public:
    struct Device {
        std::string id;
        std::string health;
        std::vector<int64_t> numaNodes;

        bool operator==(const Device&) const = default;
    };

    // An accepted Register call. The options are the ones the plugin answered
    // to GetDevicePluginOptions, because those are what the kubelet acts on.
    struct Registration {
        std::string resource;
        std::string endpoint;
        std::string version;
        bool preferredAllocation = false;
        bool preStartRequired = false;
        std::chrono::steady_clock::time_point at;
        int generation = 0; // restart count when the registration arrived
    };

    // A refused Register call; tests use it to prove a plugin never sent one.
    struct Rejection {
        std::string resource;
        std::string endpoint;
        std::string version;
        grpc::StatusCode code = grpc::StatusCode::OK;
        std::string message;
        std::chrono::steady_clock::time_point at;
    };

    // One ListAndWatch message. Each message replaces the whole device set.
    struct Update {
        std::vector<Device> devices;
        std::chrono::steady_clock::time_point at;
        int stream = 0; // id of the ListAndWatch stream, unique per kubelet
    };

    using UpdateHook = std::function<void(const std::string& resource, const Update&)>;
    using RegistrationHook = std::function<void(const Registration&)>;
    using RejectionHook = std::function<void(const Rejection&)>;
    using StreamEndedHook =
        std::function<void(const std::string& resource, int stream, const grpc::Status&)>;

    explicit TestKubelet(std::string pluginDir);
    ~TestKubelet();

    TestKubelet(const TestKubelet&) = delete;
    TestKubelet& operator=(const TestKubelet&) = delete;

    // Serves Registration on <pluginDir>/kubelet.sock. Throws std::runtime_error
    // when the socket cannot be served (path too long, directory missing), since
    // a test cannot go on without it. Does nothing when already serving.
    void start();
    // Cancels every ListAndWatch stream and stops serving. Registrations are
    // forgotten, as a dying kubelet forgets them; the recorded history stays.
    // kubelet.sock stays behind, refusing connections, as the real kubelet
    // (v1.36, stopped by SIGTERM) leaves it; start() serves it again. Only
    // the destructor removes it.
    void stop();
    // Restarts like the real kubelet: stop(), delete every socket file in the
    // plugin directory (directories and regular files stay), then start().
    void restart();

    const std::string& pluginDir() const { return pluginDir_; }
    std::string socketPath() const;

    // The real kubelet waits 10 s for GetDevicePluginOptions inside Register;
    // tests of a plugin that never answers shorten the wait.
    void setDialTimeout(std::chrono::milliseconds timeout);

    // Observers. Updates and ended streams are kept across restarts; latest()
    // is the last message any stream of the resource delivered.
    std::vector<Registration> registrations() const;
    std::vector<Rejection> rejections() const;
    std::vector<Update> updates(const std::string& resource) const;
    std::optional<std::vector<Device>> latest(const std::string& resource) const;
    // Streams still running (opened and not yet ended or cancelled).
    int openStreams() const;
    // Streams of the resource that the plugin ended (EOF or error). Streams the
    // kubelet cancels itself, on re-registration or stop, are not counted.
    int endedStreams(const std::string& resource) const;
    int restarts() const;
    // Whether the resource currently has an accepted registration.
    bool isRegistered(const std::string& resource) const;

    // Waits until the predicate holds, re-checking after every recorded change.
    // The predicate runs without the internal mutex so it can call observers.
    bool waitFor(const std::function<bool(const TestKubelet&)>& predicate,
                 std::chrono::milliseconds timeout) const;

    // Hooks for benchmarks and the sim-kubelet log. Each runs right after the
    // event has been recorded, on the thread that recorded it.
    void onUpdate(UpdateHook hook);
    void onRegistration(RegistrationHook hook);
    void onRejection(RejectionHook hook);
    void onStreamEnded(StreamEndedHook hook);

    // Actions on the plugin currently registered for the resource. Without a
    // registration they return FAILED_PRECONDITION, as the kubelet would never
    // call a plugin it does not know. preferredAllocation and preStart likewise
    // require the plugin to have advertised the option.
    grpc::Status allocate(const std::string& resource,
                          const std::vector<std::vector<std::string>>& containerRequests,
                          v1beta1::AllocateResponse* out);
    grpc::Status preferredAllocation(const std::string& resource,
                                     const std::vector<std::string>& available,
                                     const std::vector<std::string>& mustInclude, int size,
                                     std::vector<std::string>* out);
    grpc::Status preStart(const std::string& resource, const std::vector<std::string>& ids);

private:
    class RegistrationService;
    struct Client;
    struct Stream;

    grpc::Status handleRegister(const std::string& version, const std::string& endpoint,
                                const std::string& resource, int instance);
    grpc::Status reject(Rejection rejection);
    void runStream(std::shared_ptr<Stream> stream);
    std::shared_ptr<Client> clientFor(const std::string& resource) const;
    void cancelAndJoin(const std::shared_ptr<Stream>& stream);
    void notifyChanged(); // requires mu_
    enum class StaleSocket { Leave, Skip };
    void stopServing(StaleSocket stale);
    void leaveStaleSocket() const;

    const std::string pluginDir_;

    // Serializes start/stop/restart among themselves.
    std::mutex lifecycleMutex_;
    // Serializes the replace-and-spawn step of Register, so two registrations of
    // one resource cannot both join the same old stream.
    std::mutex registerMutex_;

    // Created once and kept until destruction: gRPC needs the service to
    // outlive every server that was built with it.
    std::vector<std::unique_ptr<RegistrationService>> services_; // one per start; guarded by mu_
    // Guarded by lifecycleMutex_; handlers never touch it.
    std::unique_ptr<grpc::Server> server_;

    mutable std::mutex mu_;
    mutable std::condition_variable changed_;
    // Everything below is guarded by mu_.
    uint64_t changes_ = 0;
    bool serving_ = false;
    std::chrono::milliseconds dialTimeout_{10000};
    std::set<grpc::ClientContext*> pendingDials_;
    std::map<std::string, std::shared_ptr<Client>> clients_;
    std::vector<Registration> registrations_;
    std::vector<Rejection> rejections_;
    std::map<std::string, std::vector<Update>> updates_;
    std::map<std::string, int> endedStreams_;
    int openStreams_ = 0;
    int nextStreamId_ = 1;
    int restarts_ = 0;
    UpdateHook updateHook_;
    RegistrationHook registrationHook_;
    RejectionHook rejectionHook_;
    StreamEndedHook streamEndedHook_;
};

} // namespace kvgpu::test
