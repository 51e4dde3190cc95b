// The reactor, end to end on a simulated node: every change on the node reaches
// the kubelet without restarting the plugin, and every kubelet lifecycle event
// ends with every resource registered and listed.
#include "api.grpc.pb.h"
#include "plugin_fixture.h"

#include <doctest/doctest.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <grpcpp/grpcpp.h>
#include <set>
#include <thread>

using namespace kvgpu::test;

namespace {

const std::string kT4a = "0000:67:00.0";
const std::string kT4b = "0000:68:00.0";
const std::string kA100Gpu = "0000:ca:00.0";
const std::string kL4 = "0000:e1:00.0";
const std::string kFirstVgpu = "aa618089-8b16-4d01-a136-25a0f3c73123";

void writeFile(const std::string &path, const std::string &text)
{
    std::ofstream out(path);
    out << text;
}

// A plugin serving the standard node to a running kubelet, with the initial lists received.
struct Running : PluginFixture {
    explicit Running(SimNodeOptions options = {}, std::vector<std::string> flags = {})
        : PluginFixture(kStandardNode, options)
    {
        kubelet->start();
        startPlugin(std::move(flags));
        REQUIRE_MESSAGE(kubeletSees(kT4, {kT4a, kT4b}), log());
        REQUIRE(kubeletSees(kA100, {kA100Gpu}));
        REQUIRE(kubeletSees(kL4x1Q, {kFirstVgpu}));
    }
};

std::set<std::string> socketsIn(const std::string &dir)
{
    std::set<std::string> names;
    for (const auto &entry : std::filesystem::directory_iterator(dir))
        names.insert(entry.path().filename());
    return names;
}

} // namespace

TEST_CASE("cold start on the simulated node: passthrough GPUs and vGPUs with topology")
{
    Running f;
    auto t4 = *f.kubelet->latest(kT4);
    CHECK(t4 == std::vector<TestKubelet::Device>{{kT4a, "Healthy", {0}}, {kT4b, "Healthy", {0}}});
    auto vgpus = *f.kubelet->latest(kL4x1Q);
    CHECK(vgpus == std::vector<TestKubelet::Device>{{kFirstVgpu, "Healthy", {}}}); // parent's NUMA is -1
    CHECK(f.kubelet->registrations().size() == 3);
    CHECK_FALSE(f.kubelet->latest(kL4x2Q)); // no vGPU of that type yet: no resource
}

TEST_CASE("a vGPU written into create is advertised; 1 written into remove withdraws it")
{
    Running f;
    f.node->startKernelEmulation();
    const std::string uuid = "3f8a2c1e-5b7d-4e9f-8a6b-2c4d6e8f0a1b";
    const std::string typeDir = f.node->pathOf(kL4) + "/mdev_supported_types/nvidia-593";

    writeFile(typeDir + "/create", uuid);
    // First vGPU of a new type: a new server starts and registers.
    REQUIRE_MESSAGE(f.kubeletSees(kL4x2Q, {uuid}), f.log());
    v1beta1::AllocateResponse response;
    REQUIRE(f.kubelet->allocate(kL4x2Q, {{uuid}}, &response).ok());
    CHECK(response.container_responses(0).envs().at("MDEV_PCI_RESOURCE_NVIDIA_COM_NVIDIA_L4-2Q") == uuid);

    writeFile(f.node->pathOf(uuid) + "/remove", "1");
    // Last device gone: the resource stays registered with capacity 0.
    CHECK(f.kubeletSees(kL4x2Q, {}));
    CHECK(f.kubelet->isRegistered(kL4x2Q));
    f.node->stopKernelEmulation();
}

TEST_CASE("a GPU unbound from vfio-pci is withdrawn and returns when bound back")
{
    Running f;
    f.node->unbind(kT4b);
    CHECK(f.kubeletSees(kT4, {kT4a}));
    f.node->bind(kT4b, "nvidia");
    f.node->unbind(kT4b);
    f.node->bind(kT4b, "vfio-pci");
    CHECK(f.kubeletSees(kT4, {kT4a, kT4b}));
    CHECK(f.kubeletSeesHealth(kT4, kT4b, "Healthy"));
}

