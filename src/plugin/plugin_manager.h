// Keeps one DevicePlugin server per resource, registered with the kubelet.
//
// It is told what is advertised (update) and what happened to the kubelet
// (its socket appeared, one of our sockets vanished, a stream was cancelled)
// and derives what to do: start a server for a new resource, publish a changed
// list, stop and restart a server and register again. Registration with a
// kubelet that is there but refuses is retried with bounded backoff; a missing
// kubelet is waited for (the daemon reports kubelet.sock appearing).
//
// Threading contract: bound to the loop thread. gRPC callbacks (Register
// completions, stream ends) are posted back to the loop before they touch
// any state.
#pragma once

#include "device/resource.h"
#include "loop/event_loop.h"
#include "metrics/metrics.h"
#include "plugin/resource_server.h"

#include <map>
#include <memory>
#include <string>

#include <sys/types.h>

namespace kvgpu {

struct PluginConfig {
    std::string pluginDir;
    SysfsTree sysfs;
    DevTree dev;
    Metrics *metrics = &Metrics::none(); // registrations and Allocate calls are counted here
};

class PluginManager {
public:
    PluginManager(EventLoop &loop, PluginConfig config);
    ~PluginManager();
    PluginManager(const PluginManager &) = delete;
    PluginManager &operator=(const PluginManager &) = delete;

    // Takes the resources whose lists changed: new ones start a server and
    // register, known ones publish. A resource that lost its last device comes
    // with an empty list and keeps serving it (capacity 0) rather than
    // vanishing from the node.
    void update(std::map<std::string, Resource> changed);

    // kubelet.sock was created: a kubelet (re)started. Registers every
    // resource that is not registered with this kubelet instance yet.
    void kubeletSocketCreated();
    // A file in the plugin directory was deleted; when it is one of our
    // sockets, that server restarts on the same path and registers again.
    void socketDeleted(const std::string &fileName);
    // Stops every server and removes our sockets.
    void shutdown();

    bool allRegistered() const;
    size_t resourceCount() const { return entries_.size(); }

private:
    struct KubeletId {
        dev_t device = 0;
        ino_t inode = 0;
        bool operator==(const KubeletId &) const = default;
    };
    enum class State { New, Waiting, Registering, Registered, Failed };
    struct Entry {
        std::string name;
        std::string socketFile;
        std::shared_ptr<const Resource> resource;
        std::unique_ptr<ResourceServer> server;
        State state = State::New;
        unsigned serverGeneration = 0; // ignores events of servers already replaced
        unsigned attempt = 0;          // failed registrations in a row
        std::string lastError;
        KubeletId registeredWith;
        std::unique_ptr<Timer> retry;
    };

    std::string kubeletSocketPath() const;
    std::optional<KubeletId> currentKubelet() const;
    void reconnect(Entry &entry, const char *why);
    bool restartServer(Entry &entry);
    void startRegistration(Entry &entry);
    void registrationDone(const std::string &name, unsigned generation, const grpc::Status &status);
    void streamEnded(const std::string &name, unsigned generation, bool byClient);
    void scheduleRetry(Entry &entry);

    EventLoop &loop_;
    PluginConfig config_;
    std::map<std::string, Entry> entries_;
    bool shutDown_ = false;
};

} // namespace kvgpu
