// The metrics as a scrape shows them: counters of fixed labels present before
// their first event, values that follow what the daemon reports, series of devices that
// recover removed, free-form labels folded into bounded sets, and the
// exposition served over HTTP.
#include "metrics/metrics_server.h"
#include "metrics/prometheus_metrics.h"

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace kvgpu;

namespace {

bool has(const std::string &exposition, const std::string &line)
{
    return exposition.find("\n" + line + "\n") != std::string::npos || exposition.rfind(line + "\n", 0) == 0;
}

// Two T4s, the second as `secondHealthy` says; both listed as changed.
ResourceDelta t4s(bool secondHealthy)
{
    ResourceDelta d;
    d.set.push_back(AdvertisedDevice{.id = "0000:67:00.0"});
    d.set.push_back(AdvertisedDevice{.id = "0000:68:00.0", .healthy = secondHealthy,
                                     .healthReason = secondHealthy ? "" : "no /dev/vfio/21"});
    d.healthy = secondHealthy ? 2 : 1;
    d.unhealthy = secondHealthy ? 0 : 1;
    return d;
}

std::string httpGet(int port, const std::string &path)
{
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr *>(&address), sizeof(address)) == 0);
    std::string request = "GET " + path + " HTTP/1.0\r\nHost: localhost\r\n\r\n";
    REQUIRE(::write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size()));
    std::string response;
    char buffer[4096];
    ssize_t n;
    while ((n = ::read(fd, buffer, sizeof(buffer))) > 0)
        response.append(buffer, static_cast<size_t>(n));
    ::close(fd);
    return response;
}

} // namespace

TEST_CASE("before any event the counters of fixed labels are there, at zero, with the build's version")
{
    PrometheusMetrics metrics("1.2.3");
    std::string text = metrics.render();
    CHECK(has(text, "kvgpu_build_info{version=\"1.2.3\"} 1"));
    CHECK(has(text, "kvgpu_rescans_total{cause=\"overflow\"} 0"));
    CHECK(has(text, "kvgpu_overflows_total{source=\"uevent\"} 0"));
    CHECK(has(text, "kvgpu_config_reloads_total{result=\"refused\"} 0"));
    CHECK(has(text, "kvgpu_config_generation 0"));
    CHECK(has(text, "kvgpu_config_info{hash=\"\"} 1"));
    CHECK(has(text, "kvgpu_event_to_publish_seconds_count 0"));
    // Families labelled by resource appear with the first resource.
    CHECK(text.find("kvgpu_devices") == std::string::npos);
}

TEST_CASE("a device turning unhealthy moves the gauges and adds its series; recovering removes it")
{
    PrometheusMetrics metrics("test");
    metrics.resourcesChanged({{"nvidia.com/TU104GL_TESLA_T4", t4s(true)}});
    std::string text = metrics.render();
    CHECK(has(text, "kvgpu_devices{health=\"healthy\",resource=\"nvidia.com/TU104GL_TESLA_T4\"} 2"));
    CHECK(has(text, "kvgpu_devices{health=\"unhealthy\",resource=\"nvidia.com/TU104GL_TESLA_T4\"} 0"));
    CHECK(text.find("kvgpu_device_unhealthy{") == std::string::npos);

    metrics.resourcesChanged({{"nvidia.com/TU104GL_TESLA_T4", t4s(false)}});
    text = metrics.render();
    CHECK(has(text, "kvgpu_devices{health=\"healthy\",resource=\"nvidia.com/TU104GL_TESLA_T4\"} 1"));
    CHECK(has(text, "kvgpu_devices{health=\"unhealthy\",resource=\"nvidia.com/TU104GL_TESLA_T4\"} 1"));
    CHECK(has(text, "kvgpu_device_unhealthy{device=\"0000:68:00.0\",reason=\"no /dev/vfio/21\","
                    "resource=\"nvidia.com/TU104GL_TESLA_T4\"} 1"));

    metrics.resourcesChanged({{"nvidia.com/TU104GL_TESLA_T4", t4s(true)}});
    text = metrics.render();
    CHECK(text.find("kvgpu_device_unhealthy{") == std::string::npos);

    // An unhealthy device that leaves takes its series with it.
    metrics.resourcesChanged({{"nvidia.com/TU104GL_TESLA_T4", t4s(false)}});
    metrics.resourcesChanged({{"nvidia.com/TU104GL_TESLA_T4",
                               ResourceDelta{.removed = {"0000:68:00.0"}, .healthy = 1, .unhealthy = 0}}});
    text = metrics.render();
    CHECK(text.find("kvgpu_device_unhealthy{") == std::string::npos);
    CHECK(has(text, "kvgpu_devices{health=\"healthy\",resource=\"nvidia.com/TU104GL_TESLA_T4\"} 1"));

    // An emptied resource keeps its series at zero, as it keeps serving an empty list.
    metrics.resourcesChanged(
        {{"nvidia.com/TU104GL_TESLA_T4", ResourceDelta{.removed = {"0000:67:00.0", "0000:68:00.0"}}}});
    CHECK(has(metrics.render(), "kvgpu_devices{health=\"healthy\",resource=\"nvidia.com/TU104GL_TESLA_T4\"} 0"));
}