TEST_CASE("GPUs added and removed while running")
{
    Running f;
    f.node->addGpu("0000:69:00.0", 0x1eb8, 22, 0, "vfio-pci", "pci0000:64/0000:64:00.0/0000:65:00.0");
    CHECK(f.kubeletSees(kT4, {kT4a, kT4b, "0000:69:00.0"}));

    // A model the node has not had before gets its own resource.
    f.node->addGpu("0000:cb:00.0", 0x20b5, 41, 1, "vfio-pci", "pci0000:c9");
    REQUIRE(f.kubeletSees(kA100x80, {"0000:cb:00.0"}));
    auto a100 = *f.kubelet->latest(kA100x80);
    CHECK(a100.at(0).numaNodes == std::vector<int64_t>{1});

    f.node->removePciFunction("0000:69:00.0");
    f.node->removePciFunction("0000:cb:00.0");
    CHECK(f.kubeletSees(kT4, {kT4a, kT4b}));
    CHECK(f.kubeletSees(kA100x80, {}));
    f.node->removePciFunction(kL4); // takes its vGPU with it
    CHECK(f.kubeletSees(kL4x1Q, {}));
}

TEST_CASE("a deleted /dev/vfio node makes the device Unhealthy; re-created, Healthy again")
{
    Running f;
    f.node->deleteVfioNode(40);
    CHECK(f.kubeletSeesHealth(kA100, kA100Gpu, "Unhealthy"));
    f.node->createVfioNode(40);
    CHECK(f.kubeletSeesHealth(kA100, kA100Gpu, "Healthy"));

    // Plain file operations, with no uevent, are seen through inotify alone.
    std::filesystem::remove(f.node->devRoot() + "/vfio/20");
    CHECK(f.kubeletSeesHealth(kT4, kT4a, "Unhealthy"));
    writeFile(f.node->devRoot() + "/vfio/20", "");
    CHECK(f.kubeletSeesHealth(kT4, kT4a, "Healthy"));
}

TEST_CASE("the kubelet restarted 20 times: every resource re-registered each time, nothing leaked")
{
    Running f;
    const std::set<std::string> resources = {kT4, kA100, kL4x1Q};
    int fdsAfterFirst = -1, threadsAfterFirst = -1;
    for (int restart = 1; restart <= 20; ++restart) {
        CAPTURE(restart);
        f.kubelet->restart();
        REQUIRE_MESSAGE(f.kubelet->waitFor(
                            [&](const TestKubelet &k) {
                                std::set<std::string> got;
                                for (const auto &r : k.registrations())
                                    if (r.generation == restart)
                                        got.insert(r.resource);
                                for (const auto &r : resources)
                                    if (!k.isRegistered(r))
                                        return false;
                                return got == resources;
                            },
                            5s),
                        f.log());
        // Every new stream starts with the full list.
        REQUIRE(f.kubeletSees(kT4, {kT4a, kT4b}));
        REQUIRE(f.kubeletSees(kL4x1Q, {kFirstVgpu}));
        if (restart == 1) {
            std::this_thread::sleep_for(200ms);
            fdsAfterFirst = f.plugin->openFds();
            threadsAfterFirst = f.plugin->threads();
        }
    }
    std::this_thread::sleep_for(300ms); // let late signals of the last restart settle
    // Once per restart, even though each restart sends several signals.
    int perResource = 0;
    for (const auto &r : f.kubelet->registrations())
        if (r.resource == kT4)
            ++perResource;
    CHECK(perResource == 21);
    CHECK(socketsIn(f.pluginDir()) ==
          std::set<std::string>{"kubelet.sock", "kvgpu-TU104GL_TESLA_T4.sock", "kvgpu-GA100_A100_PCIE_40GB.sock",
                                "kvgpu-NVIDIA_L4-1Q.sock"});
    // A leak would grow with the restarts (20 of them); gRPC's executor also
    // grows and shrinks its pool on demand by a few threads, which is not one.
    CHECK(f.plugin->openFds() <= fdsAfterFirst + 2);
    CHECK(f.plugin->threads() <= threadsAfterFirst + 5);
    CHECK(f.kubelet->rejections().empty());
}

TEST_CASE("a kubelet that starts after the plugin gets every registration the moment its socket appears")
{
    PluginFixture f;
    f.startPlugin();
    REQUIRE(f.plugin->waitForLog("waiting for the kubelet", 5s));
    f.kubelet->start();
    CHECK(f.kubeletSees(kT4, {kT4a, kT4b}));
    CHECK(f.kubeletSees(kA100, {kA100Gpu}));
    CHECK(f.kubeletSees(kL4x1Q, {kFirstVgpu}));
}

