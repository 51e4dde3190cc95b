// The ResourceSlice side of DRA: how a device is named, what a slice says of
// each kind of device, how an unhealthy device is tainted, and how a pool is
// cut into slices within the API's limits.
#include "dra/device_names.h"
#include "dra/slices.h"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <regex>
#include <set>

using namespace kvgpu;
using namespace kvgpu::dra;
using nlohmann::json;

namespace {

const std::string kDriver = "gpu-vm.example.com";

// The API's own patterns, restated independently of the code under test.
bool matchesDnsLabel(const std::string &s)
{
    return s.size() <= 63 && std::regex_match(s, std::regex("[a-z0-9]([-a-z0-9]*[a-z0-9])?"));
}
bool matchesLabelValue(const std::string &s)
{
    return s.size() <= 63 && std::regex_match(s, std::regex("[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"));
}
bool matchesDnsSubdomain(const std::string &s)
{
    return s.size() <= 253 &&
           std::regex_match(s, std::regex("[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"));
}

DraDevice t4Passthrough()
{
    return DraDevice{"nvidia.com/TU104GL_TESLA_T4", DeviceKind::Passthrough,
                     AdvertisedDevice{.id = "0000:65:00.0", .numaNode = 0, .iommuGroup = 12,
                                      .pciePath = {"pci0000:64", "0000:64:00.0"}, .vendorId = 0x10de,
                                      .deviceId = 0x1eb8, .product = "TU104GL [Tesla T4]"}};
}

DraDevice t4Vgpu()
{
    return DraDevice{"nvidia.com/GRID_T4-1Q", DeviceKind::Vgpu,
                     AdvertisedDevice{.id = "AA618089-8B16-4D01-A136-25A0F3C73123", .numaNode = -1,
                                      .iommuGroup = 140, .pciePath = {"pci0000:64", "0000:64:00.0", "0000:65:00.0"},
                                      .vgpuType = "nvidia-222", .vendorId = 0x10de, .deviceId = 0x1eb8,
                                      .product = "TU104GL [Tesla T4]", .profile = "GRID T4-1Q",
                                      .parent = "0000:65:00.0"}};
}

DraDevice l40sVf()
{
    return DraDevice{"nvidia.com/NVIDIA_L40S-4Q", DeviceKind::SriovVgpu,
                     AdvertisedDevice{.id = "0000:3B:00.4", .numaNode = 1, .iommuGroup = 77,
                                      .pciePath = {"pci0000:3a", "0000:3a:00.0"}, .vgpuTypeId = 1155,
                                      .vendorId = 0x10de, .deviceId = 0x26b9, .product = "AD102GL [L40S]",
                                      .profile = "NVIDIA L40S-4Q", .parent = "0000:3b:00.0"}};
}

json device(const std::string &name, bool tainted)
{
    json d = {{"name", name}, {"attributes", json::object()}};
    if (tainted)
        d["taints"] = json::array({json{{"key", kDriver + "/unhealthy"}, {"value", "x"}, {"effect", "NoSchedule"}}});
    return d;
}

std::vector<json> pool(int count, int taintedAt = -1)
{
    std::vector<json> devices;
    // Added in reverse order: the split sorts them.
    for (int i = count - 1; i >= 0; --i)
        devices.push_back(device(fmt::format("pci-{:04x}-00-00-0", i), i == taintedAt));
    return devices;
}

} // namespace

TEST_CASE("a PCI function is named by its address and an mdev by its UUID, as DNS labels")
{
    CHECK(draDeviceName(DeviceKind::Passthrough, "0000:65:00.0") == "pci-0000-65-00-0");
    CHECK(draDeviceName(DeviceKind::SriovVgpu, "0000:3B:00.4") == "pci-0000-3b-00-4");
    CHECK(draDeviceName(DeviceKind::Vgpu, "AA618089-8B16-4D01-A136-25A0F3C73123") ==
          "mdev-aa618089-8b16-4d01-a136-25a0f3c73123");
    CHECK(draDeviceName(t4Vgpu()) == "mdev-aa618089-8b16-4d01-a136-25a0f3c73123");
    for (const std::string &name : {draDeviceName(t4Passthrough()), draDeviceName(t4Vgpu()), draDeviceName(l40sVf())}) {
        CHECK(matchesDnsLabel(name));
        CHECK(isDnsLabel(name));
    }
}

