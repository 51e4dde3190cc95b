// SR-IOV vGPU (vGPU 17+ on Ada, Hopper, Blackwell) and Grace EGM, end to end
// on the simulated node: VFs that stay on nvidia and carry their profile in
// nvidia/current_vgpu_type are advertised per profile, follow profile writes
// that send no uevent, and are handed out as PCI host devices; a container
// that holds every GPU of an EGM region gets its /dev/egmN.
#include "api.grpc.pb.h"
#include "plugin_fixture.h"

#include <doctest/doctest.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

using namespace kvgpu::test;

namespace {

const std::string kProfile18C = "nvidia.com/NVIDIA_H200X-1-18C";
const std::string kProfile141C = "nvidia.com/NVIDIA_H200X-141C";
const std::string kCardA = "0000:41:00.0";
const std::string kCardB = "0000:c1:00.0";
const std::string kVfA4 = "0000:41:00.4", kVfA5 = "0000:41:00.5";
const std::string kVfB4 = "0000:c1:00.4", kVfB5 = "0000:c1:00.5";

// Two H200s (one model): card A fully used by two 1-18C vGPUs, so its own
// catalogs list nothing; card B has one 1-18C VF and one VF without a profile.
const char *kTwoH200s = R"(
iommufd on
gpu 0000:41:00.0 id=10de:2335 group=70 numa=0 driver=nvidia sriov-vfs=4
sriov-profile 0000:41:00.0 1414 name="NVIDIA H200X-1-18C" instances=2
vfs 0000:41:00.0 count=2
vf-profile 0000:41:00.4 1414
vf-profile 0000:41:00.5 1414
gpu 0000:c1:00.0 id=10de:2335 group=90 numa=1 driver=nvidia sriov-vfs=4
sriov-profile 0000:c1:00.0 1414 name="NVIDIA H200X-1-18C" instances=4
sriov-profile 0000:c1:00.0 1428 name="NVIDIA H200X-141C" instances=1
vfs 0000:c1:00.0 count=2
vf-profile 0000:c1:00.4 1414
)";

const char *kH200PciIds = "10de  NVIDIA Corporation\n"
                          "\t2335  GH100 [H200 SXM 141GB]\n"
                          "\t2342  GH100 [GH200 120GB / 480GB]\n";

void writeFile(const std::string &path, const std::string &text)
{
    std::ofstream out(path);
    out << text;
}

struct SriovNode : PluginFixture {
    explicit SriovNode(const char *description = kTwoH200s) : PluginFixture(description)
    {
        files.write("pci.ids", kH200PciIds);
        kubelet->start();
    }

    // As `echo <id> > /sys/bus/pci/devices/<vf>/nvidia/current_vgpu_type`.
    void writeProfile(const std::string &vf, const std::string &id)
    {
        writeFile(node->pathOf(vf) + "/nvidia/current_vgpu_type", id + "\n");
    }

    std::string list(std::vector<std::string> extra = {})
    {
        std::vector<std::string> args = flags(std::move(extra));
        args.insert(args.begin(), "list");
        DaemonProcess run(pluginBinary(), args, files.path("list.out"));
        REQUIRE(run.waitExit(10s) == 0);
        return run.log();
    }

    bool logHas(const std::string &needle) { return plugin->waitForLog(needle, 5s); }
};

bool contains(const std::string &text, const std::string &needle) { return text.find(needle) != std::string::npos; }

} // namespace

