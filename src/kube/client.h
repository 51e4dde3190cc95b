// The HTTPS client of the Kubernetes API server for the DRA side: plain
// requests (GET a Node, create or delete a ResourceSlice, read a
// ResourceClaim) and watch streams, over libcurl. It knows HTTP, TLS and the
// bearer token, not the resources: callers build the paths and the JSON.
//
// Every call blocks its calling thread until the answer, an error, a stop or
// cancelAll(), so it belongs on a worker thread, never on the loop thread.
//
// Thread safety: thread-safe. Any number of threads may call request(),
// watch() and cancelAll() on one Client at once; each call runs its own curl
// handle (taken from a pool, so connections are reused between calls), and
// the token is shared under a lock. The Client must outlive every call.
#pragma once

#include "base/result.h"
#include "kube/access.h"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace kvgpu::kube {

struct ClientOptions {
    std::chrono::milliseconds connectTimeout{5000};
    // The whole of a request(); watches have none (see watchIdleTimeout).
    std::chrono::milliseconds requestTimeout{30000};
    // A watch that receives nothing for this long fails, so a peer that
    // vanished without closing is noticed; zero leaves it to TCP keepalive and
    // to the timeoutSeconds the caller puts in the watch URL. Keep it above the
    // server's bookmark interval (about a minute) when set.
    std::chrono::seconds watchIdleTimeout{0};
    // A larger answer is an error rather than unbounded memory.
    std::size_t maxResponseBytes = 64u << 20;
    std::string userAgent = "kubevirt-gpu-device-plugin";
};

// An answer of the server with any HTTP status.
struct Response {
    long status = 0;
    std::string body;

    bool succeeded() const { return status >= 200 && status < 300; }
};

// What the server says went wrong: the `message` of a Kubernetes Status body,
// else the body's first line trimmed (at most 200 characters), else "HTTP <code>".
std::string statusMessage(const Response &response);

class Client {
public:
    // Checks the access (a server URL, readable token file) and initialises
    // libcurl once per process; creation makes no connection.
    static Result<std::unique_ptr<Client>> create(ClusterAccess access, ClientOptions options = {});
    ~Client();
    Client(const Client &) = delete;
    Client &operator=(const Client &) = delete;

    // One HTTP exchange with `path` ("/api/v1/nodes/n", with its query) on the
    // server. Any HTTP status is a Response; a transport failure (refused,
    // TLS, timeout, cancelAll) is an error naming the method, the URL and why.
    // A non-empty body is sent with `contentType` (e.g. application/merge-patch+json).
    Result<Response> request(std::string_view method, const std::string &path, const std::string &body = {},
                             std::string_view contentType = "application/json");

    // A streaming GET of `path` (a "?watch=1" URL): calls `onEvent` on the
    // calling thread with every complete newline-terminated line, in order and
    // without its newline (empty lines skipped); a line split across reads is
    // delivered whole, and a last line that the server cut off without its
    // newline is dropped. Returns success when the server ends the stream or
    // within 200 ms after `stop` becomes true; an error on a transport
    // failure, on cancelAll(), or when the server answers with a status other
    // than 2xx ("HTTP 410: <statusMessage>"). An exception thrown by onEvent
    // ends the watch and propagates to the caller.
    Result<void> watch(const std::string &path, const std::function<void(std::string_view line)> &onEvent,
                       const std::atomic<bool> &stop);

    // For shutdown: every request and watch in flight fails within 200 ms
    // with "cancelled", and every later call fails at once. Permanent.
    void cancelAll();

    const std::string &server() const;

private:
    struct Impl;
    explicit Client(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

} // namespace kvgpu::kube