TEST_CASE("registrations, Allocate calls, uevents, rescans and reloads are counted with bounded labels")
{
    PrometheusMetrics metrics("test");
    metrics.registrationFinished("nvidia.com/X", false);
    metrics.registrationFinished("nvidia.com/X", true);
    metrics.registrationState("nvidia.com/X", true);
    metrics.allocateCall("nvidia.com/X", 0);
    metrics.allocateCall("nvidia.com/X", 3);
    metrics.allocateCall("nvidia.com/X", 3);
    metrics.allocateCall("nvidia.com/X", 12);
    metrics.ueventReceived("pci", "bind");
    metrics.ueventReceived("pci", "bind");
    metrics.ueventReceived("usb", "weird-action");
    metrics.overflow("uevent");
    metrics.rescan("overflow");
    metrics.rescan("something new");
    metrics.configReload("refused");
    metrics.activeConfig("00ff00ff00ff00ff", 2);
    metrics.eventToPublish(std::chrono::microseconds(300));

    std::string text = metrics.render();
    CHECK(has(text, "kvgpu_registrations_total{resource=\"nvidia.com/X\",result=\"failure\"} 1"));
    CHECK(has(text, "kvgpu_registrations_total{resource=\"nvidia.com/X\",result=\"success\"} 1"));
    CHECK(has(text, "kvgpu_resource_registered{resource=\"nvidia.com/X\"} 1"));
    CHECK(has(text, "kvgpu_allocate_calls_total{resource=\"nvidia.com/X\",result=\"ok\"} 1"));
    CHECK(has(text, "kvgpu_allocate_calls_total{resource=\"nvidia.com/X\",result=\"invalid_argument\"} 2"));
    CHECK(has(text, "kvgpu_allocate_calls_total{resource=\"nvidia.com/X\",result=\"other\"} 1"));
    CHECK(has(text, "kvgpu_uevents_total{action=\"bind\",subsystem=\"pci\"} 2"));
    CHECK(has(text, "kvgpu_uevents_total{action=\"other\",subsystem=\"other\"} 1"));
    CHECK(has(text, "kvgpu_overflows_total{source=\"uevent\"} 1"));
    CHECK(has(text, "kvgpu_rescans_total{cause=\"overflow\"} 1"));
    CHECK(has(text, "kvgpu_rescans_total{cause=\"other\"} 1"));
    CHECK(has(text, "kvgpu_config_reloads_total{result=\"refused\"} 1"));
    CHECK(has(text, "kvgpu_config_generation 2"));
    CHECK(has(text, "kvgpu_config_info{hash=\"00ff00ff00ff00ff\"} 1"));
    CHECK(text.find("kvgpu_config_info{hash=\"\"}") == std::string::npos); // the old one is gone
    CHECK(has(text, "kvgpu_event_to_publish_seconds_count 1"));
    CHECK(has(text, "kvgpu_event_to_publish_seconds_bucket{le=\"0.0005\"} 1"));
    CHECK(has(text, "kvgpu_event_to_publish_seconds_bucket{le=\"0.00025\"} 0"));
}

TEST_CASE("the exposition is served at /metrics; a port in use is a clear error")
{
    PrometheusMetrics metrics("test");
    metrics.rescan("sighup");
    auto server = MetricsServer::start("127.0.0.1:0", metrics.registry());
    REQUIRE_MESSAGE(server, server.error());
    REQUIRE((*server)->port() > 0);
    std::string response = httpGet((*server)->port(), "/metrics");
    CHECK(response.rfind("HTTP/1.1 200", 0) == 0);
    CHECK(response.find("\nkvgpu_rescans_total{cause=\"sighup\"} 1\n") != std::string::npos);

    auto second = MetricsServer::start("127.0.0.1:" + std::to_string((*server)->port()), metrics.registry());
    CHECK_FALSE(second);
    CHECK_FALSE(second.error().empty());
}
