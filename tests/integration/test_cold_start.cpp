// End to end on a plain directory tree: the plugin binary discovers the node,
// serves every resource, registers with a kubelet that behaves like the real
// one, and answers Allocate and GetPreferredAllocation exactly as KubeVirt
// needs.
#include "free_port.h"
#include "api.pb.h"
#include "health.grpc.pb.h"
#include "daemon_process.h"
#include "temp_tree.h"
#include "test_kubelet.h"
#include "timeouts.h"

#include <doctest/doctest.h>

#include <csignal>
#include <filesystem>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

using namespace std::chrono_literals;
using kvgpu::test::DaemonProcess;
using kvgpu::test::FakePci;
using kvgpu::test::TempTree;
using kvgpu::test::TestKubelet;

namespace {

const std::string kA100 = "nvidia.com/GA100_A100_PCIE_40GB";
const std::string kT4 = "nvidia.com/TU104GL_TESLA_T4";
const std::string kUnknown = "nvidia.com/2236";
const std::string k1Q = "nvidia.com/GRID_T4-1Q";
const std::string k2Q = "nvidia.com/GRID_T4-2Q";
const std::string kVgpuA = "aa618089-8b16-4d01-a136-25a0f3c73123";
const std::string kVgpuB = "bb618089-8b16-4d01-a136-25a0f3c73123";
const std::string kVgpuC = "cc618089-8b16-4d01-a136-25a0f3c73123";

// The node of the issue: two A100 ids sharing one name, a T4 with its audio
// function in one group, NUMA 1 and -1, a GPU on nvidia carrying vGPUs of two
// types, a non-NVIDIA device, and an id missing from pci.ids.
struct Node {
    TempTree sys, dev, plugins, files;

    Node()
    {
        addPci(sys, FakePci{.address = "0000:3b:00.0", .device = 0x20b1, .group = 30, .numa = 0,
                            .parents = "pci0000:3a/0000:3a:00.0"});
        addPci(sys, FakePci{.address = "0000:3c:00.0", .device = 0x20f1, .group = 31, .numa = 1,
                            .parents = "pci0000:3a/0000:3a:01.0"});
        addPci(sys, FakePci{.address = "0000:65:00.0", .device = 0x1eb8, .group = 12, .numa = -1});
        addPci(sys, FakePci{.address = "0000:65:00.1", .device = 0x10f8, .classCode = 0x040300, .group = 12, .numa = -1});
        addPci(sys, FakePci{.address = "0000:66:00.0", .device = 0x2236, .group = 13, .numa = 0});
        addPci(sys, FakePci{.address = "0000:67:00.0", .device = 0x1eb8, .driver = "nvidia", .group = 14});
        FakePci parent{.address = "0000:b1:00.0", .device = 0x1eb8, .driver = "nvidia", .group = 40, .numa = 1,
                       .parents = "pci0000:b0"};
        addPci(sys, parent);
        addMdev(sys, parent, kVgpuA, "nvidia-222", std::string("GRID T4-1Q"), 101);
        addMdev(sys, parent, kVgpuB, "nvidia-222", std::string("GRID T4-1Q"), 102);
        addMdev(sys, parent, kVgpuC, "nvidia-223", std::string("GRID T4-2Q"), 103);
        addPci(sys, FakePci{.address = "0000:00:1f.3", .vendor = 0x8086, .device = 0xa348, .classCode = 0x040300,
                            .driver = "snd_hda_intel", .group = 5, .parents = "pci0000:00"});
        for (const char *node : {"vfio", "30", "31", "12", "13", "101", "102", "103"})
            dev.write(std::string("vfio/") + node, "");
        files.write("pci.ids", "10de  NVIDIA Corporation\n"
                               "\t10f8  TU104 HD Audio Controller\n"
                               "\t1eb8  TU104GL [Tesla T4]\n"
                               "\t20b1  GA100 [A100 PCIe 40GB]\n"
                               "\t20f1  GA100 [A100 PCIe 40GB]\n"
                               "8086  Intel Corporation\n"
                               "\t2236  Not an NVIDIA device\n");
    }