TEST_CASE("device names are stable and distinct, and odd ids still give valid labels")
{
    CHECK(draDeviceName(DeviceKind::Passthrough, "0000:65:00.0") ==
          draDeviceName(DeviceKind::Passthrough, "0000:65:00.0"));
    std::set<std::string> names;
    for (int bus = 0; bus < 256; ++bus)
        for (int fn = 0; fn < 8; ++fn)
            names.insert(draDeviceName(DeviceKind::SriovVgpu, fmt::format("0000:{:02x}:00.{}", bus, fn)));
    CHECK(names.size() == 256 * 8);

    for (const std::string &id : std::vector<std::string>{"", "---", "Ünïcode", std::string(200, 'a'), "x:y.z/../..", "-a-"}) {
        std::string name = draDeviceName(DeviceKind::Passthrough, id);
        CHECK_MESSAGE(matchesDnsLabel(name), name);
        CHECK(name == draDeviceName(DeviceKind::Passthrough, id));
    }
    CHECK(draDeviceName(DeviceKind::Passthrough, std::string(200, 'a') + "1") !=
          draDeviceName(DeviceKind::Passthrough, std::string(200, 'a') + "2"));
}

TEST_CASE("a passthrough GPU publishes its ids, topology and bus id")
{
    json expected = json::parse(R"({
      "name": "pci-0000-65-00-0",
      "attributes": {
        "type": {"string": "passthrough"},
        "resourceName": {"string": "nvidia.com/TU104GL_TESLA_T4"},
        "productName": {"string": "TU104GL [Tesla T4]"},
        "vendorID": {"string": "0x10de"},
        "deviceID": {"string": "0x1eb8"},
        "iommuGroup": {"int": 12},
        "numaNode": {"int": 0},
        "resource.kubernetes.io/pciBusID": {"string": "0000:65:00.0"},
        "resource.kubernetes.io/pcieRoot": {"string": "pci0000:64"}
      }})");
    CHECK(deviceEntry(t4Passthrough(), kDriver) == expected);
    CHECK(sliceDevice(t4Passthrough(), kDriver).omitted.empty());
}

TEST_CASE("an mdev publishes its UUID, profile and parent, its parent's root, no bus id of its own")
{
    json expected = json::parse(R"({
      "name": "mdev-aa618089-8b16-4d01-a136-25a0f3c73123",
      "attributes": {
        "type": {"string": "mdev"},
        "resourceName": {"string": "nvidia.com/GRID_T4-1Q"},
        "productName": {"string": "TU104GL [Tesla T4]"},
        "vendorID": {"string": "0x10de"},
        "deviceID": {"string": "0x1eb8"},
        "profile": {"string": "GRID T4-1Q"},
        "iommuGroup": {"int": 140},
        "mdevUUID": {"string": "aa618089-8b16-4d01-a136-25a0f3c73123"},
        "parentPciBusID": {"string": "0000:65:00.0"},
        "resource.kubernetes.io/pcieRoot": {"string": "pci0000:64"}
      }})");
    CHECK(deviceEntry(t4Vgpu(), kDriver) == expected);
}

