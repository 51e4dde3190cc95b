#include "metrics/metrics_server.h"

#include <exception>

#include <prometheus/exposer.h>
#include <prometheus/registry.h>

namespace kvgpu {

Result<std::unique_ptr<MetricsServer>> MetricsServer::start(const std::string &address,
                                                            std::shared_ptr<prometheus::Registry> registry)
{
    try {
        // One worker thread: a scrape is a few kilobytes, and Prometheus scrapes
        // one target at a time.
        auto exposer = std::make_unique<prometheus::Exposer>(address, 1);
        exposer->RegisterCollectable(registry);
        return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(exposer), std::move(registry)));
    } catch (const std::exception &e) {
        // civetweb reports a port in use or a bad address by throwing.
        return Error{e.what()};
    }
}

MetricsServer::MetricsServer(std::unique_ptr<prometheus::Exposer> exposer,
                             std::shared_ptr<prometheus::Registry> registry)
    : exposer_(std::move(exposer)), registry_(std::move(registry))
{
}

MetricsServer::~MetricsServer() = default;

int MetricsServer::port() const
{
    std::vector<int> ports = exposer_->GetListeningPorts();
    return ports.empty() ? 0 : ports.front();
}

} // namespace kvgpu