    std::vector<std::string> flags() const
    {
        return {"--sysfs-root", sys.root(), "--dev-root", dev.root(), "--plugin-dir", plugins.root(),
                "--pci-ids", files.path("pci.ids"), "--log-level", "debug"};
    }
    std::unique_ptr<DaemonProcess> startPlugin(int probePort = 0)
    {
        std::vector<std::string> f = flags();
        f.push_back("--probe-port=" + std::to_string(probePort));
        f.push_back("--metrics-port=0");
        return std::make_unique<DaemonProcess>(kvgpu::test::pluginBinary(), f, files.path("plugin.log"));
    }
};

using Devices = std::vector<TestKubelet::Device>;

// What a Kubernetes gRPC probe would get.
std::string probe(int port, const std::string &service)
{
    auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
    auto stub = grpc::health::v1::Health::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + 3s);
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    grpc::Status status = stub->Check(&context, request, &response);
    if (!status.ok())
        return "error: " + status.error_message();
    return grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status());
}

bool hasAll(const TestKubelet &k, std::initializer_list<std::string> resources)
{
    for (const auto &r : resources)
        if (!k.latest(r))
            return false;
    return true;
}

} // namespace

TEST_CASE("cold start: the kubelet receives exactly the node's resources, devices and topology")
{
    Node node;
    TestKubelet kubelet(node.plugins.root());
    kubelet.start();
    auto plugin = node.startPlugin();

    REQUIRE_MESSAGE(kubelet.waitFor([](const TestKubelet &k) { return hasAll(k, {kA100, kT4, kUnknown, k1Q, k2Q}); }, 10s),
                    plugin->log());
    // Its first publish done, the plugin has announced each resource it will
    // register ("new resource"): nothing beyond these five is on its way.
    REQUIRE_MESSAGE(plugin->waitForPublished(1, kvgpu::test::scaled(5s)), plugin->report());
    CHECK(plugin->logCount("msg=\"new resource\"") == 5);

    std::set<std::string> registered;
    for (const auto &r : kubelet.registrations()) {
        registered.insert(r.resource);
        CHECK(r.version == "v1beta1");
        CHECK(r.preferredAllocation);
        CHECK_FALSE(r.preStartRequired);
        CHECK(r.endpoint.rfind("kvgpu-", 0) == 0);
    }
    CHECK(registered == std::set<std::string>{kA100, kT4, kUnknown, k1Q, k2Q});
    CHECK(kubelet.registrations().size() == 5);
    CHECK(kubelet.rejections().empty());

    CHECK(*kubelet.latest(kA100) == Devices{{"0000:3b:00.0", "Healthy", {0}}, {"0000:3c:00.0", "Healthy", {1}}});
    // NUMA -1 is sent as no topology, not as node 0; the audio function is no device.
    CHECK(*kubelet.latest(kT4) == Devices{{"0000:65:00.0", "Healthy", {}}});
    CHECK(*kubelet.latest(kUnknown) == Devices{{"0000:66:00.0", "Healthy", {0}}});
    CHECK(*kubelet.latest(k1Q) == Devices{{kVgpuA, "Healthy", {1}}, {kVgpuB, "Healthy", {1}}});
    CHECK(*kubelet.latest(k2Q) == Devices{{kVgpuC, "Healthy", {1}}});

    SUBCASE("Allocate gives the VFIO nodes and the KubeVirt env var")
    {
        v1beta1::AllocateResponse response;
        REQUIRE(kubelet.allocate(kA100, {{"0000:3c:00.0", "0000:3b:00.0"}}, &response).ok());
        REQUIRE(response.container_responses_size() == 1);
        const auto &c = response.container_responses(0);
        CHECK(c.envs().size() == 1);
        CHECK(c.envs().at("PCI_RESOURCE_NVIDIA_COM_GA100_A100_PCIE_40GB") == "0000:3c:00.0,0000:3b:00.0");
        REQUIRE(c.devices_size() == 3);
        CHECK(c.devices(0).container_path() == "/dev/vfio/vfio");
        CHECK(c.devices(0).host_path() == "/dev/vfio/vfio"); // the host's path, not --dev-root's
        CHECK(c.devices(1).container_path() == "/dev/vfio/31");
        CHECK(c.devices(2).container_path() == "/dev/vfio/30");
        CHECK(c.devices(2).permissions() == "mrw");

        v1beta1::AllocateResponse vgpu;
        REQUIRE(kubelet.allocate(k1Q, {{kVgpuB}}, &vgpu).ok());
        const auto &v = vgpu.container_responses(0);
        CHECK(v.envs().at("MDEV_PCI_RESOURCE_NVIDIA_COM_GRID_T4-1Q") == kVgpuB);
        REQUIRE(v.devices_size() == 2); // its own group only, never the whole /dev/vfio
        CHECK(v.devices(1).container_path() == "/dev/vfio/102");

        v1beta1::AllocateResponse two;
        REQUIRE(kubelet.allocate(kT4, {{"0000:65:00.0"}, {"0000:65:00.0"}}, &two).ok());
        CHECK(two.container_responses_size() == 2);
    }

    SUBCASE("unknown ids and ids of another resource are refused with a message")
    {
        v1beta1::AllocateResponse response;
        grpc::Status status = kubelet.allocate(kT4, {{"0000:3b:00.0"}}, &response);
        CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
        CHECK(status.error_message() == "unknown device id 0000:3b:00.0 for resource " + kT4);
    }

    SUBCASE("a device rebound after discovery is FAILED_PRECONDITION")
    {
        node.sys.link("devices/pci0000:64/0000:64:00.0/0000:65:00.0/driver", "../../../../bus/pci/drivers/nvidia");
        v1beta1::AllocateResponse response;
        grpc::Status status = kubelet.allocate(kT4, {{"0000:65:00.0"}}, &response);
        CHECK(status.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
        CHECK(status.error_message() == "device 0000:65:00.0 is not bound to vfio-pci (driver: nvidia)");
    }

    SUBCASE("preferred allocation answers from the available set")
    {
        std::vector<std::string> chosen;
        REQUIRE(kubelet.preferredAllocation(kA100, {"0000:3b:00.0", "0000:3c:00.0"}, {"0000:3c:00.0"}, 1, &chosen).ok());
        CHECK(chosen == std::vector<std::string>{"0000:3c:00.0"});
        grpc::Status tooMany = kubelet.preferredAllocation(kA100, {"0000:3b:00.0", "0000:3c:00.0"},
                                                           {"0000:3b:00.0", "0000:3c:00.0"}, 1, &chosen);
        CHECK(tooMany.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
        CHECK(kubelet.preStart(kA100, {"0000:3b:00.0"}).error_code() == grpc::StatusCode::FAILED_PRECONDITION);
    }

    SUBCASE("SIGTERM stops serving, removes our sockets and exits 0 within a second")
    {
        auto start = std::chrono::steady_clock::now();
        plugin->signal(SIGTERM);
        std::optional<int> status = plugin->waitExit(2s);
        REQUIRE(status);
        CHECK_MESSAGE(*status == 0, plugin->log());
        CHECK(std::chrono::steady_clock::now() - start < 1s);
        for (const auto &entry : std::filesystem::directory_iterator(node.plugins.root()))
            CHECK(entry.path().filename() == "kubelet.sock");
    }
}

TEST_CASE("a kubelet that appears two seconds after the plugin still gets every registration")
{
    Node node;
    int port = kvgpu::test::freeTcpPort();
    auto plugin = node.startPlugin(port);
    REQUIRE(plugin->waitForLog("waiting for the kubelet", 5s));
    // Alive, but not ready: nothing is registered yet.
    CHECK(probe(port, "liveness") == "SERVING");
    CHECK(probe(port, "readiness") == "NOT_SERVING");
    std::this_thread::sleep_for(2s);
    CHECK(plugin->running());

    TestKubelet kubelet(node.plugins.root());
    kubelet.start();
    CHECK(kubelet.waitFor([](const TestKubelet &k) { return hasAll(k, {kA100, kT4, kUnknown, k1Q, k2Q}); }, 5s));
    CHECK(kubelet.registrations().size() == 5);
    CHECK(kubelet.waitFor([&](const TestKubelet &) { return probe(port, "readiness") == "SERVING"; }, 5s));
    // Sockets were served all along; only registration waited.
    CHECK(*kubelet.latest(kT4) == Devices{{"0000:65:00.0", "Healthy", {}}});
}

TEST_CASE("list explains every NVIDIA function and mdev")
{
    Node node;
    std::string out = node.files.path("list.out");
    DaemonProcess list(kvgpu::test::pluginBinary(), [&] {
        auto f = node.flags();
        f.insert(f.begin(), "list");
        return f;
    }(), out);
    REQUIRE(list.waitExit(10s) == 0);
    std::string text = list.log();
    CHECK(text.find("0000:65:00.1") != std::string::npos);
    CHECK(text.find("not advertised: audio function: travels with IOMMU group 12") != std::string::npos);
    CHECK(text.find("not advertised: bound to nvidia, not vfio-pci") != std::string::npos);
    CHECK(text.find(kVgpuC) != std::string::npos);
    CHECK(text.find("nvidia.com/GRID_T4-2Q Healthy") != std::string::npos);
    CHECK(text.find("0000:00:1f.3") == std::string::npos); // not NVIDIA: not listed
}