TEST_CASE("two concurrent ListAndWatch streams both get every update")
{
    Running f;
    auto channel = grpc::CreateChannel("unix://" + f.pluginDir() + "/kvgpu-NVIDIA_L4-1Q.sock",
                                       grpc::InsecureChannelCredentials());
    auto stub = v1beta1::DevicePlugin::NewStub(channel);
    grpc::ClientContext context;
    v1beta1::Empty empty;
    auto reader = stub->ListAndWatch(&context, empty);
    v1beta1::ListAndWatchResponse message;
    REQUIRE(reader->Read(&message));
    CHECK(message.devices_size() == 1);

    std::vector<std::string> expected = {kFirstVgpu};
    for (int i = 0; i < 5; ++i)
        expected.push_back(f.node->createVgpu(kL4, "nvidia-592"));
    REQUIRE(f.kubeletSees(kL4x1Q, expected));
    // The second stream converges on the same newest list.
    while (message.devices_size() != 6)
        REQUIRE(reader->Read(&message));
    CHECK(message.devices_size() == 6);
    context.TryCancel();
    reader->Finish();
}

TEST_CASE("2,000 vGPU add/remove events in a burst end in the exact final state")
{
    Running f;
    std::vector<std::string> created;
    for (int i = 0; i < 1200; ++i)
        created.push_back(f.node->createVgpu(kL4, "nvidia-592"));
    for (int i = 0; i < 800; ++i)
        f.node->removeVgpu(created[static_cast<size_t>(i)]);
    std::vector<std::string> expected(created.begin() + 800, created.end());
    expected.push_back(kFirstVgpu);
    CHECK(f.kubeletSees(kL4x1Q, expected, 30s));
    // Each create or remove sends three uevents (mdev, vfio group, bind); a
    // burst is published once per drained queue, so messages are fewer.
    MESSAGE("ListAndWatch messages for 2,000 operations: " << f.kubelet->updates(kL4x1Q).size());
    CHECK(f.kubelet->updates(kL4x1Q).size() < 3 * 2000);
}

TEST_CASE("lost uevents are noticed (ENOBUFS) and a full rescan recovers the exact state")
{
    // The daemon's monitor is made to report overflow as a kernel netlink
    // socket does (see netlink_overflow_preload.c).
    const char *shim = std::getenv("KVGPU_OVERFLOW_PRELOAD");
    REQUIRE(shim);
    ::setenv("LD_PRELOAD", (std::string(shim) + ":libumockdev-preload.so.0").c_str(), 1);
    // A monitor that does not read for 20 ms misses events.
    Running f(SimNodeOptions{.monitorPatience = 20ms}, {"--uevent-buffer", "4096"});
    ::setenv("LD_PRELOAD", "libumockdev-preload.so.0", 1);

    f.plugin->signal(SIGSTOP); // the daemon falls behind
    std::vector<std::string> expected = {kFirstVgpu};
    for (int i = 0; i < 12; ++i)
        expected.push_back(f.node->createVgpu(kL4, "nvidia-592"));
    f.node->unbind(kT4b);
    f.plugin->signal(SIGCONT);

    CHECK_MESSAGE(f.kubeletSees(kL4x1Q, expected, 10s), f.log());
    CHECK(f.kubeletSees(kT4, {kT4a}));
    CHECK(f.log().find("uevent receive buffer overflowed") != std::string::npos);
}

TEST_CASE("SIGTERM removes our sockets")
{
    Running f;
    f.plugin->signal(SIGTERM);
    CHECK_MESSAGE(f.plugin->waitExit(2s) == 0, f.log());
    CHECK(socketsIn(f.pluginDir()) == std::set<std::string>{"kubelet.sock"});
}

TEST_CASE("SIGHUP rescans and changes nothing that is right")
{
    Running f;
    size_t before = f.kubelet->updates(kT4).size();
    f.plugin->signal(SIGHUP);
    // The rescan ran and was published: the plugin's own account, not a
    // pause that passes as well when the rescan never runs.
    REQUIRE_MESSAGE(f.plugin->waitForPublishAfter("msg=\"rescanning every device\" reason=SIGHUP", scaled(2s)),
                    f.plugin->report());
    // A later change of the same list is the next message the kubelet gets:
    // the rescan found the list identical and sent none.
    f.node->unbind(kT4b);
    REQUIRE(f.kubeletSees(kT4, {kT4a}));
    CHECK(f.kubelet->updates(kT4).size() == before + 1);
}
