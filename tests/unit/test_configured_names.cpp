// Configured rules as one more input of derivation: they rename, merge and
// exclude the devices of a node, `list` rows say which rule decided, and a
// configuration that would put two kinds of device under one name is caught
// before it applies.
#include "config/config_parser.h"
#include "index/derivation.h"
#include "index/device_index.h"
#include "fake_names.h"

#include <doctest/doctest.h>

using namespace kvgpu;
using kvgpu::test::nvidiaNames;

namespace {

PciFunction gpu(std::string address, std::uint16_t device, int group, int numa = 0)
{
    return PciFunction{.address = std::move(address), .vendor = 0x10de, .device = device, .classCode = 0x030200,
                       .driver = "vfio-pci", .iommuGroup = group, .numaNode = numa};
}

Mdev vgpu(std::string uuid, std::string typeId, std::string typeName, int group)
{
    return Mdev{.uuid = std::move(uuid), .parentAddress = "0000:b1:00.0", .parentVendor = 0x10de,
                .typeId = std::move(typeId), .typeName = std::move(typeName), .iommuGroup = group,
                .driver = "nvidia-vgpu-vfio"};
}

// Two A100 40GB under two ids, a T4, and an L4 vGPU parent with one vGPU.
NodeObservation standardNode()
{
    NodeObservation node;
    node.functions["0000:65:00.0"] = gpu("0000:65:00.0", 0x20b1, 12);
    node.functions["0000:66:00.0"] = gpu("0000:66:00.0", 0x20f1, 13, 1);
    node.functions["0000:67:00.0"] = gpu("0000:67:00.0", 0x1eb8, 14);
    PciFunction parent = gpu("0000:b1:00.0", 0x27b8, 40);
    parent.driver = "nvidia";
    node.functions["0000:b1:00.0"] = parent;
    node.mdevs["aa618089-8b16-4d01-a136-25a0f3c73123"] =
        vgpu("aa618089-8b16-4d01-a136-25a0f3c73123", "nvidia-592", "NVIDIA L4-1Q", 101);
    node.vfioGroupNodes = {12, 13, 14, 101};
    return node;
}

NodeRules rulesOf(const std::string &yaml, const std::string &nodeName = "worker-1")
{
    Result<ResourceConfig, ConfigError> config = parseResourceConfig(yaml);
    REQUIRE_MESSAGE(config.ok(), config.error());
    return rulesForNode(*config, nodeName);
}

std::vector<std::string> idsOf(const Inventory &inventory, const std::string &resource)
{
    std::vector<std::string> out;
    if (auto it = inventory.resources.find(resource); it != inventory.resources.end())
        for (const AdvertisedDevice &d : it->second.devices)
            out.push_back(d.id);
    return out;
}

const DeviceRow &rowOf(const Inventory &inventory, const std::string &id)
{
    for (const DeviceRow &r : inventory.rows)
        if (r.id == id)
            return r;
    FAIL("no row for " << id);
    throw 0;
}

} // namespace

TEST_CASE("without rules every device keeps today's name and no row names a rule")
{
    auto names = nvidiaNames();
    NodeRules none;
    Inventory inventory = deriveInventory(standardNode(), names, &none);
    CHECK(inventory.resources == deriveInventory(standardNode(), names).resources);
    CHECK(idsOf(inventory, "nvidia.com/GA100_A100_PCIE_40GB") ==
          std::vector<std::string>{"0000:65:00.0", "0000:66:00.0"});
    for (const DeviceRow &row : inventory.rows)
        CHECK(row.rule.empty());
}

TEST_CASE("one generic name for every passthrough GPU; vGPUs keep theirs")
{
    auto names = nvidiaNames();
    NodeRules rules = rulesOf("version: 1\nresources:\n  - name: nvidia.com/passthrough-gpu\n"
                              "    match: {kind: passthrough}\n");
    Inventory inventory = deriveInventory(standardNode(), names, &rules);
    CHECK(idsOf(inventory, "nvidia.com/passthrough-gpu") ==
          std::vector<std::string>{"0000:65:00.0", "0000:66:00.0", "0000:67:00.0"});
    CHECK(idsOf(inventory, "nvidia.com/NVIDIA_L4-1Q") ==
          std::vector<std::string>{"aa618089-8b16-4d01-a136-25a0f3c73123"});
    CHECK(inventory.resources.size() == 2);
    CHECK(rowOf(inventory, "0000:67:00.0").rule == "resources[0] (line 3)");
    CHECK(rowOf(inventory, "aa618089-8b16-4d01-a136-25a0f3c73123").rule.empty());
}