TEST_CASE("cold start with two cards of one model: a fully used card's profile is named from its twin")
{
    SriovNode f;
    f.startPlugin();
    REQUIRE_MESSAGE(f.kubeletSees(kProfile18C, {kVfA4, kVfA5, kVfB4}), f.log());
    CHECK(*f.kubelet->latest(kProfile18C) ==
          std::vector<TestKubelet::Device>{{kVfA4, "Healthy", {0}}, {kVfA5, "Healthy", {0}}, {kVfB4, "Healthy", {1}}});
    // Neither the PFs nor the VF without a profile are resources.
    CHECK(f.kubelet->registrations().size() == 1);

    std::string out = f.list();
    CHECK(contains(out, "not advertised: SR-IOV VF without a vGPU profile (current_vgpu_type 0)"));
    const std::string parent = "not advertised: bound to nvidia, not vfio-pci (SR-IOV vGPU parent: 2 of 4 VFs, ";
    CHECK(contains(out, parent + "2 with a profile)"));
    CHECK(contains(out, parent + "1 with a profile)"));
    CHECK(contains(out, "NVIDIA H200X-1-18C"));
    CHECK(contains(out, "nvidia.com/NVIDIA_H200X-1-18C Healthy"));
}

TEST_CASE("a profile written after start is advertised, and withdrawn when cleared, without any uevent")
{
    SriovNode f;
    f.node->startKernelEmulation();
    f.startPlugin({"--vgpu-profile-interval", "200ms"});
    REQUIRE_MESSAGE(f.kubeletSees(kProfile18C, {kVfA4, kVfA5, kVfB4}), f.log());
    REQUIRE(f.logHas("watching SR-IOV vGPU profiles"));

    f.writeProfile(kVfB5, "1428");
    REQUIRE_MESSAGE(f.kubeletSees(kProfile141C, {kVfB5}), f.log());
    f.writeProfile(kVfB5, "0");
    CHECK_MESSAGE(f.kubeletSees(kProfile141C, {}), f.log());
    f.writeProfile(kVfB5, "1414");
    CHECK_MESSAGE(f.kubeletSees(kProfile18C, {kVfA4, kVfA5, kVfB4, kVfB5}), f.log());
    f.node->stopKernelEmulation();
}

TEST_CASE("the profile watch follows VFs: none without VFs, running while some are on nvidia")
{
    SriovNode f(R"(
gpu 0000:41:00.0 id=10de:2335 group=70 numa=0 driver=nvidia sriov-vfs=4
sriov-profile 0000:41:00.0 1414 name="NVIDIA H200X-1-18C" instances=4
)");
    f.node->startKernelEmulation();
    f.startPlugin({"--vgpu-profile-interval", "200ms"});
    REQUIRE(f.logHas("initial scan done"));
    // As sriov-manage -e: the VFs come with add, change, bind events and no profile.
    writeFile(f.node->pathOf(kCardA) + "/sriov_numvfs", "2\n");
    REQUIRE_MESSAGE(f.logHas("watching SR-IOV vGPU profiles"), f.log());
    CHECK(f.log().find("watching SR-IOV vGPU profiles") > f.log().find("initial scan done"));
    f.writeProfile(kVfA5, "1414");
    REQUIRE_MESSAGE(f.kubeletSees(kProfile18C, {kVfA5}), f.log());
    // Removing the VFs (unbind, remove per VF) withdraws them and ends the watch.
    writeFile(f.node->pathOf(kCardA) + "/sriov_numvfs", "0\n");
    CHECK_MESSAGE(f.kubeletSees(kProfile18C, {}), f.log());
    CHECK(f.logHas("no SR-IOV vGPU VF left; profile watch stopped"));
    f.node->stopKernelEmulation();
}

TEST_CASE("a VF that leaves nvidia is withdrawn and says why")
{
    SriovNode f;
    f.startPlugin({"--vgpu-profile-interval", "0"});
    REQUIRE_MESSAGE(f.kubeletSees(kProfile18C, {kVfA4, kVfA5, kVfB4}), f.log());
    f.node->unbind(kVfA4);
    REQUIRE_MESSAGE(f.kubeletSees(kProfile18C, {kVfA5, kVfB4}), f.log());
    f.node->bind(kVfA4, "vfio-pci");
    CHECK(contains(f.list(), "not advertised: SR-IOV VF of 0000:41:00.0 bound to vfio-pci, not nvidia"));
}

