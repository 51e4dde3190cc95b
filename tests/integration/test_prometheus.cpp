// The exposition against Prometheus' own tools (Debian's `prometheus`
// package): `promtool check metrics` accepts a scrape taken after real
// changes on the simulated node, and a real Prometheus server on loopback
// scrapes the plugin and answers a query for one of its series through its
// HTTP API. Exits 77 (skipped) when the package is not installed.
#define DOCTEST_CONFIG_IMPLEMENT
#include "config_stage.h"

#include <doctest/doctest.h>

#include <csignal>

using namespace kvgpu::test;

namespace {

const char *kPromtool = "/usr/bin/promtool";
const char *kPrometheus = "/usr/bin/prometheus";

std::string urlEncode(const std::string &text)
{
    std::string out;
    for (unsigned char c : text) {
        if (std::isalnum(c) || c == '_' || c == '-' || c == '.')
            out += static_cast<char>(c);
        else
            out += fmt::format("%{:02X}", c);
    }
    return out;
}

struct Scraped : PluginFixture {
    Scraped()
    {
        metricsPort = freeTcpPort();
        kubelet->start();
        startPlugin();
        REQUIRE_MESSAGE(kubeletSees(kT4, {"0000:67:00.0", "0000:68:00.0"}), log());
    }
    ~Scraped()
    {
        plugin->signal(SIGTERM);
        std::optional<int> exit = plugin->waitExit(scaled(std::chrono::seconds(10)));
        CHECK_MESSAGE(exit == 0, log());
    }
    std::string scrape() const { return httpGet(metricsPort, "/metrics"); }
};

} // namespace

TEST_CASE("promtool accepts the exposition after real changes on the node")
{
    Scraped f;
    f.node->unbind("0000:68:00.0");
    f.node->deleteVfioNode(40); // an unhealthy device, with its reason as a label
    REQUIRE(f.kubeletSeesHealth(kA100, "0000:ca:00.0", "Unhealthy"));
    REQUIRE(eventually([&] { return f.scrape().find("kvgpu_device_unhealthy{") != std::string::npos; }));

    f.files.write("scrape.txt", f.scrape());
    CommandResult check = runCommand(std::string(kPromtool) + " check metrics < " + quoted(f.files.path("scrape.txt")));
    CHECK_MESSAGE(check.exitCode == 0, check.output);
    // Only our own families are linted here; a finding would name one.
    CHECK_MESSAGE(check.output.find("kvgpu_") == std::string::npos, check.output);
}

TEST_CASE("a real Prometheus scrapes the plugin and answers a query for its devices")
{
    Scraped f;
    int webPort = freeTcpPort();
    f.files.write("prometheus.yml", fmt::format(R"(global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: kubevirt-gpu-device-plugin
    scrape_interval: 1s
    static_configs:
      - targets: ["127.0.0.1:{}"]
)", f.metricsPort));
    f.files.mkdir("tsdb");
    DaemonProcess prometheus(kPrometheus,
                             {"--config.file=" + f.files.path("prometheus.yml"),
                              "--storage.tsdb.path=" + f.files.path("tsdb"),
                              "--web.listen-address=127.0.0.1:" + std::to_string(webPort),
                              "--storage.tsdb.retention.time=1h", "--log.level=warn"},
                             f.files.path("prometheus.log"));

    const std::string query =
        "kvgpu_devices{job=\"kubevirt-gpu-device-plugin\",resource=\"nvidia.com/TU104GL_TESLA_T4\",health=\"healthy\"}";
    std::string answer;
    bool answered = eventually(
        [&] {
            answer = httpGet(webPort, "/api/v1/query?query=" + urlEncode(query));
            return answer.find("\"status\":\"success\"") != std::string::npos &&
                   answer.find("\"2\"]") != std::string::npos;
        },
        std::chrono::seconds(30));
    CHECK_MESSAGE(answered, answer << "\n" << prometheus.log());

    // The target is up from Prometheus' point of view.
    std::string up = httpGet(webPort, "/api/v1/query?query=" + urlEncode("up{job=\"kubevirt-gpu-device-plugin\"}"));
    CHECK_MESSAGE(up.find("\"1\"]") != std::string::npos, up);

    // A change on the node reaches Prometheus' next scrape.
    f.node->unbind("0000:68:00.0");
    REQUIRE(f.kubeletSees(kT4, {"0000:67:00.0"}));
    bool moved = eventually(
        [&] {
            answer = httpGet(webPort, "/api/v1/query?query=" + urlEncode(query));
            return answer.find("\"1\"]") != std::string::npos;
        },
        std::chrono::seconds(30));
    CHECK_MESSAGE(moved, answer);
}

int main(int argc, char **argv)
{
    if (::access(kPromtool, X_OK) != 0 || ::access(kPrometheus, X_OK) != 0) {
        std::fprintf(stderr, "skipped: %s or %s missing (Debian package prometheus)\n", kPromtool, kPrometheus);
        return 77;
    }
    doctest::Context context(argc, argv);
    return context.run();
}
