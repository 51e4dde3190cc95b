// Resource names from a configuration, live reloads and the metrics, end to
// end on the simulated node: what the kubelet receives when a rule renames,
// merges or excludes devices and when the file changes under the running
// plugin, and what a scrape of /metrics shows after real changes.
#include "api.grpc.pb.h"
#include "config_stage.h"

#include <doctest/doctest.h>

#include <csignal>

using namespace kvgpu::test;

namespace {

const std::string kT4a = "0000:67:00.0";
const std::string kT4b = "0000:68:00.0";
const std::string kA100Gpu = "0000:ca:00.0";
const std::string kFirstVgpu = "aa618089-8b16-4d01-a136-25a0f3c73123";
const std::string kGeneric = "nvidia.com/passthrough-gpu";
const std::string kShortL4 = "nvidia.com/L4-1Q";

// One generic name for the T4s and the A100, a short vGPU name, and on nodes
// "gpu-a-*" the second T4 kept for the host.
const char *kRenameMergeExclude = R"(version: 1
resources:
  - name: nvidia.com/passthrough-gpu
    match:
      kind: passthrough
      deviceIds: ["10de:1eb8", "10de:20f1"]
  - name: nvidia.com/L4-1Q
    match: { model: "*L4-1Q" }
nodes:
  - name: "gpu-a-*"
    resources:
      - exclude: true
        match: { addresses: ["0000:68:00.0"] }
)";

const char *kNoRules = "version: 1\n";

struct Configured : PluginFixture {
    explicit Configured(const std::string &initial, const std::string &nodeName = "gpu-a-1",
                        bool asConfigMap = false)
        : config(files.path("config"))
    {
        if (asConfigMap)
            config.updateAsConfigMap(initial);
        else
            config.saveAsEditor(initial);
        metricsPort = freeTcpPort();
        kubelet->start();
        startPlugin({"--config", config.file(), "--node-name", nodeName});
    }

    // A daemon stopped with SIGTERM exits 0: a leak, a race or a handle left
    // open (under the sanitizers) fails the story that started it.
    ~Configured()
    {
        plugin->signal(SIGTERM);
        std::optional<int> exit = plugin->waitExit(scaled(10s));
        CHECK_MESSAGE(exit == 0, log());
    }

    std::string scrape() const { return httpGet(metricsPort, "/metrics"); }
    bool scrapeShows(const std::string &line)
    {
        return eventually([&] { return scrape().find("\n" + line + "\n") != std::string::npos; });
    }

    ConfigDirectory config;
};

} // namespace