TEST_CASE("short names per model, a vGPU profile renamed, one GPU excluded on one node")
{
    auto names = nvidiaNames();
    const std::string yaml = R"(version: 1
resources:
  - name: nvidia.com/A100
    match: { model: "GA100 [A100*" }
  - name: nvidia.com/L4-1Q
    match: { kind: vgpu, model: "NVIDIA L4-1Q" }
nodes:
  - name: "gpu-a-*"
    resources:
      - exclude: true
        match: { addresses: ["0000:66:00.0"] }
)";
    NodeRules onA = rulesOf(yaml, "gpu-a-3");
    Inventory a = deriveInventory(standardNode(), names, &onA);
    CHECK(idsOf(a, "nvidia.com/A100") == std::vector<std::string>{"0000:65:00.0"});
    CHECK(idsOf(a, "nvidia.com/L4-1Q") == std::vector<std::string>{"aa618089-8b16-4d01-a136-25a0f3c73123"});
    CHECK(idsOf(a, "nvidia.com/TU104GL_TESLA_T4") == std::vector<std::string>{"0000:67:00.0"});
    const DeviceRow &excluded = rowOf(a, "0000:66:00.0");
    CHECK(excluded.resource.empty());
    CHECK(excluded.reason == "excluded by rule nodes[0].resources[0] (line 10)");
    CHECK(excluded.rule == "nodes[0].resources[0] (line 10)");

    NodeRules onB = rulesOf(yaml, "gpu-b-3");
    Inventory b = deriveInventory(standardNode(), names, &onB);
    CHECK(idsOf(b, "nvidia.com/A100") == std::vector<std::string>{"0000:65:00.0", "0000:66:00.0"});
}

TEST_CASE("a vGPU renamed into a passthrough resource is a conflict, caught before it applies")
{
    auto names = nvidiaNames();
    NodeRules rules = rulesOf("version: 1\nresources:\n  - name: nvidia.com/gpu\n"
                              "    match: {deviceIds: [\"10de:1eb8\"]}\n"
                              "  - name: nvidia.com/gpu\n    match: {model: \"NVIDIA L4-*\"}\n");
    const NodeObservation node = standardNode();
    const HealthHistories histories = HealthHistories::firstReading(node);
    Result<void> conflict = checkKinds(node, histories, names, rules);
    REQUIRE_FALSE(conflict);
    CHECK(conflict.error() == "resource nvidia.com/gpu would hold both passthrough 0000:67:00.0 (rule resources[0] (line 3)) "
                       "and vGPU aa618089-8b16-4d01-a136-25a0f3c73123 (rule resources[1] (line 5)); KubeVirt needs "
                       "one kind of device per resource");

    // A rule that gives a vGPU the default name of a passthrough model is one too.
    NodeRules clash =
        rulesOf("version: 1\nresources:\n  - name: nvidia.com/TU104GL_TESLA_T4\n    match: {kind: vgpu}\n");
    conflict = checkKinds(node, histories, names, clash);
    REQUIRE_FALSE(conflict);
    CHECK(conflict.error().find("passthrough 0000:67:00.0 (its default name)") != std::string::npos);

    NodeRules fine = rulesOf("version: 1\nresources:\n  - name: nvidia.com/gpu\n    match: {kind: passthrough}\n");
    CHECK(checkKinds(node, histories, names, fine));
}

TEST_CASE("a vGPU matches deviceIds by its parent GPU's id")
{
    auto names = nvidiaNames();
    NodeRules rules =
        rulesOf("version: 1\nresources:\n  - exclude: true\n    match: {kind: vgpu, deviceIds: [\"10de:27b8\"]}\n");
    Inventory inventory = deriveInventory(standardNode(), names, &rules);
    CHECK(rowOf(inventory, "aa618089-8b16-4d01-a136-25a0f3c73123").reason ==
          "excluded by rule resources[0] (line 3)");
    CHECK_FALSE(inventory.resources.contains("nvidia.com/NVIDIA_L4-1Q"));
}

