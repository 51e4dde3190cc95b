// Serves the Prometheus text exposition at http://ADDRESS/metrics from
// prometheus-cpp's pull exposer (civetweb, one thread of its own). Scrapes
// read the metrics' atomics directly: they never wait for the event loop.
//
// Threading contract: start and destroy on one thread (the loop's); the
// exposer's thread only reads the registry, which is thread-safe. Destruction
// stops the exposer within milliseconds (see the destructor), using a short-
// lived thread of its own.
#pragma once

#include "base/result.h"

#include <memory>
#include <string>

namespace prometheus {
class Exposer;
class Registry;
} // namespace prometheus

namespace kvgpu {

class MetricsServer {
public:
    // The error says why the address cannot be served (port in use, bad
    // address).
    static Result<std::unique_ptr<MetricsServer>> start(const std::string &address,
                                                        std::shared_ptr<prometheus::Registry> registry);
    ~MetricsServer();
    MetricsServer(const MetricsServer &) = delete;
    MetricsServer &operator=(const MetricsServer &) = delete;

    // The port actually listened on (useful with port 0 in tests).
    int port() const;

private:
    MetricsServer(std::unique_ptr<prometheus::Exposer> exposer, std::shared_ptr<prometheus::Registry> registry,
                  std::string localHost);

    std::unique_ptr<prometheus::Exposer> exposer_;
    std::shared_ptr<prometheus::Registry> registry_; // kept alive while the exposer holds a weak pointer
    const std::string localHost_;                   // where a local client reaches the listener
};

} // namespace kvgpu