TEST_CASE("Allocate hands VFs out as PCI host devices, in request order, with their own nodes")
{
    SriovNode f;
    f.startPlugin();
    REQUIRE_MESSAGE(f.kubeletSees(kProfile18C, {kVfA4, kVfA5, kVfB4}), f.log());
    v1beta1::AllocateResponse response;
    REQUIRE(f.kubelet->allocate(kProfile18C, {{kVfB4, kVfA4}}, &response).ok());
    const auto &container = response.container_responses(0);
    CHECK(container.envs().at("PCI_RESOURCE_NVIDIA_COM_NVIDIA_H200X-1-18C") == "0000:c1:00.4,0000:41:00.4");
    CHECK(container.envs().count("MDEV_PCI_RESOURCE_NVIDIA_COM_NVIDIA_H200X-1-18C") == 0);
    std::vector<std::string> paths;
    for (const auto &device : container.devices())
        paths.push_back(device.container_path());
    const int groupB4 = *f.node->iommuGroupOf(kVfB4), groupA4 = *f.node->iommuGroupOf(kVfA4);
    REQUIRE(paths.size() == 6);
    CHECK(paths[0] == "/dev/vfio/vfio");
    CHECK(paths[1] == "/dev/vfio/" + std::to_string(groupB4));
    CHECK(paths[2] == "/dev/vfio/" + std::to_string(groupA4));
    CHECK(paths[3] == "/dev/iommu");
    CHECK(paths[4].rfind("/dev/vfio/devices/vfio", 0) == 0);
    CHECK(paths[5].rfind("/dev/vfio/devices/vfio", 0) == 0);
}

