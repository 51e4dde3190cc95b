// What the registration state machine (PluginManager) needs from the server
// of one resource, behind an interface so that it can be tested in-process
// with fakes: serve a resource on a socket, publish new lists, count open
// ListAndWatch streams, and stop without blocking the loop.
//
// Threading contract: EndpointFactory::serve, publish and stop are called on
// the loop thread; openStreams is thread-safe. `streamEnded` and `stopped`
// run on other threads (gRPC's, or the endpoint's stopper) and must only post
// to the loop. An endpoint may be destroyed once `stopped` has run; its
// destructor may then wait briefly for the stopper thread to exit.
#pragma once

#include "base/result.h"
#include "index/index_changes.h"

#include <functional>
#include <memory>
#include <string>

namespace kvgpu {

class ResourceEndpoint {
public:
    virtual ~ResourceEndpoint() = default;
    // What changed in the resource's list since the last publish.
    virtual void publish(const ResourceDelta &delta) = 0;
    virtual int openStreams() const = 0;
    // Ends every stream, stops listening and removes the socket file, off the
    // loop thread; `stopped` runs once all of that is done. Called at most once.
    virtual void stop(std::function<void()> stopped) = 0;
};

class EndpointFactory {
public:
    // `byClient` is true when the kubelet cancelled the stream (rather than us
    // closing it).
    using StreamEnded = std::function<void(bool byClient)>;
    virtual ~EndpointFactory() = default;
    // Serves `resource` on `socketPath`; the socket exists when this returns.
    virtual Result<std::unique_ptr<ResourceEndpoint>> serve(const std::string &socketPath,
                                                            std::shared_ptr<const Resource> resource,
                                                            StreamEnded streamEnded) = 0;
};

} // namespace kvgpu