TEST_CASE("an SR-IOV vGPU VF publishes its own bus id, its profile and its PF, no mdev UUID")
{
    json expected = json::parse(R"({
      "name": "pci-0000-3b-00-4",
      "attributes": {
        "type": {"string": "sriov-vgpu"},
        "resourceName": {"string": "nvidia.com/NVIDIA_L40S-4Q"},
        "productName": {"string": "AD102GL [L40S]"},
        "vendorID": {"string": "0x10de"},
        "deviceID": {"string": "0x26b9"},
        "profile": {"string": "NVIDIA L40S-4Q"},
        "iommuGroup": {"int": 77},
        "numaNode": {"int": 1},
        "resource.kubernetes.io/pciBusID": {"string": "0000:3b:00.4"},
        "parentPciBusID": {"string": "0000:3b:00.0"},
        "resource.kubernetes.io/pcieRoot": {"string": "pci0000:3a"}
      }})");
    CHECK(deviceEntry(l40sVf(), kDriver) == expected);
}

TEST_CASE("values beyond the API's 64 characters: a long resource name is left out and said, a product is cut")
{
    DraDevice gpu = t4Passthrough();
    gpu.resource = "nvidia.com/" + std::string(60, 'A');
    gpu.device.product = std::string(60, 'p') + "   " + "\xC3\xA9" + "tail";
    SliceDevice slice = sliceDevice(gpu, kDriver);
    CHECK_FALSE(slice.entry["attributes"].contains("resourceName"));
    REQUIRE(slice.omitted.size() == 1);
    CHECK(slice.omitted[0].find("resourceName " + gpu.resource) != std::string::npos);
    // 60 p, 3 blanks, then a 2-byte é across the limit: cut before it and trimmed.
    CHECK(slice.entry["attributes"]["productName"]["string"] == std::string(60, 'p'));
    CHECK(slice.entry["attributes"].size() <= kMaxAttributesPerDevice);

    gpu.resource = "nvidia.com/" + std::string(53, 'A'); // exactly 64
    CHECK(sliceDevice(gpu, kDriver).entry["attributes"]["resourceName"]["string"] == gpu.resource);
}

TEST_CASE("unknown facts are left out: no product, ids, NUMA node or PCIe root")
{
    DraDevice gpu = t4Passthrough();
    gpu.device.product.clear();
    gpu.device.vendorId = gpu.device.deviceId = 0;
    gpu.device.numaNode = -1;
    gpu.device.pciePath = {"platform"};
    json attributes = deviceEntry(gpu, kDriver)["attributes"];
    for (const char *absent : {"productName", "vendorID", "deviceID", "numaNode", "resource.kubernetes.io/pcieRoot"})
        CHECK_MESSAGE(!attributes.contains(absent), absent);
    CHECK(attributes["iommuGroup"]["int"] == 12);
}

TEST_CASE("an unhealthy device is tainted NoSchedule with its reason as a label value")
{
    DraDevice gpu = t4Vgpu();
    gpu.device.healthy = false;
    gpu.device.healthReason = "no /dev/vfio/140";
    json entry = deviceEntry(gpu, kDriver);
    CHECK(entry["taints"] == json::parse(R"([{"key": "gpu-vm.example.com/unhealthy", "value": "no-dev-vfio-140",
                                             "effect": "NoSchedule"}])"));
    CHECK_FALSE(deviceEntry(t4Vgpu(), kDriver).contains("taints"));
}

TEST_CASE("a health reason becomes a valid, deterministic label value whatever its text")
{
    CHECK(labelValueOf("vfio node missing") == "vfio-node-missing");
    CHECK(labelValueOf("parent 0000:65:00.0: PCIe error recovery failed") ==
          "parent-0000-65-00-0-pcie-error-recovery-failed");
    CHECK(labelValueOf("  --::  ") == "unknown");
    CHECK(labelValueOf("") == "unknown");
    const std::string longA = "parent 0000:65:00.0 " + std::string(80, 'x') + " reason A";
    const std::string longB = "parent 0000:65:00.0 " + std::string(80, 'x') + " reason B";
    CHECK(labelValueOf(longA) == labelValueOf(longA));
    CHECK(labelValueOf(longA) != labelValueOf(longB));
    CHECK(labelValueOf(longA).size() == 63);
    for (const std::string &reason : {std::string("no /dev/vfio/12"), longA, std::string("ÄÖÜ: gone"),
                                     std::string("a") + std::string(70, ' ') + "b", std::string(63, '-') + "z",
                                     std::string(100, 'Q'), std::string("x\n\ty\"z'")}) {
        std::string value = labelValueOf(reason);
        CHECK_MESSAGE(matchesLabelValue(value), value);
        CHECK(isLabelValue(value));
    }
}