TEST_CASE("Allocate refuses a VF whose profile changed or was cleared since it was advertised")
{
    SriovNode f;
    f.startPlugin({"--vgpu-profile-interval", "0"}); // the daemon does not notice: Allocate must
    REQUIRE_MESSAGE(f.kubeletSees(kProfile18C, {kVfA4, kVfA5, kVfB4}), f.log());
    f.node->setVgpuProfile(kVfB4, 0);
    f.node->setVgpuProfile(kVfB4, 1428);
    v1beta1::AllocateResponse response;
    grpc::Status changed = f.kubelet->allocate(kProfile18C, {{kVfB4}}, &response);
    CHECK(changed.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
    CHECK_MESSAGE(contains(changed.error_message(),
                           "VF 0000:c1:00.4 now carries vGPU type 1428, not type 1414 of "
                           "nvidia.com/NVIDIA_H200X-1-18C"),
                  changed.error_message());
    f.node->setVgpuProfile(kVfA4, 0);
    grpc::Status cleared = f.kubelet->allocate(kProfile18C, {{kVfA4}}, &response);
    CHECK(cleared.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
    CHECK(contains(cleared.error_message(), "VF 0000:41:00.4 no longer carries a vGPU profile (current_vgpu_type 0)"));
    CHECK(f.kubelet->allocate(kProfile18C, {{kVfA5}}, &response).ok());
}

TEST_CASE("a fully configured card names its profiles after a restart only when the names were kept")
{
    const char *oneCard = R"(
gpu 0000:41:00.0 id=10de:2335 group=70 numa=0 driver=nvidia sriov-vfs=4
sriov-profile 0000:41:00.0 1414 name="NVIDIA H200X-1-18C" instances=2
vfs 0000:41:00.0 count=2
vf-profile 0000:41:00.4 1414
)";
    SriovNode f(oneCard);
    f.files.mkdir("state");
    std::vector<std::string> keep = {"--state-dir", f.files.path("state"), "--vgpu-profile-interval", "0"};
    f.startPlugin(keep);
    REQUIRE_MESSAGE(f.kubeletSees(kProfile18C, {kVfA4}), f.log());
    f.plugin->signal(SIGTERM);
    REQUIRE(f.plugin->waitExit(10s) == 0);

    // The card is now full: no catalog on the node shows the name any more.
    f.node->setVgpuProfile(kVfA5, 1414);
    std::string unknown = f.list();
    CHECK_MESSAGE(contains(unknown, "vGPU type 1414 on 0000:41:00.4: name unknown (tried: catalog of card "
                                    "0000:41:00.0; catalogs of other 10de:2335 cards; names learned earlier "
                                    "(memory only: no --state-dir); NVML"),
                  unknown);
    f.startPlugin(keep);
    CHECK_MESSAGE(f.kubeletSees(kProfile18C, {kVfA4, kVfA5}), f.log());
}

TEST_CASE("EGM: a request with every GPU of a region gets /dev/egmN, with some or none it does not")
{
    SriovNode f(R"(
gpu 0009:01:00.0 id=10de:2342 group=200 numa=0 driver=nvgrace_gpu_vfio_pci
gpu 0009:02:00.0 id=10de:2342 group=201 numa=0 driver=nvgrace_gpu_vfio_pci
egm egm4 gpus=0009:01:00.0,0009:02:00.0
gpu 0019:01:00.0 id=10de:2342 group=210 numa=1 driver=nvgrace_gpu_vfio_pci
egm egm5 gpus=0019:01:00.0 layout=links node=no
)");
    const std::string gh200 = "nvidia.com/GH100_GH200_120GB___480GB";
    f.startPlugin();
    REQUIRE_MESSAGE(f.kubeletSees(gh200, {"0009:01:00.0", "0009:02:00.0", "0019:01:00.0"}), f.log());
    CHECK(f.logHas("msg=\"EGM region\" region=egm4 gpus=0009:01:00.0,0009:02:00.0 node=/dev/egm4"));

    auto nodesOf = [&](std::vector<std::string> ids) {
        v1beta1::AllocateResponse response;
        REQUIRE(f.kubelet->allocate(gh200, {ids}, &response).ok());
        std::set<std::string> egm;
        for (const auto &device : response.container_responses(0).devices())
            if (device.container_path().rfind("/dev/egm", 0) == 0) {
                CHECK(device.host_path() == device.container_path());
                egm.insert(device.container_path());
            }
        return egm;
    };
    CHECK(nodesOf({"0009:02:00.0", "0009:01:00.0"}) == std::set<std::string>{"/dev/egm4"}); // all
    CHECK(nodesOf({"0009:01:00.0"}).empty());                                                // some
    CHECK(nodesOf({"0019:01:00.0"}).empty()); // all of egm5, whose node is missing
    CHECK(f.logHas("EGM region held by the request has no device node"));
    CHECK(nodesOf({"0019:01:00.0", "0009:01:00.0", "0009:02:00.0"}) == std::set<std::string>{"/dev/egm4"});

    // A region can gain a GPU without any event: Allocate re-reads it, and the
    // two GPUs are no longer the whole region.
    f.node->addEgmGpu("egm4", "0009:03:00.0");
    CHECK(nodesOf({"0009:01:00.0", "0009:02:00.0"}).empty());

    // A region that appears later is logged; list shows every region.
    f.node->addEgmRegion({.name = "egm6", .gpus = {"0029:01:00.0"}});
    CHECK(f.logHas("region=egm6"));
    std::string out = f.list();
    CHECK(contains(out, "egm4        0009:01:00.0 0009:02:00.0"));
    CHECK(contains(out, "/dev/egm4"));
    CHECK(contains(out, "egm5        0019:01:00.0"));
    std::string json = f.list({"--json"});
    CHECK_MESSAGE(contains(json, "{\"name\": \"egm4\", \"gpus\": [\"0009:01:00.0\", \"0009:02:00.0\", \"0009:03:00.0\"], "
                                 "\"node\": \"/dev/egm4\""),
                  json);
    CHECK(contains(json, "{\"name\": \"egm5\", \"gpus\": [\"0019:01:00.0\"], \"node\": null"));
    CHECK(contains(json, "{\"name\": \"egm6\", \"gpus\": [\"0029:01:00.0\"]"));
}

TEST_CASE("VFIO_VGPU_RESCAN_INTERVAL from a Go plugin's DaemonSet sets the profile watch; garbage stops the plugin")
{
    SriovNode f;
    setenv("VFIO_VGPU_RESCAN_INTERVAL", "250ms", 1);
    f.startPlugin();
    unsetenv("VFIO_VGPU_RESCAN_INTERVAL");
    CHECK_MESSAGE(f.logHas("watching SR-IOV vGPU profiles (their writes send no uevent)\" vfs=4 interval_ms=250"),
                  f.log());
    f.plugin->signal(SIGTERM);
    REQUIRE(f.plugin->waitExit(10s) == 0);

    setenv("VFIO_VGPU_RESCAN_INTERVAL", "every minute", 1);
    f.startPlugin();
    unsetenv("VFIO_VGPU_RESCAN_INTERVAL");
    CHECK(f.plugin->waitExit(10s) == 2);
    CHECK(contains(f.log(), "VFIO_VGPU_RESCAN_INTERVAL is not a valid interval"));
}

TEST_CASE("the daemon, list and check-config agree on a full card whose profile names only --state-dir knows")
{
    // One H100 SXM whose two VFs both carry 1-10C: its catalogs list nothing
    // creatable, so no file on the node names type 1391; the name book does.
    SriovNode f(R"(
gpu 0000:41:00.0 id=10de:2330 group=70 numa=0 driver=nvidia sriov-vfs=2
sriov-profile 0000:41:00.0 1391 name="NVIDIA H100XM-1-10C" instances=2
vfs 0000:41:00.0 count=2
vf-profile 0000:41:00.4 1391
vf-profile 0000:41:00.5 1391
)");
    const std::string profile = "nvidia.com/NVIDIA_H100XM-1-10C";
    f.files.write("state/vgpu-type-names", "0000:41:00.0 2330 1391 NVIDIA H100XM-1-10C\n");
    f.files.write("rules.yaml", "version: 1\n");
    const std::vector<std::string> state = {"--state-dir", f.files.path("state")};
    auto checkConfig = [&](std::vector<std::string> extra) {
        std::vector<std::string> args = f.flags(std::move(extra));
        args.insert(args.begin(), {"check-config", f.files.path("rules.yaml")});
        DaemonProcess run(pluginBinary(), args, f.files.path("check.out"));
        REQUIRE(run.waitExit(10s) == 0);
        return run.log();
    };
    // The row of `device` in a command's output.
    auto row = [](const std::string &out, const std::string &device) {
        size_t at = out.find("\n" + device);
        return at == std::string::npos ? std::string() : out.substr(at + 1, out.find('\n', at + 1) - at - 1);
    };

    f.startPlugin({"--state-dir", f.files.path("state"), "--config", f.files.path("rules.yaml"),
                   "--vgpu-profile-interval", "0"});
    CHECK_MESSAGE(f.kubeletSees(profile, {kVfA4, kVfA5}), f.log());

    std::string list = f.list(state);
    std::string check = checkConfig(state);
    for (const std::string &vf : {kVfA4, kVfA5}) {
        CHECK_MESSAGE(contains(row(list, vf), profile + " Healthy"), list);
        CHECK_MESSAGE(contains(row(check, vf), "NVIDIA H100XM-1-10C  " + profile), check);
        CHECK_MESSAGE(contains(row(check, vf), "default name"), check);
    }

    // Without the book nothing names the type, and both commands say so alike.
    const std::string unknown = "not advertised: vGPU type 1391 on 0000:41:00.4: name unknown";
    CHECK(contains(row(f.list(), kVfA4), unknown));
    CHECK(contains(row(checkConfig({}), kVfA4), unknown));
}
