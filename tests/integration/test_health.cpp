// Health on the simulated node: each rule's bad state reaches the kubelet as
// Unhealthy with its reason in the log, and undoing it brings the device back.
#include "plugin_fixture.h"

#include <doctest/doctest.h>

using namespace kvgpu::test;

namespace {

const std::string kT4a = "0000:67:00.0";
const std::string kT4aAudio = "0000:67:00.1";
const std::string kA100Gpu = "0000:ca:00.0";
const std::string kL4 = "0000:e1:00.0";
const std::string kFirstVgpu = "aa618089-8b16-4d01-a136-25a0f3c73123";

std::string configReading(std::uint16_t vendor)
{
    std::string config(64, '\0');
    config[0] = static_cast<char>(vendor & 0xff);
    config[1] = static_cast<char>(vendor >> 8);
    return config;
}

// The plugin with a one-second health timer, the initial lists received.
struct Healthy : PluginFixture {
    Healthy()
    {
        kubelet->start();
        startPlugin({"--health-interval", "1"});
        REQUIRE_MESSAGE(kubeletSeesHealth(kT4, kT4a, "Healthy"), log());
        REQUIRE(kubeletSeesHealth(kA100, kA100Gpu, "Healthy"));
        REQUIRE(kubeletSeesHealth(kL4x1Q, kFirstVgpu, "Healthy"));
    }
    bool logged(const std::string &text, std::chrono::milliseconds timeout = 5s)
    {
        return plugin->waitForLog(text, timeout);
    }
};

} // namespace

TEST_CASE("an audio function on its host driver makes the GPU's group not viable, at once")
{
    Healthy f;
    f.node->unbind(kT4aAudio);
    f.node->bind(kT4aAudio, "snd_hda_intel");
    CHECK(f.kubeletSeesHealth(kT4, kT4a, "Unhealthy"));
    CHECK(f.logged("reason=\"iommu group 20 not viable: 0000:67:00.1 (audio) bound to snd_hda_intel\""));

    // Binding the audio function to vfio-pci fixes the group without waiting for a timer.
    f.node->unbind(kT4aAudio);
    f.node->bind(kT4aAudio, "vfio-pci");
    CHECK(f.kubeletSeesHealth(kT4, kT4a, "Healthy", 500ms));
}

TEST_CASE("a GPU that fell off the bus is Unhealthy until two good reads")
{
    Healthy f;
    f.node->setAttribute(kA100Gpu, "config", configReading(0xffff));
    CHECK(f.kubeletSeesHealth(kA100, kA100Gpu, "Unhealthy", 3s));
    CHECK(f.logged("fell off the bus"));
    f.node->setAttribute(kA100Gpu, "config", configReading(0x10de));
    auto restored = std::chrono::steady_clock::now();
    REQUIRE(f.kubeletSeesHealth(kA100, kA100Gpu, "Healthy", 5s));
    // Two reads of the one-second timer, not the first one.
    CHECK(std::chrono::steady_clock::now() - restored > 900ms);
}

TEST_CASE("a sleeping (D3cold) device's config space is not read")
{
    Healthy f;
    f.node->setAttribute(kA100Gpu, "power_state", "D3cold\n");
    f.node->setAttribute(kA100Gpu, "config", configReading(0xffff));
    // Two health passes, by the plugin's own account: one that starts after
    // this count reads the device as it is now, and once the one after it
    // starts, the first has published its verdicts.
    const std::string passStarted = "msg=\"health pass started\"";
    const size_t started = f.plugin->logCount(passStarted);
    REQUIRE_MESSAGE(eventually([&] { return f.plugin->logCount(passStarted) >= started + 2; }), f.plugin->report());
    CHECK(f.log().find("fell off the bus") == std::string::npos);
    CHECK(f.healthOf(kA100, kA100Gpu) == "Healthy");
    // Awake, the same config space is read and tells the truth.
    f.node->setAttribute(kA100Gpu, "power_state", "D0\n");
    CHECK(f.kubeletSeesHealth(kA100, kA100Gpu, "Unhealthy", 3s));
}