TEST_CASE("a pool is split into sorted slices of 128 devices")
{
    std::vector<json> slices = splitDevices(pool(300));
    REQUIRE(slices.size() == 3);
    CHECK(slices[0].size() == 128);
    CHECK(slices[1].size() == 128);
    CHECK(slices[2].size() == 44);
    CHECK(slices[0][0]["name"] == "pci-0000-00-00-0");
    CHECK(slices[1][0]["name"] == "pci-0080-00-00-0");
    CHECK(slices[2][43]["name"] == "pci-012b-00-00-0");
    CHECK(splitDevices(pool(128)).size() == 1);
    CHECK(splitDevices(pool(129)).size() == 2);
}

TEST_CASE("one tainted device anywhere in the pool makes every slice 64 devices at most")
{
    std::vector<json> slices = splitDevices(pool(130, 129));
    REQUIRE(slices.size() == 3);
    CHECK(slices[0].size() == 64);
    CHECK(slices[1].size() == 64);
    CHECK(slices[2].size() == 2);
    CHECK(splitDevices(pool(64, 0)).size() == 1);
    CHECK(splitDevices(pool(65, 0)).size() == 2);
}

TEST_CASE("an empty pool is one empty slice")
{
    std::vector<json> slices = splitDevices({});
    REQUIRE(slices.size() == 1);
    CHECK(slices[0] == json::array());
}

TEST_CASE("a slice is generated per index for driver and node, owned by the Node")
{
    json devices = json::array({deviceEntry(t4Passthrough(), kDriver)});
    json slice = sliceObject(kDriver, "node-a", "6f1c2a4e-0000-4000-8000-000000000001", "node-a", 3, 2, 1, devices);
    json expected = {
        {"apiVersion", "resource.k8s.io/v1"},
        {"kind", "ResourceSlice"},
        {"metadata",
         {{"generateName", "00001-gpu-vm.example.com-node-a-"},
          {"ownerReferences", json::array({json{{"apiVersion", "v1"},
                                                {"kind", "Node"},
                                                {"name", "node-a"},
                                                {"uid", "6f1c2a4e-0000-4000-8000-000000000001"},
                                                {"controller", true}}})}}},
        {"spec",
         {{"driver", kDriver},
          {"nodeName", "node-a"},
          {"pool", {{"name", "node-a"}, {"generation", 3}, {"resourceSliceCount", 2}}},
          {"devices", devices}}},
    };
    CHECK(slice == expected);
    CHECK(sliceGenerateName(kDriver, "node-a", 0x12345) == "12345-gpu-vm.example.com-node-a-");
    CHECK(sliceGenerateName(kDriver, "node-a", 0x123456) == "123456-gpu-vm.example.com-node-a-");
}

TEST_CASE("a long node name is cut so that the generated slice name is a DNS subdomain of 253 at most")
{
    for (std::size_t length : {200u, 240u, 241u, 242u, 250u, 253u}) {
        // A node name of dotted labels, so that some cuts land on a '.'.
        std::string node;
        while (node.size() < length)
            node += node.empty() ? "n" : ".n";
        node.resize(length);
        if (node.back() == '.')
            node.back() = 'x';
        std::string generateName = sliceGenerateName(kDriver, node, 7);
        CHECK(generateName.rfind("00007-gpu-vm.example.com-", 0) == 0);
        CHECK(generateName.back() == '-');
        std::string generated = generateName + "abcde"; // what the API server appends
        CHECK_MESSAGE(matchesDnsSubdomain(generated), generated);
    }
}
