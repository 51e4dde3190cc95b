// Keeps one DevicePlugin server per resource, registered with the kubelet:
// the registration state machine.
//
// Each resource has two parts of state. Its server: serving (on a socket whose
// inode we know), stopping (off the loop; served again once stopped), or none
// (serving failed; retried with backoff). Its registration: Waiting (no
// kubelet.sock), Registering with a kubelet instance (the socket's inode),
// Registered with it, BackingOff (a Register failed, or the kubelet cancelled
// the stream soon after accepting it), or Due (the backoff ran out).
//
// Every event (a list changed, kubelet.sock created or deleted, one of our
// sockets deleted, a Register answered, a stream cancelled, a timer) ends in
// reconcile(), which compares those states with what is on disk now: a server
// whose socket is gone is restarted (once, however many events say so); a
// kubelet instance we are not registered with is registered with at once,
// with a fresh backoff. A Register in flight belongs to the manager until its
// completion arrives, so shutdown() can cancel it and the destructor (or
// awaitStopped) can wait for it.
//
// Threading contract: bound to the loop thread. gRPC callbacks (Register
// completions, stream ends, servers stopped) only post to the loop, and count
// themselves in a thread-safe tally that awaitStopped() waits on.
#pragma once

#include "index/index_changes.h"
#include "sysfs/node_reader.h"
#include "index/resource.h"
#include "sysfs/sysfs.h"
#include "loop/event_loop.h"
#include "loop/lifeline.h"
#include "plugin/kubelet_registrar.h"
#include "plugin/plugin_directory.h"
#include "plugin/resource_endpoint.h"
#include "metrics/metrics.h"

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace kvgpu {

struct PluginConfig {
    std::string pluginDir;
    SysfsTree sysfs;
    DevTree dev;
    Metrics *metrics = &Metrics::none(); // registrations and Allocate calls are counted here
};

struct PluginTiming {
    std::chrono::milliseconds firstRetry{100};
    std::chrono::milliseconds maxRetry{30000};
    // A ListAndWatch stream that stayed up this long was a working
    // registration: its end re-registers at once and resets the backoff.
    std::chrono::milliseconds stableStream{10000};
};

class PluginManager final : public IndexSubscriber {
public:
    // The real servers and kubelet, in config.pluginDir.
    PluginManager(EventLoop &loop, PluginConfig config);
    PluginManager(EventLoop &loop, std::string pluginDir, std::unique_ptr<EndpointFactory> endpoints,
                  std::unique_ptr<KubeletRegistrar> registrar, PluginTiming timing = {});
    // Shuts down and waits (boundedly) for calls and servers still stopping.
    ~PluginManager();
    PluginManager(const PluginManager &) = delete;
    PluginManager &operator=(const PluginManager &) = delete;

    // As a subscriber of the device index: applies each resource's changes to
    // the list it keeps; a new resource starts a server and registers, a known
    // one publishes the change to its server. A resource that lost its last
    // device keeps serving an empty list (capacity 0) rather than vanishing
    // from the node.
    void indexChanged(const IndexChanges &changes) override;
    // The same for resources given as whole lists (tests).
    void update(std::map<std::string, Resource> changed);

    // What the KubeletWatch reports. kubelet.sock was created or deleted.
    void kubeletChanged();
    // A file in the plugin directory was deleted; when it is one of our
    // sockets, that server restarts on the same path and registers again.
    void socketDeleted(const std::string &fileName);
    // The plugin directory was removed: nothing can be registered any more,
    // and a re-created directory is invisible to a pod's hostPath mount.
    void pluginDirectoryGone();
    // Anything may have happened: check every resource against the disk.
    void reconcileAll(const char *why);

    // Cancels every Register in flight and starts stopping every server; does
    // not block. Idempotent.
    void shutdown();
    // After shutdown(), on the loop thread while the loop is not running:
    // waits up to `limit` until every Register completion has arrived and every
    // server has stopped (its socket removed). Returns whether all did.
    bool awaitStopped(std::chrono::milliseconds limit);

    bool allRegistered() const;
    // False once the plugin directory is gone: only a restart of the pod helps.
    bool live() const { return !directoryGone_; }
    size_t resourceCount() const { return entries_.size(); }

private:
    void apply(const std::string &name, const ResourceDelta &delta);
    enum class Registration { None, Waiting, Registering, Registered, BackingOff, Due };
    struct Entry {
        std::string name;
        std::string socketFile;
        DeviceKind kind = DeviceKind::Passthrough;
        DeviceMap devices; // the list as the index published it
        std::unique_ptr<ResourceEndpoint> server; // null while none serves
        std::optional<FileIdentity> serverSocket; // the socket file it listens on
        bool stopping = false;       // the old server is stopping; serve again once it has
        unsigned serverGeneration = 0; // ignores stream ends of servers already replaced
        Registration state = Registration::None; // never registered yet
        std::optional<KubeletInstance> target; // the kubelet of the latest Register
        unsigned call = 0;                     // serial of the Register in flight, 0 for none
        unsigned attempt = 0;                  // backoff steps taken since the last success
        std::string lastError;
        std::chrono::steady_clock::time_point registeredAt;
        std::unique_ptr<Timer> retry;
    };

    // Counts callbacks still to come from other threads.
    struct Tally {
        std::mutex mutex;
        std::condition_variable changed;
        int pending = 0; // guarded by mutex
        void begin();
        void end();
    };

    bool socketIntact(const Entry &entry) const;
    void reconcile(Entry &entry, const char *why);
    bool serve(Entry &entry);
    void restartServer(Entry &entry, const char *why);
    void stopServer(Entry &entry);
    void serverStopped(const std::string &name, unsigned serial);
    void sendRegister(Entry &entry, const KubeletInstance &kubelet);
    void cancelCall(Entry &entry);
    void registrationDone(const std::string &name, unsigned serial, const grpc::Status &status);
    void streamEnded(const std::string &name, unsigned generation, bool byClient);
    void scheduleRetry(Entry &entry);
    // Posts `task` to the loop; it runs only while this manager lives.
    template <typename Task>
    void postBack(Task task);

    EventLoop &loop_;
    const PluginDirectory dir_;
    const std::unique_ptr<EndpointFactory> endpoints_;
    const std::unique_ptr<KubeletRegistrar> registrar_;
    Metrics *metrics_ = &Metrics::none(); // registrations are counted here
    const PluginTiming timing_;
    std::map<std::string, Entry> entries_;
    // Owned until their completion arrives (never destroyed inside it).
    std::map<unsigned, std::unique_ptr<RegistrationCall>> calls_;
    std::map<unsigned, std::unique_ptr<ResourceEndpoint>> stoppingServers_;
    unsigned nextSerial_ = 1;
    std::shared_ptr<Tally> tally_ = std::make_shared<Tally>();
    // Posted tasks hold a weak reference: the loop may outlive the manager.
    Lifeline lifeline_; // completions posted back run only while the manager exists
    bool shutDown_ = false;
    bool directoryGone_ = false;
};

} // namespace kvgpu