TEST_CASE("SR-IOV vGPU VFs are a kind of their own: renamed by profile glob, excluded by address")
{
    NodeObservation node;
    PciFunction pf{.address = "0000:41:00.0", .vendor = 0x10de, .device = 0x2335, .classCode = 0x030200,
                   .driver = "nvidia", .iommuGroup = 70, .numaNode = 0};
    pf.sriovTotalVfs = 16;
    node.functions[pf.address] = pf;
    for (auto [address, group] : {std::pair{"0000:41:00.4", 71}, std::pair{"0000:41:00.5", 72}}) {
        PciFunction vf{.address = address, .vendor = 0x10de, .device = 0x2335, .classCode = 0x030200,
                       .driver = "nvidia", .iommuGroup = group, .numaNode = 0};
        vf.physfn = pf.address;
        vf.currentVgpuType = 1414;
        vf.creatableVgpuTypes = {VgpuType{1414, "NVIDIA H200X-1-18C"}};
        node.functions[address] = vf;
        node.vfioGroupNodes.insert(group);
    }
    NodeRules rules = rulesOf(R"(version: 1
resources:
  - exclude: true
    match: { kind: sriov-vgpu, addresses: ["0000:41:00.5"] }
  - name: nvidia.com/h200-slice
    match: { kind: sriov-vgpu, model: "*H200X-1-18C" }
  - name: nvidia.com/not-for-vfs
    match: { kind: passthrough }
)");
    auto names = nvidiaNames();
    Inventory inventory = deriveInventory(node, names, &rules);
    CHECK(idsOf(inventory, "nvidia.com/h200-slice") == std::vector<std::string>{"0000:41:00.4"});
    CHECK(idsOf(inventory, "nvidia.com/NVIDIA_H200X-1-18C").empty());
    CHECK(idsOf(inventory, "nvidia.com/not-for-vfs").empty());
    CHECK(inventory.resources.at("nvidia.com/h200-slice").kind == DeviceKind::SriovVgpu);
    for (const DeviceRow &row : inventory.rows)
        if (row.id == "0000:41:00.5")
            CHECK(row.reason.find("excluded by rule resources[0]") != std::string::npos);
}

TEST_CASE("api: each advertised device carries the API its rule or the node's default gives it")
{
    auto names = nvidiaNames();
    NodeRules rules = rulesOf(R"(version: 1
api: dra
resources:
  - name: nvidia.com/t4
    api: device-plugin
    match: {deviceIds: ["10de:1eb8"]}
)");
    Inventory inventory = deriveInventory(standardNode(), names, &rules);
    auto apiOf = [&](const std::string &resource) {
        return inventory.resources.at(resource).devices.front().api;
    };
    CHECK(apiOf("nvidia.com/t4") == DeviceApi::DevicePlugin);
    CHECK(apiOf("nvidia.com/GA100_A100_PCIE_40GB") == DeviceApi::Dra);
    CHECK(apiOf("nvidia.com/NVIDIA_L4-1Q") == DeviceApi::Dra);
    CHECK(rowOf(inventory, "0000:67:00.0").api == "device-plugin");
    CHECK(rowOf(inventory, "aa618089-8b16-4d01-a136-25a0f3c73123").api == "dra");
    // Without `api` nothing changes: every device stays with the device plugin API.
    NodeRules plain = rulesOf("version: 1\nresources: []\n");
    for (const auto &[name, resource] : deriveInventory(standardNode(), names, &plain).resources)
        for (const AdvertisedDevice &device : resource.devices)
            CHECK(device.api == DeviceApi::DevicePlugin);
}

TEST_CASE("a resource name offered through both APIs is refused before it applies")
{
    auto names = nvidiaNames();
    NodeRules rules = rulesOf(R"(version: 1
resources:
  - name: nvidia.com/gpu
    api: dra
    match: {deviceIds: ["10de:1eb8"]}
  - name: nvidia.com/gpu
    match: {kind: passthrough}
)");
    Result<void> fits = checkKinds(standardNode(), HealthHistories{}, names, rules);
    REQUIRE_FALSE(fits.ok());
    CHECK(fits.error().find("resource nvidia.com/gpu would be offered both through device-plugin") != std::string::npos);
    CHECK(fits.error().find("and through dra") != std::string::npos);
    CHECK(fits.error().find("a resource is offered by one API") != std::string::npos);
}

TEST_CASE("while a reload moves devices between the APIs, they are offered by neither")
{
    auto names = nvidiaNames();
    auto before = std::make_shared<const NodeRules>(rulesOf("version: 1\nresources: []\n"));
    NodeRules moving = rulesOf(R"(version: 1
resources:
  - name: nvidia.com/t4
    api: dra
    match: {deviceIds: ["10de:1eb8"]}
)");
    moving.previous = before;
    Inventory during = deriveInventory(standardNode(), names, &moving);
    CHECK(idsOf(during, "nvidia.com/t4").empty());
    CHECK(rowOf(during, "0000:67:00.0").reason ==
          "moving from device-plugin to dra: withheld until device-plugin has withdrawn it");
    // Devices whose API does not change stay offered throughout.
    CHECK(idsOf(during, "nvidia.com/GA100_A100_PCIE_40GB") ==
          std::vector<std::string>{"0000:65:00.0", "0000:66:00.0"});
    moving.previous.reset();
    Inventory after = deriveInventory(standardNode(), names, &moving);
    CHECK(idsOf(after, "nvidia.com/t4") == std::vector<std::string>{"0000:67:00.0"});
}