TEST_CASE("PCIe error recovery events: begin and failure are Unhealthy, success recovers")
{
    Healthy f;
    f.node->sendChange(kA100Gpu, {{"ERROR_EVENT", "BEGIN_RECOVERY"}, {"DEVICE_ONLINE", "0"}});
    CHECK(f.kubeletSeesHealth(kA100, kA100Gpu, "Unhealthy"));
    CHECK(f.logged("PCIe error recovery in progress"));
    f.node->sendChange(kA100Gpu, {{"ERROR_EVENT", "SUCCESSFUL_RECOVERY"}, {"DEVICE_ONLINE", "1"}});
    CHECK(f.kubeletSeesHealth(kA100, kA100Gpu, "Healthy"));

    f.node->sendChange(kA100Gpu, {{"ERROR_EVENT", "BEGIN_RECOVERY"}, {"DEVICE_ONLINE", "0"}});
    f.node->sendChange(kA100Gpu, {{"ERROR_EVENT", "FAILED_RECOVERY"}, {"DEVICE_ONLINE", "0"}});
    CHECK(f.kubeletSeesHealth(kA100, kA100Gpu, "Unhealthy"));
    CHECK(f.logged("PCIe error recovery failed"));
    const size_t cleared = f.plugin->logCount("msg=\"device health changed\" device=" + kA100Gpu);
    f.node->sendChange(kA100Gpu, {}); // an unrelated change does not clear it
    REQUIRE(f.caughtUp());
    CHECK(f.plugin->logCount("msg=\"device health changed\" device=" + kA100Gpu) == cleared);
    CHECK(f.healthOf(kA100, kA100Gpu) == "Unhealthy");
    // Rebinding the device ends the failed state.
    f.node->unbind(kA100Gpu);
    f.node->bind(kA100Gpu, "vfio-pci");
    CHECK(f.kubeletSeesHealth(kA100, kA100Gpu, "Healthy"));
}

TEST_CASE("a rise of the fatal AER counter and a power state error are Unhealthy")
{
    Healthy f;
    f.node->setAttribute(kT4a, "aer_dev_fatal", "Undefined 0\nDLP 1\nTOTAL_ERR_FATAL 1\n");
    CHECK(f.kubeletSeesHealth(kT4, kT4a, "Unhealthy", 3s));
    CHECK(f.logged("1 fatal AER error(s) since it was bound"));
    // Undone by a successful recovery, which accounts for the errors.
    f.node->sendChange(kT4a, {{"ERROR_EVENT", "SUCCESSFUL_RECOVERY"}});
    CHECK(f.kubeletSeesHealth(kT4, kT4a, "Healthy"));

    f.node->setAttribute(kA100Gpu, "power_state", "error\n");
    CHECK(f.kubeletSeesHealth(kA100, kA100Gpu, "Unhealthy", 3s));
    CHECK(f.logged("power state is error"));
    f.node->setAttribute(kA100Gpu, "power_state", "D0\n");
    CHECK(f.kubeletSeesHealth(kA100, kA100Gpu, "Healthy", 5s));
}

TEST_CASE("vGPUs follow their parent GPU")
{
    Healthy f;
    f.node->setAttribute(kL4, "config", configReading(0xffff));
    CHECK(f.kubeletSeesHealth(kL4x1Q, kFirstVgpu, "Unhealthy", 3s));
    CHECK(f.logged("parent 0000:e1:00.0 fell off the bus"));
    f.node->setAttribute(kL4, "config", configReading(0x10de));
    CHECK(f.kubeletSeesHealth(kL4x1Q, kFirstVgpu, "Healthy", 5s));

    f.node->sendChange(kL4, {{"ERROR_EVENT", "FAILED_RECOVERY"}});
    CHECK(f.kubeletSeesHealth(kL4x1Q, kFirstVgpu, "Unhealthy"));
    CHECK(f.logged("parent 0000:e1:00.0: PCIe error recovery failed"));

    // The parent removed: its vGPUs go with it.
    f.node->removePciFunction(kL4);
    CHECK(f.kubeletSees(kL4x1Q, {}));
}

TEST_CASE("list shows the verdict and reason of every device")
{
    Healthy f;
    f.node->unbind(kT4aAudio);
    f.node->bind(kT4aAudio, "snd_hda_intel");
    f.node->setAttribute(kA100Gpu, "reset_method", "\n");
    REQUIRE(f.kubeletSeesHealth(kT4, kT4a, "Unhealthy"));
    std::vector<std::string> args = f.flags();
    args.insert(args.begin(), "list");
    DaemonProcess list(pluginBinary(), args, f.files.path("list.out"));
    REQUIRE(list.waitExit(10s) == 0);
    std::string out = list.log();
    CHECK(out.find("nvidia.com/TU104GL_TESLA_T4 Unhealthy (iommu group 20 not viable: 0000:67:00.1 (audio) bound to "
                   "snd_hda_intel)") != std::string::npos);
    CHECK(out.find("warning: no reset method") != std::string::npos);
}
