// The DRA side in-process against a fake API server over HTTPS
// (tests/support/fake_resource_api.py: an in-memory store of ResourceSlices,
// ResourceClaims and Nodes), so that its threads run under the sanitizer
// stages where no real cluster runs:
//  - SlicePublisher: the pool as slices with exactly its devices, a health
//    change rewriting one slice, an empty pool, a pool split into several
//    slices, slices the kubelet wiped coming back through the watch, an
//    absent API server, a burst of changes coalesced, stop() while the
//    server hangs or fails;
//  - ClaimPreparer on a temporary sysfs and /dev tree: CDI spec, metadata,
//    checkpoint, per-claim errors, unprepare, a restart;
//  - DraSide as the daemon runs it: on a running event loop, from a
//    kubeconfig, fed by index changes, called by the kubelet over gRPC.
// Exits 77 (skipped) without openssl or /usr/bin/python3.

#include "dra/claim_preparer.h"
#include "dra/device_names.h"
#include "dra/dra_side.h"
#include "dra/slice_publisher.h"
#include "dra/slices.h"
#include "kube/client.h"
#include "loop/event_loop.h"

#include "dra_v1.grpc.pb.h"
#include "pluginregistration.grpc.pb.h"

#include "daemon_process.h"
#include "temp_tree.h"
#include "timeouts.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>
#include <unistd.h>
#include <vector>

#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

using namespace kvgpu;
using namespace kvgpu::dra;
using namespace kvgpu::kube;
using namespace kvgpu::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using nlohmann::json;
namespace drav1 = k8s::io::kubelet::pkg::apis::dra::v1;