TEST_CASE("a rule renames, merges and excludes devices; Allocate answers under the new names")
{
    Configured f(kRenameMergeExclude);
    REQUIRE_MESSAGE(f.kubeletSees(kGeneric, {kT4a, kA100Gpu}), f.log());
    REQUIRE(f.kubeletSees(kShortL4, {kFirstVgpu}));
    // The default names are not registered at all: nothing is left under them.
    CHECK_FALSE(f.kubelet->isRegistered(kT4));
    CHECK_FALSE(f.kubelet->isRegistered(kA100));
    CHECK_FALSE(f.kubelet->isRegistered(kL4x1Q));

    v1beta1::AllocateResponse passthrough;
    REQUIRE(f.kubelet->allocate(kGeneric, {{kT4a, kA100Gpu}}, &passthrough).ok());
    CHECK(passthrough.container_responses(0).envs().at("PCI_RESOURCE_NVIDIA_COM_PASSTHROUGH-GPU") ==
          kT4a + "," + kA100Gpu);
    v1beta1::AllocateResponse vgpu;
    grpc::Status status = f.kubelet->allocate(kShortL4, {{kFirstVgpu}}, &vgpu);
    REQUIRE_MESSAGE(status.ok(), status.error_message());
    CHECK(vgpu.container_responses(0).envs().at("MDEV_PCI_RESOURCE_NVIDIA_COM_L4-1Q") == kFirstVgpu);
    // The excluded GPU is not this resource's.
    CHECK(f.kubelet->allocate(kGeneric, {{kT4b}}, &passthrough).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_CASE("on another node the same file leaves the node-specific GPU in")
{
    Configured f(kRenameMergeExclude, "gpu-b-1");
    CHECK_MESSAGE(f.kubeletSees(kGeneric, {kT4a, kT4b, kA100Gpu}), f.log());
}

TEST_CASE("an editor's save moves devices live: they leave the old list and join the new one")
{
    Configured f(kNoRules);
    REQUIRE_MESSAGE(f.kubeletSees(kT4, {kT4a, kT4b}), f.log());
    REQUIRE(f.kubeletSees(kA100, {kA100Gpu}));

    f.config.saveAsEditor(kRenameMergeExclude);
    CHECK_MESSAGE(f.kubeletSees(kGeneric, {kT4a, kA100Gpu}), f.log());
    CHECK(f.kubeletSees(kShortL4, {kFirstVgpu}));
    // Emptied resources stay registered and list nothing.
    CHECK(f.kubeletSees(kT4, {}));
    CHECK(f.kubeletSees(kA100, {}));
    CHECK(f.kubeletSees(kL4x1Q, {}));
    CHECK(f.kubelet->isRegistered(kT4));

    // And back: a write in place is seen too.
    f.config.writeInPlace(kNoRules);
    CHECK_MESSAGE(f.kubeletSees(kT4, {kT4a, kT4b}), f.log());
    CHECK(f.kubeletSees(kGeneric, {}));
}

TEST_CASE("a ConfigMap update (the ..data symlink swapped) is applied; the generation and hash move")
{
    Configured f(kNoRules, "gpu-a-1", true);
    REQUIRE_MESSAGE(f.kubeletSees(kT4, {kT4a, kT4b}), f.log());
    REQUIRE(f.scrapeShows("kvgpu_config_generation 1"));

    f.config.updateAsConfigMap(kRenameMergeExclude);
    CHECK_MESSAGE(f.kubeletSees(kGeneric, {kT4a, kA100Gpu}), f.log());
    CHECK(f.scrapeShows("kvgpu_config_generation 2"));
    CHECK(f.scrapeShows("kvgpu_config_reloads_total{result=\"applied\"} 1"));
    CHECK(f.plugin->waitForLog("configuration applied", scaled(5s)));
}

TEST_CASE("a bad reload changes nothing, is logged once and counted; the next good one applies")
{
    Configured f(kRenameMergeExclude);
    REQUIRE_MESSAGE(f.kubeletSees(kGeneric, {kT4a, kA100Gpu}), f.log());
    size_t genericUpdates = f.kubelet->updates(kGeneric).size();

    const std::string typo = "version: 1\nresources:\n  - name: nvidia.com/passthrough-gpu\n    match: {modle: x}\n";
    f.config.saveAsEditor(typo);
    REQUIRE(f.plugin->waitForLog("configuration refused", scaled(5s)));
    CHECK(f.log().find("line 4, column 13: unknown key") != std::string::npos);
    CHECK(f.scrapeShows("kvgpu_config_reloads_total{result=\"refused\"} 1"));
    // The same bad text saved again is not news.
    f.config.saveAsEditor(typo);
    // Valid on its own, but it would put a vGPU beside passthrough GPUs.
    f.config.saveAsEditor("version: 1\nresources:\n  - name: nvidia.com/passthrough-gpu\n"
                          "    match: { deviceIds: [\"10de:1eb8\"] }\n  - name: nvidia.com/passthrough-gpu\n"
                          "    match: { model: \"*L4-1Q\" }\n");
    REQUIRE(eventually([&] { return occurrences(f.log(), "configuration refused") == 2; }));
    CHECK(f.log().find("one kind of device per resource") != std::string::npos);

    // The fence: a good file applies, so every bad one was read before it.
    f.config.saveAsEditor(kNoRules);
    REQUIRE(f.kubeletSees(kT4, {kT4a, kT4b}));
    REQUIRE(f.kubeletSees(kGeneric, {}));
    CHECK(occurrences(f.log(), "configuration refused") == 2);
    CHECK(f.scrapeShows("kvgpu_config_reloads_total{result=\"refused\"} 2"));
    CHECK(f.scrapeShows("kvgpu_config_reloads_total{result=\"applied\"} 1"));
    // The refused files sent nothing: the generic resource got one update since, the good file's.
    CHECK(f.kubelet->updates(kGeneric).size() == genericUpdates + 1);
    CHECK(f.kubelet->updates(kT4).size() == 1);
}

TEST_CASE("a bad file at start: the plugin exits non-zero with the error, line and column")
{
    PluginFixture f;
    ConfigDirectory config(f.files.path("config"));
    config.saveAsEditor("version: 1\nresources:\n  - name: nvidia.com/bad name\n");
    f.startPlugin({"--config", config.file()});
    std::optional<int> exit = f.plugin->waitExit(scaled(5s));
    REQUIRE(exit);
    CHECK(*exit == 1);
    CHECK(f.log().find("line 3, column 11: resource name") != std::string::npos);

    PluginFixture missing;
    missing.startPlugin({"--config", missing.files.path("nowhere.yaml")});
    REQUIRE(missing.plugin->waitExit(scaled(5s)) == 1);
    CHECK(missing.log().find("nowhere.yaml: cannot open") != std::string::npos);
}

TEST_CASE("check-config prints every device with its resource and the rule that decided it; list names the rule")
{
    PluginFixture f;
    ConfigDirectory config(f.files.path("config"));
    config.saveAsEditor(kRenameMergeExclude);
    std::string common = " --sysfs-root " + quoted(f.node->sysfsRoot()) + " --dev-root " + quoted(f.node->devRoot()) +
                         " --pci-ids " + quoted(f.files.path("pci.ids"));
    CommandResult check = runCommand(quoted(pluginBinary()) + " check-config " + quoted(config.file()) +
                                     " --node-name gpu-a-1" + common);
    CHECK_MESSAGE(check.exitCode == 0, check.output);
    CHECK(check.output.find("node gpu-a-1: 3 rules in force") != std::string::npos);
    auto line = [&](const std::string &device) {
        size_t at = check.output.find("\n" + device);
        if (at == std::string::npos)
            return std::string();
        return check.output.substr(at + 1, check.output.find('\n', at + 1) - at - 1);
    };
    CHECK(line(kT4a).find("nvidia.com/passthrough-gpu") != std::string::npos);
    CHECK(line(kT4a).find("rule resources[0] (line 3)") != std::string::npos);
    CHECK(line(kT4b).find("not advertised: excluded by rule nodes[0].resources[0] (line 12)") != std::string::npos);
    CHECK(line(kFirstVgpu).find("nvidia.com/L4-1Q") != std::string::npos);
    CHECK(line("0000:67:00.1").find("travels with IOMMU group 20") != std::string::npos);

    CommandResult list = runCommand(quoted(pluginBinary()) + " list --config " + quoted(config.file()) +
                                    " --node-name gpu-b-1" + common);
    CHECK_MESSAGE(list.exitCode == 0, list.output);
    CHECK(list.output.find("nvidia.com/passthrough-gpu Healthy; named by rule resources[0] (line 3)") !=
          std::string::npos);

    config.saveAsEditor("version: 1\nresources:\n  - exclude: maybe\n");
    CommandResult bad = runCommand(quoted(pluginBinary()) + " check-config " + quoted(config.file()) + common);
    CHECK(bad.exitCode == 1);
    CHECK(bad.output.find("line 3, column 14: exclude must be true or false") != std::string::npos);
}

TEST_CASE("the metrics move with the node: a GPU unbound, a node deleted, a uevent, an Allocate")
{
    Configured f(kNoRules);
    REQUIRE_MESSAGE(f.kubeletSees(kT4, {kT4a, kT4b}), f.log());
    CHECK(f.scrapeShows("kvgpu_devices{health=\"healthy\",resource=\"nvidia.com/TU104GL_TESLA_T4\"} 2"));
    CHECK(f.scrapeShows("kvgpu_resource_registered{resource=\"nvidia.com/TU104GL_TESLA_T4\"} 1"));
    CHECK(f.scrapeShows("kvgpu_registrations_total{resource=\"nvidia.com/TU104GL_TESLA_T4\",result=\"success\"} 1"));
    CHECK(f.scrapeShows("kvgpu_rescans_total{cause=\"start\"} 1"));
    CHECK(f.scrapeShows("kvgpu_build_info{version=\"0.1.0\"} 1"));

    f.node->unbind(kT4b);
    REQUIRE(f.kubeletSees(kT4, {kT4a}));
    CHECK(f.scrapeShows("kvgpu_devices{health=\"healthy\",resource=\"nvidia.com/TU104GL_TESLA_T4\"} 1"));
    CHECK(f.scrapeShows("kvgpu_uevents_total{action=\"unbind\",subsystem=\"pci\"} 1"));

    f.node->deleteVfioNode(40);
    REQUIRE(f.kubeletSeesHealth(kA100, kA100Gpu, "Unhealthy"));
    CHECK(f.scrapeShows("kvgpu_devices{health=\"unhealthy\",resource=\"nvidia.com/GA100_A100_PCIE_40GB\"} 1"));
    CHECK(f.scrapeShows("kvgpu_device_unhealthy{device=\"0000:ca:00.0\",reason=\"no /dev/vfio/40\","
                        "resource=\"nvidia.com/GA100_A100_PCIE_40GB\"} 1"));
    f.node->createVfioNode(40);
    REQUIRE(f.kubeletSeesHealth(kA100, kA100Gpu, "Healthy"));
    CHECK(eventually([&] { return f.scrape().find("kvgpu_device_unhealthy{") == std::string::npos; }));

    v1beta1::AllocateResponse response;
    REQUIRE(f.kubelet->allocate(kT4, {{kT4a}}, &response).ok());
    CHECK(f.kubelet->allocate(kT4, {{"0000:99:00.0"}}, &response).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(f.scrapeShows("kvgpu_allocate_calls_total{resource=\"nvidia.com/TU104GL_TESLA_T4\",result=\"ok\"} 1"));
    CHECK(f.scrapeShows(
        "kvgpu_allocate_calls_total{resource=\"nvidia.com/TU104GL_TESLA_T4\",result=\"invalid_argument\"} 1"));
    // Every publish after an event was timed.
    CHECK(eventually([&] { return f.scrape().find("kvgpu_event_to_publish_seconds_count 0\n") == std::string::npos; }));

    f.kubelet->restart();
    CHECK(f.scrapeShows("kvgpu_registrations_total{resource=\"nvidia.com/TU104GL_TESLA_T4\",result=\"success\"} 2"));
}