namespace {

constexpr const char *kPython = "/usr/bin/python3";
constexpr const char *kOpenssl = "/usr/bin/openssl";
const std::string kDriver = kDefaultDriverName;
const std::string kNode = "node-a";
const std::string kNodeUid = "0e5c-node-a";

std::string readFile(const std::string &path)
{
    std::ifstream in(path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

json readJson(const std::string &path)
{
    return json::parse(readFile(path), nullptr, false);
}

std::set<std::string> filesIn(const std::string &dir)
{
    std::set<std::string> names;
    std::error_code ec;
    for (const auto &entry : std::filesystem::directory_iterator(dir, ec))
        names.insert(entry.path().filename().string());
    return names;
}

std::unique_ptr<Client> makeClient(const ClusterAccess &access)
{
    Result<std::unique_ptr<Client>> client = Client::create(access);
    REQUIRE_MESSAGE(client.ok(), client.error());
    return std::move(client).value();
}

// The fake API server, with a certificate made for the run, the token file
// that it and the clients read, and a client of its own for the control
// endpoints (the clients under test are cancelled when their owners stop).
class FakeResourceApi {
public:
    FakeResourceApi()
    {
        const std::string command = fmt::format(
            "{} req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -keyout {} -out {} "
            "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>>{}",
            kOpenssl, tree_.path("server.key"), tree_.path("server.crt"), tree_.path("openssl.log"));
        REQUIRE_MESSAGE(std::system(command.c_str()) == 0, readFile(tree_.path("openssl.log")));
        tree_.write("token", "dra-token\n");
        const char *script = std::getenv("KVGPU_FAKE_RESOURCE_API");
        REQUIRE_MESSAGE(script, "KVGPU_FAKE_RESOURCE_API is not set (meson sets it)");
        process_ = std::make_unique<DaemonProcess>(
            kPython,
            std::vector<std::string>{script, "--cert", tree_.path("server.crt"), "--key", tree_.path("server.key"),
                                     "--token-file", tree_.path("token")},
            tree_.path("server.log"));
        REQUIRE_MESSAGE(process_->waitForLog("PORT ", scaled(10s)), process_->report());
        const std::string log = process_->log();
        port_ = std::atoi(log.c_str() + log.find("PORT ") + 5);
        REQUIRE(port_ > 0);
        control_ = makeClient(access());
        call("PUT", "/test/nodes", json{{"name", kNode}, {"uid", kNodeUid}});
    }

    ClusterAccess access() const
    {
        ClusterAccess access;
        access.server = url();
        access.caFile = tree_.path("server.crt");
        access.tokenFile = tree_.path("token");
        return access;
    }
    std::string url() const { return fmt::format("https://127.0.0.1:{}", port_); }
    std::string file(const std::string &name) const { return tree_.path(name); }

    // A control call that must succeed; its JSON answer.
    json call(const std::string &method, const std::string &path, const json &body = nullptr)
    {
        Result<Response> response = control_->request(method, path, body.is_null() ? "" : body.dump());
        REQUIRE_MESSAGE(response.ok(), response.error());
        REQUIRE_MESSAGE(response->succeeded(), method, " ", path, ": ", response->body);
        return json::parse(response->body);
    }

    std::vector<json> slices(const std::string &node = kNode)
    {
        return call("GET", "/test/slices?node=" + node)["items"].get<std::vector<json>>();
    }
    void putClaim(const json &claim) { call("PUT", "/test/claims", claim); }
    // As the kubelet does when it starts: every slice of the node goes.
    int wipe(const std::string &node = kNode)
    {
        return call("DELETE", "/test/slices?node=" + node)["deleted"].get<int>();
    }
    void failUntilRecovered() { call("PUT", "/test/fail", json::object()); }
    void failFor(std::chrono::milliseconds time) { call("PUT", "/test/fail", json{{"seconds", time.count() / 1000.0}}); }
    void hang() { call("PUT", "/test/hang", json::object()); }
    void holdWatches() { call("PUT", "/test/hang", json{{"watches", true}}); }
    void recover() { call("PUT", "/test/recover", json::object()); }
    void resetCounts() { call("PUT", "/test/reset-counts", json::object()); }

    // Requests the store answered, by "<resource> <verb>" ("slices PUT").
    int count(const std::string &key)
    {
        json counts = call("GET", "/test/counts")["requests"];
        return counts.contains(key) ? counts[key].get<int>() : 0;
    }
    int writes() { return count("slices POST") + count("slices PUT") + count("slices DELETE"); }
    int refused() { return call("GET", "/test/counts")["refused"].get<int>(); }
    int held() { return call("GET", "/test/counts")["held"].get<int>(); }
    int watching() { return call("GET", "/test/counts")["watching"].get<int>(); }

    std::string report() { return process_->report(); }

private:
    TempTree tree_;
    std::unique_ptr<DaemonProcess> process_;
    std::unique_ptr<Client> control_;
    int port_ = 0;
};

// --- devices -------------------------------------------------------------------

AdvertisedDevice advertised(std::string id, int group)
{
    return AdvertisedDevice{.id = std::move(id),
                            .numaNode = 0,
                            .iommuGroup = group,
                            .pciePath = {"pci0000:64", "0000:64:00.0"},
                            .vendorId = 0x10de,
                            .deviceId = 0x1eb8,
                            .product = "TU104GL [Tesla T4]",
                            .api = DeviceApi::Dra};
}

DraDevice passthrough(std::string address, int group)
{
    return DraDevice{.resource = "nvidia.com/TU104GL_TESLA_T4", .kind = DeviceKind::Passthrough,
                     .device = advertised(std::move(address), group)};
}

DraDevice mdev(std::string uuid, int group)
{
    DraDevice device{.resource = "nvidia.com/GRID_T4-1Q", .kind = DeviceKind::Vgpu,
                     .device = advertised(std::move(uuid), group)};
    device.device.profile = "GRID T4-1Q";
    device.device.parent = "0000:b1:00.0";
    device.device.pciePath = {"pci0000:b0", "0000:b0:00.0"};
    return device;
}

DraDevice sriovVf(std::string address, int group)
{
    DraDevice device{.resource = "nvidia.com/NVIDIA_L4-4Q", .kind = DeviceKind::SriovVgpu,
                     .device = advertised(std::move(address), group)};
    device.device.profile = "NVIDIA L4-4Q";
    device.device.parent = "0000:ca:00.0";
    device.device.pciePath = {"pci0000:c9", "0000:c9:00.0"};
    return device;
}

void add(DevicesByName &pool, DraDevice device)
{
    std::string name = draDeviceName(device);
    pool.emplace(std::move(name), std::move(device));
}

// `count` passthrough GPUs (0000:65:00.0, 0000:65:01.0, ...), in up to 8 buses.
DevicesByName gpus(int count)
{
    DevicesByName pool;
    for (int i = 0; i < count; ++i)
        add(pool, passthrough(fmt::format("0000:{:02x}:{:02x}.{}", 0x65 + i / 256, (i / 8) % 32, i % 8), 20 + i));
    return pool;
}

// One of each kind.
DevicesByName mixed()
{
    DevicesByName pool;
    add(pool, passthrough("0000:65:00.0", 12));
    add(pool, mdev("aa618089-8b16-4d01-a136-25a0f3c73123", 101));
    add(pool, sriovVf("0000:ca:00.4", 140));
    return pool;
}

void setHealth(DevicesByName &pool, const std::string &name, bool healthy, std::string reason = {})
{
    AdvertisedDevice &device = pool.at(name).device;
    device.healthy = healthy;
    device.healthReason = std::move(reason);
}

std::set<std::string> namesOf(const DevicesByName &pool)
{
    std::set<std::string> names;
    for (const auto &[name, device] : pool)
        names.insert(name);
    return names;
}

// Every device name in the slices; a name seen twice is a failure.
std::set<std::string> deviceNames(const std::vector<json> &slices)
{
    std::set<std::string> names;
    std::vector<std::string> twice;
    for (const json &slice : slices)
        for (const json &device : slice["spec"]["devices"])
            if (!names.insert(device["name"].get<std::string>()).second)
                twice.push_back(device["name"]);
    CHECK_MESSAGE(twice.empty(), "devices in two slices: ", fmt::format("{}", fmt::join(twice, ", ")));
    return names;
}

const json *findDevice(const std::vector<json> &&slices, const std::string &name) = delete;
const json *findDevice(const std::vector<json> &slices, const std::string &name)
{
    for (const json &slice : slices)
        for (const json &device : slice["spec"]["devices"])
            if (device["name"] == name)
                return &device;
    return nullptr;
}

// Every slice of the pool carries the same generation and the slice count.
void checkPoolConsistent(const std::vector<json> &slices)
{
    REQUIRE_FALSE(slices.empty());
    const json &first = slices.front()["spec"]["pool"];
    for (const json &slice : slices) {
        CHECK(slice["spec"]["driver"] == kDriver);
        CHECK(slice["spec"]["nodeName"] == kNode);
        CHECK(slice["spec"]["pool"]["name"] == kNode);
        CHECK(slice["spec"]["pool"]["generation"] == first["generation"]);
        CHECK(slice["spec"]["pool"]["resourceSliceCount"] == slices.size());
    }
}

// A publisher of node-a's pool with its own client, recording every sync.
struct Publisher {
    explicit Publisher(FakeResourceApi &api, std::chrono::milliseconds minBackoff = 20ms,
                       std::chrono::milliseconds maxBackoff = 200ms)
        : client(makeClient(api.access())),
          publisher(*client, SlicePublisherOptions{
                                 .driver = kDriver,
                                 .nodeName = kNode,
                                 .minBackoff = minBackoff,
                                 .maxBackoff = maxBackoff,
                                 .synced = [this](std::uint64_t version, std::size_t, std::size_t,
                                                  const std::string &error) {
                                     std::lock_guard lock(mutex);
                                     (version ? successes : failures)++;
                                     if (!error.empty())
                                         errors.push_back(error);
                                 }})
    {
    }
    std::vector<std::string> errorsSoFar()
    {
        std::lock_guard lock(mutex);
        return errors;
    }

    std::unique_ptr<Client> client;
    std::mutex mutex;
    int successes = 0, failures = 0;
    std::vector<std::string> errors;
    SlicePublisher publisher; // last: stopped before the rest goes
};

// --- claims --------------------------------------------------------------------

json claimJson(const std::string &uid, const std::string &name, const std::vector<std::string> &devices,
               const std::string &request = "gpu")
{
    json results = json::array();
    for (const std::string &device : devices)
        results.push_back(json{{"request", request}, {"driver", kDriver}, {"pool", kNode}, {"device", device}});
    // A result of another driver, which the preparer leaves alone.
    results.push_back(json{{"request", "nic"}, {"driver", "nic.example.com"}, {"pool", kNode}, {"device", "eth0"}});
    return json{{"apiVersion", "resource.k8s.io/v1"},
                {"kind", "ResourceClaim"},
                {"metadata", {{"name", name}, {"namespace", "vms"}, {"uid", uid}}},
                {"spec", {{"devices", {{"requests", json::array({json{{"name", request}}})}}}}},
                {"status",
                 {{"allocation", {{"devices", {{"results", results}}}}},
                  {"reservedFor", json::array({json{{"resource", "pods"}, {"name", "virt-launcher-" + name},
                                                    {"uid", "pod-" + uid}}})}}}};
}

// A node with two GPUs bound to vfio-pci (0000:65:00.0 in group 12,
// 0000:66:00.0 in group 13), their /dev/vfio nodes, the plugin's data and CDI
// directories, and the device snapshot the loop would hand over.
struct ClaimNode {
    ClaimNode()
    {
        addPci(sys, FakePci{.address = "0000:65:00.0", .group = 12});
        addPci(sys, FakePci{.address = "0000:66:00.0", .group = 13});
        dev.write("vfio/vfio", "");
        dev.write("vfio/12", "");
        dev.write("vfio/13", "");
        data.mkdir("plugin");
        data.mkdir("cdi");
        DevicesByName pool;
        add(pool, passthrough("0000:65:00.0", 12));
        add(pool, passthrough("0000:66:00.0", 13));
        setDevices(std::move(pool));
    }
    void setDevices(DevicesByName devices)
    {
        std::lock_guard lock(mutex);
        snapshot = std::make_shared<const DevicesByName>(std::move(devices));
    }
    DevicesByName devices()
    {
        std::lock_guard lock(mutex);
        return *snapshot;
    }
    std::unique_ptr<ClaimPreparer> preparer(Client &client)
    {
        ClaimPreparerOptions options{.driver = kDriver,
                                     .nodeName = kNode,
                                     .pluginDataDir = pluginDir(),
                                     .cdiDir = cdiDir(),
                                     .sysfs = SysfsTree(sys.root()),
                                     .dev = DevTree(dev.root())};
        Result<std::unique_ptr<ClaimPreparer>> created = ClaimPreparer::create(client, options, [this] {
            std::lock_guard lock(mutex);
            return snapshot;
        });
        REQUIRE_MESSAGE(created.ok(), created.error());
        return std::move(created).value();
    }
    std::string pluginDir() const { return data.path("plugin"); }
    std::string cdiDir() const { return data.path("cdi"); }
    std::string specPath(const std::string &uid) const
    {
        return cdiDir() + "/" + kDriver + "-vm-gpu_" + uid + ".json";
    }
    std::string metadataSpecPath(const std::string &uid, const std::string &request = "gpu") const
    {
        return cdiDir() + "/" + kDriver + "_metadata_" + uid + "_" + request + ".json";
    }
    std::string metadataPath(const std::string &claimName, const std::string &request = "gpu") const
    {
        return pluginDir() + "/dra-device-metadata/vms_" + claimName + "/" + request + "/metadata.json";
    }

    TempTree sys, dev, data;
    std::mutex mutex;
    std::shared_ptr<const DevicesByName> snapshot;
};

std::vector<std::string> idsFor(const std::string &uid, const std::string &device)
{
    return {kDriver + "/vm-gpu=" + uid + "-" + device, kDriver + "/metadata=" + uid + "_gpu"};
}

} // namespace

// --- SlicePublisher --------------------------------------------------------------

TEST_CASE("the publisher puts the pool into the API server as one slice holding exactly its devices")
{
    FakeResourceApi api;
    Publisher run(api);
    const DevicesByName pool = mixed();
    run.publisher.want(pool, 1);
    run.publisher.start();
    REQUIRE_MESSAGE(run.publisher.waitPublished(1, scaled(10s)), api.report());

    std::vector<json> slices = api.slices();
    REQUIRE(slices.size() == 1);
    checkPoolConsistent(slices);
    const json &slice = slices.front();
    CHECK(slice["spec"]["pool"]["generation"].get<int>() >= 1);
    const std::string name = slice["metadata"]["name"];
    const std::string prefix = "00000-" + kDriver + "-" + kNode + "-";
    CHECK_MESSAGE(name.rfind(prefix, 0) == 0, name);
    CHECK(name.size() == prefix.size() + 5);
    const json &owner = slice["metadata"]["ownerReferences"][0];
    CHECK(owner["kind"] == "Node");
    CHECK(owner["name"] == kNode);
    CHECK(owner["uid"] == kNodeUid);
    CHECK(owner["controller"] == true);
    CHECK(deviceNames(slices) == namesOf(pool));

    const json *gpu = findDevice(slices, "pci-0000-65-00-0");
    REQUIRE(gpu);
    CHECK((*gpu)["attributes"]["type"]["string"] == "passthrough");
    CHECK((*gpu)["attributes"]["resourceName"]["string"] == "nvidia.com/TU104GL_TESLA_T4");
    CHECK((*gpu)["attributes"]["resource.kubernetes.io/pcieRoot"]["string"] == "pci0000:64");
    CHECK((*gpu)["attributes"]["resource.kubernetes.io/pciBusID"]["string"] == "0000:65:00.0");
    CHECK((*gpu)["attributes"]["iommuGroup"]["int"] == 12);
    CHECK_FALSE(gpu->contains("taints"));
    const json *vgpu = findDevice(slices, "mdev-aa618089-8b16-4d01-a136-25a0f3c73123");
    REQUIRE(vgpu);
    CHECK((*vgpu)["attributes"]["type"]["string"] == "mdev");
    CHECK((*vgpu)["attributes"]["mdevUUID"]["string"] == "aa618089-8b16-4d01-a136-25a0f3c73123");
    CHECK((*vgpu)["attributes"]["resource.kubernetes.io/pcieRoot"]["string"] == "pci0000:b0");
    CHECK_FALSE((*vgpu)["attributes"].contains("resource.kubernetes.io/pciBusID"));
    const json *vf = findDevice(slices, "pci-0000-ca-00-4");
    REQUIRE(vf);
    CHECK((*vf)["attributes"]["type"]["string"] == "sriov-vgpu");
    CHECK((*vf)["attributes"]["parentPciBusID"]["string"] == "0000:ca:00.0");

    // The Node was read once, the slice created once.
    CHECK(api.count("nodes GET") == 1);
    CHECK(api.count("slices POST") == 1);
    CHECK(api.count("slices PUT") == 0);
}

TEST_CASE("a health change rewrites only the slice that holds the device, with the taint")
{
    FakeResourceApi api;
    Publisher run(api);
    // 100 devices, one of them tainted: two slices of at most 64.
    DevicesByName pool = gpus(100);
    setHealth(pool, pool.begin()->first, false, "parent GPU fell off the bus");
    run.publisher.want(pool, 1);
    run.publisher.start();
    REQUIRE(run.publisher.waitPublished(1, scaled(10s)));
    std::vector<json> before = api.slices();
    REQUIRE(before.size() == 2);
    checkPoolConsistent(before);
    CHECK(deviceNames(before) == namesOf(pool));
    CHECK(before[0]["spec"]["devices"].size() == 64);
    CHECK(before[1]["spec"]["devices"].size() == 36);
    api.resetCounts();

    // The last device by name is in the second slice.
    const std::string last = std::prev(pool.end())->first;
    setHealth(pool, last, false, "no /dev/vfio/119");
    run.publisher.want(pool, 2);
    REQUIRE(run.publisher.waitPublished(2, scaled(10s)));
    CHECK(api.count("slices PUT") == 1);
    CHECK(api.count("slices POST") == 0);
    CHECK(api.count("slices DELETE") == 0);
    std::vector<json> after = api.slices();
    REQUIRE(after.size() == 2);
    checkPoolConsistent(after);
    // One slice changed in place: the same generation, the other untouched.
    CHECK(after[0]["spec"]["pool"]["generation"] == before[0]["spec"]["pool"]["generation"]);
    CHECK(after[0]["metadata"]["resourceVersion"] == before[0]["metadata"]["resourceVersion"]);
    CHECK(after[1]["metadata"]["resourceVersion"] != before[1]["metadata"]["resourceVersion"]);
    CHECK(after[1]["metadata"]["uid"] == before[1]["metadata"]["uid"]);
    const json *tainted = findDevice(after, last);
    REQUIRE(tainted);
    REQUIRE(tainted->contains("taints"));
    REQUIRE((*tainted)["taints"].size() == 1);
    const json &taint = (*tainted)["taints"][0];
    CHECK(taint["key"] == kDriver + "/unhealthy");
    CHECK(taint["value"] == "no-dev-vfio-119");
    CHECK(taint["effect"] == "NoSchedule");
    CHECK_FALSE(taint["timeAdded"].get<std::string>().empty());

    // Healthy again: the same slice again, the taint gone.
    api.resetCounts();
    setHealth(pool, last, true);
    run.publisher.want(pool, 3);
    REQUIRE(run.publisher.waitPublished(3, scaled(10s)));
    CHECK(api.writes() == 1);
    CHECK(api.count("slices PUT") == 1);
    const std::vector<json> healedSlices = api.slices();
    const json *healed = findDevice(healedSlices, last);
    REQUIRE(healed);
    CHECK_FALSE(healed->contains("taints"));
}

TEST_CASE("an empty pool is one empty slice, before devices come and after they go")
{
    FakeResourceApi api;
    Publisher run(api);
    run.publisher.want({}, 1);
    run.publisher.start();
    REQUIRE(run.publisher.waitPublished(1, scaled(10s)));
    std::vector<json> slices = api.slices();
    REQUIRE(slices.size() == 1);
    checkPoolConsistent(slices);
    CHECK(slices[0]["spec"]["devices"] == json::array());

    run.publisher.want(mixed(), 2);
    REQUIRE(run.publisher.waitPublished(2, scaled(10s)));
    slices = api.slices();
    REQUIRE(slices.size() == 1);
    CHECK(deviceNames(slices) == namesOf(mixed()));

    run.publisher.want({}, 3);
    REQUIRE(run.publisher.waitPublished(3, scaled(10s)));
    slices = api.slices();
    REQUIRE(slices.size() == 1);
    checkPoolConsistent(slices);
    CHECK(slices[0]["spec"]["devices"] == json::array());
}

TEST_CASE("more than 128 devices are several slices of one generation, and shrink back to one")
{
    FakeResourceApi api;
    Publisher run(api);
    const DevicesByName big = gpus(300);
    run.publisher.want(big, 1);
    run.publisher.start();
    REQUIRE(run.publisher.waitPublished(1, scaled(10s)));
    std::vector<json> slices = api.slices();
    REQUIRE(slices.size() == 3);
    checkPoolConsistent(slices);
    CHECK(deviceNames(slices) == namesOf(big));
    std::vector<std::size_t> sizes;
    for (const json &slice : slices)
        sizes.push_back(slice["spec"]["devices"].size());
    CHECK(sizes == std::vector<std::size_t>{128, 128, 44});
    for (std::size_t i = 0; i < slices.size(); ++i)
        CHECK(slices[i]["metadata"]["name"].get<std::string>().rfind(fmt::format("{:05x}-", i), 0) == 0);
    const int firstGeneration = slices[0]["spec"]["pool"]["generation"];

    const DevicesByName small = gpus(10);
    run.publisher.want(small, 2);
    REQUIRE(run.publisher.waitPublished(2, scaled(10s)));
    slices = api.slices();
    REQUIRE(slices.size() == 1);
    checkPoolConsistent(slices);
    CHECK(deviceNames(slices) == namesOf(small));
    CHECK(slices[0]["spec"]["pool"]["generation"].get<int>() > firstGeneration);

    const DevicesByName again = gpus(129);
    run.publisher.want(again, 3);
    REQUIRE(run.publisher.waitPublished(3, scaled(10s)));
    slices = api.slices();
    REQUIRE(slices.size() == 2);
    checkPoolConsistent(slices);
    CHECK(deviceNames(slices) == namesOf(again));
}

TEST_CASE("slices the kubelet wipes come back through the publisher's watch, without a new pool")
{
    FakeResourceApi api;
    Publisher run(api);
    const DevicesByName pool = gpus(130);
    run.publisher.want(pool, 1);
    run.publisher.start();
    REQUIRE(run.publisher.waitPublished(1, scaled(10s)));
    REQUIRE(eventually([&] { return api.watching() == 1; }));

    for (int round = 0; round < 2; ++round) {
        CAPTURE(round);
        CHECK(api.wipe() == 2);
        CHECK(eventually([&] {
            std::vector<json> slices = api.slices();
            return slices.size() == 2 && deviceNames(slices) == namesOf(pool);
        }, 10s));
        checkPoolConsistent(api.slices());
    }
    CHECK(run.publisher.publishedVersion() == 1);
}

TEST_CASE("a slice someone else edits is put back; slices of other drivers and nodes are left alone")
{
    FakeResourceApi api;
    std::unique_ptr<Client> other = makeClient(api.access());
    // Another driver's slice on this node, and this driver's on another node.
    for (const auto &[driver, nodeName] : {std::pair{std::string("nic.example.com"), kNode},
                                           std::pair{kDriver, std::string("node-b")}}) {
        json slice = sliceObject(driver, nodeName, "uid-" + nodeName, nodeName, 1, 1, 0,
                                 json::array({json{{"name", "eth0"}}}));
        Result<Response> created = other->request("POST", "/apis/resource.k8s.io/v1/resourceslices", slice.dump());
        REQUIRE(created.ok());
        REQUIRE_MESSAGE(created->status == 201, created->body);
    }
    Publisher run(api);
    const DevicesByName pool = mixed();
    run.publisher.want(pool, 1);
    run.publisher.start();
    REQUIRE(run.publisher.waitPublished(1, scaled(10s)));
    REQUIRE(eventually([&] { return api.watching() == 1; }));

    // An edit with the slice's resourceVersion, as kubectl edit makes it:
    // one device gone.
    json edited;
    for (const json &slice : api.slices())
        if (slice["spec"]["driver"] == kDriver)
            edited = slice;
    REQUIRE(edited["spec"]["driver"] == kDriver);
    edited["spec"]["devices"].erase(0);
    const std::string path = "/apis/resource.k8s.io/v1/resourceslices/" + edited["metadata"]["name"].get<std::string>();
    Result<Response> put = other->request("PUT", path, edited.dump());
    REQUIRE(put.ok());
    REQUIRE_MESSAGE(put->status == 200, put->body);
    // The same edit again is refused: its resourceVersion is stale now.
    Result<Response> stale = other->request("PUT", path, edited.dump());
    REQUIRE(stale.ok());
    CHECK(stale->status == 409);
    CHECK(statusMessage(*stale).find("the object has been modified") != std::string::npos);

    CHECK(eventually([&] {
        std::vector<json> mine;
        for (const json &slice : api.slices())
            if (slice["spec"]["driver"] == kDriver)
                mine.push_back(slice);
        return deviceNames(mine) == namesOf(pool);
    }));
    std::vector<json> all = api.slices();
    REQUIRE(all.size() == 2);
    CHECK(std::count_if(all.begin(), all.end(), [](const json &slice) {
              return slice["spec"]["driver"] == "nic.example.com";
          }) == 1);
    CHECK(api.slices("node-b").size() == 1);
}

TEST_CASE("slices wiped while the publisher's watch is not open yet come back when it opens")
{
    // The kubelet wipes the node's slices when it starts, which may be just
    // when this plugin starts too: after the first sync, before the watch.
    FakeResourceApi api;
    api.holdWatches();
    Publisher run(api);
    const DevicesByName pool = mixed();
    run.publisher.want(pool, 1);
    run.publisher.start();
    REQUIRE(run.publisher.waitPublished(1, scaled(10s)));
    REQUIRE(eventually([&] { return api.held() >= 1; }));
    CHECK(api.wipe() == 1);
    api.recover();
    CHECK(eventually([&] { return deviceNames(api.slices()) == namesOf(pool); }, 10s));
}

TEST_CASE("while the API server is away, want() returns at once and the publisher catches up when it is back")
{
    FakeResourceApi api;
    Publisher run(api);
    run.publisher.want(gpus(3), 1);
    run.publisher.start();
    REQUIRE(run.publisher.waitPublished(1, scaled(10s)));

    api.failUntilRecovered();
    const Clock::time_point before = Clock::now();
    run.publisher.want(gpus(5), 2);
    CHECK(Clock::now() - before <= scaled(100ms));
    // Retried with backoff, every try refused.
    REQUIRE(eventually([&] { return api.refused() >= 3; }));
    CHECK(run.publisher.publishedVersion() == 1);
    CHECK(api.slices().front()["spec"]["devices"].size() == 3);
    std::vector<std::string> errors = run.errorsSoFar();
    REQUIRE_FALSE(errors.empty());
    CHECK_MESSAGE(errors.back().find("HTTP 503") != std::string::npos, errors.back());

    api.recover();
    REQUIRE(run.publisher.waitPublished(2, scaled(10s)));
    CHECK(deviceNames(api.slices()) == namesOf(gpus(5)));

    // A shorter outage that ends by itself.
    api.failFor(1s);
    run.publisher.want(gpus(7), 3);
    REQUIRE(run.publisher.waitPublished(3, scaled(10s)));
    CHECK(deviceNames(api.slices()) == namesOf(gpus(7)));
    CHECK(api.refused() > 3);
}

TEST_CASE("a burst of 50 changes costs far fewer than 50 writes and ends with the last pool")
{
    FakeResourceApi api;
    Publisher run(api);
    run.publisher.want(gpus(20), 1);
    run.publisher.start();
    REQUIRE(run.publisher.waitPublished(1, scaled(10s)));
    api.resetCounts();

    std::vector<DevicesByName> pools;
    for (int i = 0; i < 50; ++i) {
        DevicesByName pool = gpus(21 + i);
        setHealth(pool, std::next(pool.begin(), i % 7)->first, i % 2 == 0, "flapping");
        pools.push_back(std::move(pool));
    }
    const DevicesByName last = pools.back();
    for (int i = 0; i < 50; ++i)
        run.publisher.want(std::move(pools[i]), 2 + i);
    REQUIRE(run.publisher.waitPublished(51, scaled(10s)));

    std::vector<json> slices = api.slices();
    checkPoolConsistent(slices);
    CHECK(deviceNames(slices) == namesOf(last));
    for (const auto &[name, device] : last) {
        const json *entry = findDevice(slices, name);
        REQUIRE(entry);
        CHECK(entry->contains("taints") == !device.device.healthy);
    }
    const int writes = api.writes();
    MESSAGE("writes for 50 changes: ", writes, ", lists: ", api.count("slices LIST"));
    CHECK(writes <= 10);
}

TEST_CASE("stop() returns within a second while the API server hangs or fails")
{
    SUBCASE("hanging")
    {
        FakeResourceApi api;
        Publisher run(api);
        run.publisher.want(gpus(2), 1);
        run.publisher.start();
        REQUIRE(run.publisher.waitPublished(1, scaled(10s)));
        api.hang();
        run.publisher.want(gpus(3), 2);
        REQUIRE(eventually([&] { return api.held() >= 1; }));
        const Clock::time_point before = Clock::now();
        run.publisher.stop();
        CHECK(Clock::now() - before <= scaled(1s));
        CHECK(run.publisher.publishedVersion() == 1);
        CHECK_FALSE(run.publisher.waitPublished(2, 0ms));
        api.recover();
    }
    SUBCASE("failing, waiting out its backoff")
    {
        FakeResourceApi api;
        // The daemon's backoff: up to 30 s between tries.
        Publisher run(api, 250ms, 30s);
        api.failUntilRecovered();
        run.publisher.want(gpus(2), 1);
        run.publisher.start();
        REQUIRE(eventually([&] { return api.refused() >= 3; }));
        const Clock::time_point before = Clock::now();
        run.publisher.stop();
        CHECK(Clock::now() - before <= scaled(1s));
        CHECK(run.publisher.publishedVersion() == 0);
    }
    SUBCASE("never started")
    {
        FakeResourceApi api;
        Publisher run(api);
        run.publisher.want(gpus(2), 1);
        const Clock::time_point before = Clock::now();
        run.publisher.stop();
        CHECK(Clock::now() - before <= scaled(1s));
        CHECK(api.slices().empty());
    }
}

// --- ClaimPreparer --------------------------------------------------------------

TEST_CASE("prepare writes the claim's CDI spec and metadata and answers with their ids, once")
{
    FakeResourceApi api;
    ClaimNode node;
    std::unique_ptr<Client> client = makeClient(api.access());
    std::unique_ptr<ClaimPreparer> preparer = node.preparer(*client);
    const std::string uid = "c1a1e000-0000-4000-8000-000000000001";
    api.putClaim(claimJson(uid, "vm1-gpu", {"pci-0000-65-00-0"}));

    std::map<std::string, ClaimOutcome> outcome = preparer->prepare({{"vms", uid, "vm1-gpu"}});
    REQUIRE(outcome.count(uid) == 1);
    const ClaimOutcome &claim = outcome[uid];
    REQUIRE_MESSAGE(claim.error.empty(), claim.error);
    REQUIRE(claim.devices.size() == 1);
    CHECK(claim.devices[0].requestNames == std::vector<std::string>{"gpu"});
    CHECK(claim.devices[0].pool == kNode);
    CHECK(claim.devices[0].device == "pci-0000-65-00-0");
    CHECK(claim.devices[0].cdiIds == idsFor(uid, "pci-0000-65-00-0"));

    // The device nodes a VM needs, at the same path in the container.
    json spec = readJson(node.specPath(uid));
    REQUIRE_FALSE(spec.is_discarded());
    CHECK(spec["cdiVersion"] == "0.5.0");
    CHECK(spec["kind"] == kDriver + "/vm-gpu");
    REQUIRE(spec["devices"].size() == 1);
    CHECK(spec["devices"][0]["name"] == uid + "-pci-0000-65-00-0");
    std::vector<std::string> paths;
    for (const json &deviceNode : spec["devices"][0]["containerEdits"]["deviceNodes"]) {
        paths.push_back(deviceNode["path"]);
        CHECK(deviceNode["hostPath"] == deviceNode["path"]);
    }
    CHECK(paths == std::vector<std::string>{"/dev/vfio/vfio", "/dev/vfio/12"});

    // What virt-launcher reads, and the mount that brings it there.
    std::istringstream lines(readFile(node.metadataPath("vm1-gpu")));
    std::string line;
    REQUIRE(std::getline(lines, line));
    json metadata = json::parse(line, nullptr, false);
    REQUIRE_FALSE(metadata.is_discarded());
    CHECK(metadata["apiVersion"] == "metadata.resource.k8s.io/v1alpha1");
    CHECK(metadata["metadata"]["uid"] == uid);
    REQUIRE(metadata["requests"].size() == 1);
    CHECK(metadata["requests"][0]["name"] == "gpu");
    REQUIRE(metadata["requests"][0]["devices"].size() == 1);
    const json &device = metadata["requests"][0]["devices"][0];
    CHECK(device["name"] == "pci-0000-65-00-0");
    CHECK(device["pool"] == kNode);
    CHECK(device["driver"] == kDriver);
    CHECK(device["attributes"] ==
          json{{"resource.kubernetes.io/pciBusID", {{"string", "0000:65:00.0"}}}});
    json mountSpec = readJson(node.metadataSpecPath(uid));
    REQUIRE_FALSE(mountSpec.is_discarded());
    CHECK(mountSpec["kind"] == kDriver + "/metadata");
    CHECK(mountSpec["devices"][0]["name"] == uid + "_gpu");
    const json &mount = mountSpec["devices"][0]["containerEdits"]["mounts"][0];
    CHECK(mount["hostPath"] == node.metadataPath("vm1-gpu"));
    CHECK(mount["containerPath"] ==
          "/var/run/kubernetes.io/dra-device-attributes/resourceclaims/vm1-gpu/gpu/" + kDriver + "-metadata.json");
    CHECK(std::filesystem::exists(ClaimPreparer::checkpointPath(node.pluginDir())));
    CHECK(api.count("claims GET") == 1);

    // The kubelet asks again (it restarted): the same answer, from the checkpoint.
    std::map<std::string, ClaimOutcome> again = preparer->prepare({{"vms", uid, "vm1-gpu"}});
    CHECK(again == outcome);
    CHECK(api.count("claims GET") == 1);
}

TEST_CASE("each claim that cannot be served gets its own error; the others in the call are prepared")
{
    FakeResourceApi api;
    ClaimNode node;
    DevicesByName devices = node.devices();
    setHealth(devices, "pci-0000-66-00-0", false, "no /dev/vfio/13");
    node.setDevices(std::move(devices));
    std::unique_ptr<Client> client = makeClient(api.access());
    std::unique_ptr<ClaimPreparer> preparer = node.preparer(*client);

    api.putClaim(claimJson("uid-good", "good", {"pci-0000-65-00-0"}));
    api.putClaim(claimJson("uid-new", "replaced", {"pci-0000-65-00-0"}));
    api.putClaim(claimJson("uid-gone-device", "gone-device", {"pci-0000-67-00-0"}));
    api.putClaim(claimJson("uid-sick", "sick", {"pci-0000-66-00-0"}));
    std::map<std::string, ClaimOutcome> outcome = preparer->prepare({{"vms", "uid-good", "good"},
                                                                      {"vms", "uid-old", "replaced"},
                                                                      {"vms", "uid-gone-device", "gone-device"},
                                                                      {"vms", "uid-sick", "sick"},
                                                                      {"vms", "uid-missing", "missing"}});
    REQUIRE(outcome.size() == 5);
    CHECK_MESSAGE(outcome["uid-good"].error.empty(), outcome["uid-good"].error);
    CHECK(outcome["uid-good"].devices.size() == 1);
    auto failedWith = [&](const std::string &uid, const std::string &words) {
        const ClaimOutcome &claim = outcome[uid];
        CHECK_MESSAGE(claim.error.find(words) != std::string::npos, uid, ": ", claim.error);
        CHECK(claim.devices.empty());
    };
    failedWith("uid-old", "ResourceClaim vms/replaced got replaced: the API server has UID uid-new, the kubelet "
                          "asked for uid-old");
    failedWith("uid-gone-device", "device pci-0000-67-00-0 of ResourceClaim vms/gone-device is not offered by this "
                                  "node");
    failedWith("uid-sick", "device pci-0000-66-00-0 (0000:66:00.0) of ResourceClaim vms/sick is unhealthy: no "
                           "/dev/vfio/13");
    failedWith("uid-missing", "ResourceClaim vms/missing does not exist");

    // A device that one claim holds is not given to another.
    api.putClaim(claimJson("uid-second", "second", {"pci-0000-65-00-0"}));
    std::map<std::string, ClaimOutcome> second = preparer->prepare({{"vms", "uid-second", "second"}});
    CHECK_MESSAGE(second["uid-second"].error.find("already prepared for ResourceClaim vms/good (UID uid-good)") !=
                      std::string::npos,
                  second["uid-second"].error);

    // A device whose /dev node vanished since the snapshot is refused at prepare.
    DevicesByName healed = node.devices();
    setHealth(healed, "pci-0000-66-00-0", true);
    node.setDevices(std::move(healed));
    node.dev.remove("vfio/13");
    std::map<std::string, ClaimOutcome> noNode = preparer->prepare({{"vms", "uid-sick", "sick"}});
    CHECK_MESSAGE(noNode["uid-sick"].error.find("device pci-0000-66-00-0 of ResourceClaim vms/sick: ") == 0,
                  noNode["uid-sick"].error);

    // An API server that is away fails the claims that need it, naming why.
    api.failUntilRecovered();
    std::map<std::string, ClaimOutcome> away = preparer->prepare({{"vms", "uid-x", "x"}, {"vms", "uid-good", "good"}});
    CHECK_MESSAGE(away["uid-x"].error.find("cannot read ResourceClaim vms/x: HTTP 503") == 0, away["uid-x"].error);
    CHECK(away["uid-good"].error.empty());
    api.recover();

    // Only the prepared claim left files behind.
    CHECK(filesIn(node.cdiDir()) == std::set<std::string>{kDriver + "-vm-gpu_uid-good.json",
                                                           kDriver + "_metadata_uid-good_gpu.json"});
    CHECK(filesIn(node.pluginDir() + "/dra-device-metadata") == std::set<std::string>{"vms_good"});
}

TEST_CASE("unprepare removes what prepare wrote; a claim it does not know is success")
{
    FakeResourceApi api;
    ClaimNode node;
    std::unique_ptr<Client> client = makeClient(api.access());
    std::unique_ptr<ClaimPreparer> preparer = node.preparer(*client);
    const std::string uid = "c1a1e000-0000-4000-8000-000000000002";
    api.putClaim(claimJson(uid, "vm2-gpu", {"pci-0000-66-00-0"}));
    REQUIRE(preparer->prepare({{"vms", uid, "vm2-gpu"}})[uid].error.empty());
    REQUIRE(std::filesystem::exists(node.specPath(uid)));

    std::map<std::string, std::string> errors =
        preparer->unprepare({{"vms", uid, "vm2-gpu"}, {"vms", "never-seen", "other"}});
    CHECK(errors == std::map<std::string, std::string>{{uid, ""}, {"never-seen", ""}});
    CHECK(filesIn(node.cdiDir()).empty());
    CHECK_FALSE(std::filesystem::exists(node.pluginDir() + "/dra-device-metadata/vms_vm2-gpu"));
    // Twice is fine too.
    CHECK(preparer->unprepare({{"vms", uid, "vm2-gpu"}}) == std::map<std::string, std::string>{{uid, ""}});

    // Prepared again, it is read again: the checkpoint forgot it.
    REQUIRE(preparer->prepare({{"vms", uid, "vm2-gpu"}})[uid].error.empty());
    CHECK(api.count("claims GET") == 2);
}

TEST_CASE("a restarted preparer answers prepare from the checkpoint and cleans up at unprepare")
{
    FakeResourceApi api;
    ClaimNode node;
    std::unique_ptr<Client> client = makeClient(api.access());
    const std::string uid = "c1a1e000-0000-4000-8000-000000000003";
    api.putClaim(claimJson(uid, "vm3-gpu", {"pci-0000-65-00-0"}));
    std::map<std::string, ClaimOutcome> first = node.preparer(*client)->prepare({{"vms", uid, "vm3-gpu"}});
    REQUIRE_MESSAGE(first[uid].error.empty(), first[uid].error);
    api.resetCounts();

    std::unique_ptr<ClaimPreparer> restarted = node.preparer(*client);
    CHECK(restarted->prepare({{"vms", uid, "vm3-gpu"}}) == first);
    CHECK(api.count("claims GET") == 0);
    // Its device is still held.
    api.putClaim(claimJson("uid-other", "other", {"pci-0000-65-00-0"}));
    CHECK(restarted->prepare({{"vms", "uid-other", "other"}})["uid-other"].error.find("already prepared") !=
          std::string::npos);

    // The claim was deleted meanwhile: unprepare needs only the checkpoint.
    CHECK(node.preparer(*client)->unprepare({{"vms", uid, "vm3-gpu"}})[uid].empty());
    CHECK(filesIn(node.cdiDir()).empty());
    CHECK_FALSE(std::filesystem::exists(node.metadataPath("vm3-gpu")));
    CHECK(node.preparer(*client)->unprepare({{"vms", uid, "vm3-gpu"}})[uid].empty());
}

// --- DraSide ------------------------------------------------------------------------

namespace {

// An event loop on its own thread, as the daemon's, with a way to run a
// step on it and wait for its result.
class LoopThread {
public:
    LoopThread()
    {
        REQUIRE(loop_.initError() == 0);
        thread_ = std::thread([this] { loop_.run(); });
    }
    ~LoopThread()
    {
        onLoop([this] { loop_.stop(); });
        thread_.join();
        CHECK(loop_.close() == 0);
    }
    EventLoop &loop() { return loop_; }

    template <typename Step>
    auto onLoop(Step step) -> decltype(step())
    {
        std::packaged_task<decltype(step())()> task(std::move(step));
        auto result = task.get_future();
        loop_.post([&task] { task(); });
        REQUIRE(result.wait_for(scaled(10s)) == std::future_status::ready);
        return result.get();
    }

private:
    EventLoop loop_;
    std::thread thread_;
};

IndexChanges offered(std::vector<AdvertisedDevice> set, std::vector<std::string> removed = {})
{
    IndexChanges changes;
    changes.resources["nvidia.com/TU104GL_TESLA_T4"] =
        ResourceDelta{.kind = DeviceKind::Passthrough, .set = std::move(set), .removed = std::move(removed)};
    return changes;
}

std::shared_ptr<grpc::Channel> dial(const std::string &socket)
{
    return grpc::CreateChannel("unix:" + socket, grpc::InsecureChannelCredentials());
}

std::chrono::system_clock::time_point deadlineIn(std::chrono::milliseconds bound)
{
    return std::chrono::system_clock::now() + scaled(bound);
}

} // namespace

TEST_CASE("the DRA side starts from a kubeconfig at its first DRA device, registers, publishes and prepares")
{
    FakeResourceApi api;
    ClaimNode node;
    TempTree dirs;
    dirs.write("kubeconfig", fmt::format(R"(apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: {}
    certificate-authority: {}
users:
- name: plugin
  user:
    tokenFile: {}
contexts:
- name: fake
  context: {{cluster: fake, user: plugin}}
current-context: fake
)",
                                         api.url(), api.access().caFile, api.access().tokenFile));
    DraOptions options;
    options.kubeconfig = dirs.path("kubeconfig");
    options.cdiDir = node.cdiDir();
    options.registryDir = dirs.path("registry");
    options.pluginsDir = dirs.path("plugins");
    const std::string registrationSocket = options.registryDir + "/" + kDriver + "-reg.sock";
    const std::string draSocket = options.pluginsDir + "/" + kDriver + "/dra.sock";

    LoopThread loop;
    DraSide side(loop.loop(), DraSideConfig{.options = options,
                                            .nodeName = kNode,
                                            .sysfs = SysfsTree(node.sys.root()),
                                            .dev = DevTree(node.dev.root())});
    // A device of the device plugin API does not start it.
    AdvertisedDevice other = advertised("0000:67:00.0", 14);
    other.api = DeviceApi::DevicePlugin;
    loop.onLoop([&] { side.indexChanged(offered({other})); });
    CHECK_FALSE(loop.onLoop([&] { return side.started(); }));
    CHECK_FALSE(std::filesystem::exists(registrationSocket));
    CHECK(api.count("slices LIST") == 0);

    AdvertisedDevice first = advertised("0000:65:00.0", 12);
    AdvertisedDevice second = advertised("0000:66:00.0", 13);
    loop.onLoop([&] { side.indexChanged(offered({first, second})); });
    REQUIRE(loop.onLoop([&] { return side.started(); }));
    CHECK(std::filesystem::exists(draSocket));
    CHECK(std::filesystem::exists(registrationSocket));
    // Not ready until the kubelet says it registered the plugin.
    CHECK_FALSE(loop.onLoop([&] { return side.ready(); }));

    std::promise<bool> published;
    loop.onLoop([&] { side.whenPublished(scaled(10s), [&](bool done) { published.set_value(done); }); });
    auto publishedFuture = published.get_future();
    REQUIRE(publishedFuture.wait_for(scaled(15s)) == std::future_status::ready);
    CHECK(publishedFuture.get());
    std::vector<json> slices = api.slices();
    REQUIRE(slices.size() == 1);
    CHECK(deviceNames(slices) == std::set<std::string>{"pci-0000-65-00-0", "pci-0000-66-00-0"});

    // The kubelet's registration.
    auto registration = pluginregistration::Registration::NewStub(dial(registrationSocket));
    {
        grpc::ClientContext context;
        context.set_deadline(deadlineIn(1s));
        pluginregistration::PluginInfo info;
        REQUIRE(registration->GetInfo(&context, {}, &info).ok());
        CHECK(info.type() == "DRAPlugin");
        CHECK(info.name() == kDriver);
        CHECK(info.endpoint() == draSocket);
        REQUIRE(info.supported_versions_size() > 0);
        CHECK(info.supported_versions(0) == "v1.DRAPlugin");
    }
    {
        grpc::ClientContext context;
        context.set_deadline(deadlineIn(5s));
        pluginregistration::RegistrationStatus status;
        status.set_plugin_registered(true);
        pluginregistration::RegistrationStatusResponse response;
        REQUIRE(registration->NotifyRegistrationStatus(&context, status, &response).ok());
    }
    CHECK(loop.onLoop([&] { return side.ready(); }));

    // A pod's claim, prepared and unprepared over dra.sock.
    const std::string uid = "c1a1e000-0000-4000-8000-000000000004";
    api.putClaim(claimJson(uid, "vm4-gpu", {"pci-0000-66-00-0"}));
    auto dra = drav1::DRAPlugin::NewStub(dial(draSocket));
    {
        grpc::ClientContext context;
        context.set_deadline(deadlineIn(45s));
        drav1::NodePrepareResourcesRequest request;
        auto *claim = request.add_claims();
        claim->set_namespace_("vms");
        claim->set_uid(uid);
        claim->set_name("vm4-gpu");
        drav1::NodePrepareResourcesResponse response;
        REQUIRE(dra->NodePrepareResources(&context, request, &response).ok());
        REQUIRE(response.claims().count(uid) == 1);
        const auto &answer = response.claims().at(uid);
        CHECK_MESSAGE(answer.error().empty(), answer.error());
        REQUIRE(answer.devices_size() == 1);
        CHECK(answer.devices(0).pool_name() == kNode);
        CHECK(answer.devices(0).device_name() == "pci-0000-66-00-0");
        CHECK(std::vector<std::string>(answer.devices(0).cdi_device_ids().begin(),
                                       answer.devices(0).cdi_device_ids().end()) == idsFor(uid, "pci-0000-66-00-0"));
        CHECK(std::filesystem::exists(node.specPath(uid)));
    }

    // A health change reaches the slices: the device is tainted.
    second.healthy = false;
    second.healthReason = "no /dev/vfio/13";
    loop.onLoop([&] { side.indexChanged(offered({second})); });
    CHECK(eventually([&] {
        const std::vector<json> now = api.slices();
        const json *device = findDevice(now, "pci-0000-66-00-0");
        return device && device->contains("taints");
    }));
    // A device that moves to the device plugin API leaves the slices.
    first.api = DeviceApi::DevicePlugin;
    loop.onLoop([&] { side.indexChanged(offered({first})); });
    CHECK(eventually([&] { return deviceNames(api.slices()) == std::set<std::string>{"pci-0000-66-00-0"}; }));

    {
        grpc::ClientContext context;
        context.set_deadline(deadlineIn(45s));
        drav1::NodeUnprepareResourcesRequest request;
        auto *claim = request.add_claims();
        claim->set_namespace_("vms");
        claim->set_uid(uid);
        claim->set_name("vm4-gpu");
        drav1::NodeUnprepareResourcesResponse response;
        REQUIRE(dra->NodeUnprepareResources(&context, request, &response).ok());
        REQUIRE(response.claims().count(uid) == 1);
        CHECK(response.claims().at(uid).error().empty());
        CHECK(filesIn(node.cdiDir()).empty());
    }

    // Stopping deregisters and removes its sockets; the slices stay for the
    // kubelet to remove.
    const Clock::time_point before = Clock::now();
    loop.onLoop([&] { side.stop(); });
    CHECK(Clock::now() - before <= scaled(2s));
    CHECK_FALSE(std::filesystem::exists(registrationSocket));
    CHECK_FALSE(std::filesystem::exists(draSocket));
    CHECK(api.slices().size() == 1);
    CHECK(loop.onLoop([&] { return side.ready(); })); // not started: nothing to wait for
}

TEST_CASE("a DRA side that cannot reach the API server starts, and publishes once the server is back")
{
    FakeResourceApi api;
    ClaimNode node;
    TempTree dirs;
    dirs.write("kubeconfig", fmt::format("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n"
                                         "    server: {}\n    certificate-authority: {}\nusers:\n- name: u\n"
                                         "  user:\n    tokenFile: {}\ncontexts:\n- name: x\n"
                                         "  context: {{cluster: c, user: u}}\ncurrent-context: x\n",
                                         api.url(), api.access().caFile, api.access().tokenFile));
    DraOptions options;
    options.kubeconfig = dirs.path("kubeconfig");
    options.cdiDir = node.cdiDir();
    options.registryDir = dirs.path("registry");
    options.pluginsDir = dirs.path("plugins");
    api.failUntilRecovered();

    LoopThread loop;
    DraSide side(loop.loop(), DraSideConfig{.options = options,
                                            .nodeName = kNode,
                                            .sysfs = SysfsTree(node.sys.root()),
                                            .dev = DevTree(node.dev.root())});
    // The loop never waits for the API server.
    const Clock::time_point before = Clock::now();
    loop.onLoop([&] { side.indexChanged(offered({advertised("0000:65:00.0", 12)})); });
    CHECK(Clock::now() - before <= scaled(1s));
    REQUIRE(loop.onLoop([&] { return side.started(); }));
    REQUIRE(eventually([&] { return api.refused() >= 2; }));

    std::promise<bool> gaveUp;
    loop.onLoop([&] { side.whenPublished(100ms, [&](bool done) { gaveUp.set_value(done); }); });
    auto gaveUpFuture = gaveUp.get_future();
    REQUIRE(gaveUpFuture.wait_for(scaled(5s)) == std::future_status::ready);
    CHECK_FALSE(gaveUpFuture.get());

    api.recover();
    CHECK(eventually([&] { return deviceNames(api.slices()) == std::set<std::string>{"pci-0000-65-00-0"}; }, 10s));
    // On the loop, as the daemon stops it.
    loop.onLoop([&] { side.stop(); });
}

int main(int argc, char **argv)
{
    for (const char *tool : {kOpenssl, kPython}) {
        if (::access(tool, X_OK) != 0) {
            std::fprintf(stderr, "skipped: %s is missing (the test makes a certificate with openssl and runs "
                                 "tests/support/fake_resource_api.py)\n", tool);
            return 77;
        }
    }
    doctest::Context context(argc, argv);
    return context.run();
}
