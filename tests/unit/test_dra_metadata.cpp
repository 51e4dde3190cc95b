// KEP-5304 device metadata as KubeVirt's virt-launcher reads it: the file's
// content for a template and a direct claim, mdev and PCI attributes, and
// where the file lies on the host and in the container.
#include "dra/device_metadata.h"

#include "dra/device_names.h"

#include <doctest/doctest.h>

#include <sstream>

using namespace kvgpu;
using namespace kvgpu::dra;
using nlohmann::json;

namespace {

const std::string kDriver = "gpu-vm.example.com";
const std::string kDataDir = "/var/lib/kubelet/plugins/gpu-vm.example.com";
const std::string kUuid = "aa618089-8b16-4d01-a136-25a0f3c73123";

DraDevice vgpu()
{
    return DraDevice{"nvidia.com/GRID_T4-1Q", DeviceKind::Vgpu,
                     AdvertisedDevice{.id = "AA618089-8B16-4D01-A136-25A0F3C73123", .iommuGroup = 140,
                                      .profile = "GRID T4-1Q", .parent = "0000:65:00.0"}};
}
DraDevice gpu(const std::string &address)
{
    return DraDevice{"nvidia.com/TU104GL_TESLA_T4", DeviceKind::Passthrough,
                     AdvertisedDevice{.id = address, .iommuGroup = 12}};
}
DraDevice vf()
{
    return DraDevice{"nvidia.com/NVIDIA_L40S-4Q", DeviceKind::SriovVgpu,
                     AdvertisedDevice{.id = "0000:3b:00.4", .iommuGroup = 77, .profile = "NVIDIA L40S-4Q",
                                      .parent = "0000:3b:00.0"}};
}

std::map<std::string, DraDevice> node()
{
    std::map<std::string, DraDevice> devices;
    for (const DraDevice &d : {vgpu(), gpu("0000:65:00.0"), gpu("0000:66:00.0"), vf()})
        devices.emplace(draDeviceName(d), d);
    return devices;
}

AllocatedClaim templateClaim()
{
    AllocatedClaim claim{.uid = "0b6a0c43-4a6f-4b8e-9c61-2f4d3c1a9e77",
                         .name = "virt-launcher-vm1-x7k2q-gpu-claim-8pq4n",
                         .ns = "vms",
                         .generation = 1,
                         .podClaimName = "gpu-claim"};
    claim.results = {{"vgpu", "vgpu", "node-a", "mdev-" + kUuid, false}};
    return claim;
}

AllocatedClaim directClaim()
{
    AllocatedClaim claim{.uid = "5d0c7c1e-1111-4222-8333-444455556666", .name = "gpus", .ns = "vms"};
    claim.results = {{"passthrough/t4", "passthrough", "node-a", "pci-0000-65-00-0", false},
                     {"passthrough/t4", "passthrough", "node-a", "pci-0000-66-00-0", false},
                     {"vf", "vf", "node-a", "pci-0000-3b-00-4", false}};
    return claim;
}

// The file's lines, each parsed: one object per version.
std::vector<json> documents(const std::string &content)
{
    std::vector<json> out;
    std::istringstream lines(content);
    for (std::string line; std::getline(lines, line);)
        out.push_back(json::parse(line));
    return out;
}

} // namespace

TEST_CASE("an mdev is described by its UUID only, a PCI function or VF by its bus id only")
{
    CHECK(metadataAttributes(vgpu()) == json::parse(R"({"mdevUUID": {"string": ")" + kUuid + R"("}})"));
    CHECK(metadataAttributes(gpu("0000:65:00.0")) ==
          json::parse(R"({"resource.kubernetes.io/pciBusID": {"string": "0000:65:00.0"}})"));
    CHECK(metadataAttributes(vf()) ==
          json::parse(R"({"resource.kubernetes.io/pciBusID": {"string": "0000:3b:00.4"}})"));
    CHECK(metadataAttributes(gpu("0000:B1:00.0")) ==
          json::parse(R"({"resource.kubernetes.io/pciBusID": {"string": "0000:b1:00.0"}})"));
}

TEST_CASE("a template claim's metadata names the pod-local claim and lies under resourceclaimtemplates")
{
    Result<std::vector<RequestMetadata>> metadata = claimMetadata(kDriver, kDataDir, templateClaim(), node());
    REQUIRE_MESSAGE(metadata.ok(), metadata.error());
    REQUIRE(metadata->size() == 1);
    const RequestMetadata &m = metadata->front();
    CHECK(m.baseRequest == "vgpu");
    CHECK(m.hostPath == "/var/lib/kubelet/plugins/gpu-vm.example.com/dra-device-metadata/"
                        "vms_virt-launcher-vm1-x7k2q-gpu-claim-8pq4n/vgpu/metadata.json");
    CHECK(m.containerPath == "/var/run/kubernetes.io/dra-device-attributes/resourceclaimtemplates/gpu-claim/vgpu/"
                             "gpu-vm.example.com-metadata.json");

    REQUIRE(m.content.back() == '\n');
    std::vector<json> docs = documents(m.content);
    REQUIRE(docs.size() == 1);
    CHECK(docs[0] == json::parse(R"({
      "apiVersion": "metadata.resource.k8s.io/v1alpha1", "kind": "DeviceMetadata",
      "metadata": {"name": "virt-launcher-vm1-x7k2q-gpu-claim-8pq4n", "namespace": "vms",
                   "uid": "0b6a0c43-4a6f-4b8e-9c61-2f4d3c1a9e77", "generation": 1},
      "podClaimName": "gpu-claim",
      "requests": [{"name": "vgpu", "devices": [{"driver": "gpu-vm.example.com", "pool": "node-a",
        "name": "mdev-aa618089-8b16-4d01-a136-25a0f3c73123",
        "attributes": {"mdevUUID": {"string": "aa618089-8b16-4d01-a136-25a0f3c73123"}}}]}]})"));
}

TEST_CASE("a direct claim's metadata has no pod-claim name, lies under resourceclaims, one file per base request")
{
    Result<std::vector<RequestMetadata>> metadata = claimMetadata(kDriver, kDataDir, directClaim(), node());
    REQUIRE_MESSAGE(metadata.ok(), metadata.error());
    REQUIRE(metadata->size() == 2);
    const RequestMetadata &passthrough = (*metadata)[0];
    const RequestMetadata &sriov = (*metadata)[1];
    CHECK(passthrough.baseRequest == "passthrough");
    CHECK(sriov.baseRequest == "vf");
    CHECK(passthrough.containerPath == "/var/run/kubernetes.io/dra-device-attributes/resourceclaims/gpus/passthrough/"
                                       "gpu-vm.example.com-metadata.json");
    CHECK(passthrough.hostPath == kDataDir + "/dra-device-metadata/vms_gpus/passthrough/metadata.json");
    CHECK(metadataClaimDir(kDataDir, "vms", "gpus") == kDataDir + "/dra-device-metadata/vms_gpus");

    json doc = documents(passthrough.content).at(0);
    CHECK_FALSE(doc.contains("podClaimName"));
    CHECK_FALSE(doc["metadata"].contains("generation"));
    // The subrequest's name is kept as allocated; both devices are in it.
    REQUIRE(doc["requests"].size() == 1);
    CHECK(doc["requests"][0]["name"] == "passthrough/t4");
    REQUIRE(doc["requests"][0]["devices"].size() == 2);
    CHECK(doc["requests"][0]["devices"][1]["attributes"] ==
          json::parse(R"({"resource.kubernetes.io/pciBusID": {"string": "0000:66:00.0"}})"));

    json vfDoc = documents(sriov.content).at(0);
    REQUIRE(vfDoc["requests"].size() == 1);
    REQUIRE(vfDoc["requests"][0]["devices"].size() == 1);
    CHECK(vfDoc["requests"][0]["devices"][0] ==
          json::parse(R"({"driver": "gpu-vm.example.com", "pool": "node-a", "name": "pci-0000-3b-00-4",
                         "attributes": {"resource.kubernetes.io/pciBusID": {"string": "0000:3b:00.4"}}})"));
}

TEST_CASE("each base request gets a CDI spec that mounts its file read-only, and the id to hand out")
{
    Result<std::vector<RequestMetadata>> metadata = claimMetadata(kDriver, kDataDir, templateClaim(), node());
    REQUIRE_MESSAGE(metadata.ok(), metadata.error());
    const RequestMetadata &m = metadata->front();
    CHECK(m.specFileName == "gpu-vm.example.com_metadata_0b6a0c43-4a6f-4b8e-9c61-2f4d3c1a9e77_vgpu.json");
    CHECK(m.cdiId == "gpu-vm.example.com/metadata=0b6a0c43-4a6f-4b8e-9c61-2f4d3c1a9e77_vgpu");
    json expected = {
        {"cdiVersion", "0.5.0"},
        {"kind", "gpu-vm.example.com/metadata"},
        {"devices",
         json::array({json{{"name", "0b6a0c43-4a6f-4b8e-9c61-2f4d3c1a9e77_vgpu"},
                           {"containerEdits",
                            {{"mounts", json::array({json{{"hostPath", m.hostPath},
                                                          {"containerPath", m.containerPath},
                                                          {"options", json::array({"ro", "bind"})}}})}}}}})},
    };
    CHECK(m.spec == expected);
}

TEST_CASE("a result naming a device this node does not have is an error naming it")
{
    AllocatedClaim claim = templateClaim();
    claim.results.push_back({"vgpu", "vgpu", "node-a", "pci-0000-99-00-0", false});
    Result<std::vector<RequestMetadata>> metadata = claimMetadata(kDriver, kDataDir, claim, node());
    REQUIRE_FALSE(metadata.ok());
    CHECK_MESSAGE(metadata.error().find("device pci-0000-99-00-0 of request vgpu is not on this node") !=
                      std::string::npos,
                  metadata.error());
}

TEST_CASE("a claim with none of our devices has no metadata")
{
    AllocatedClaim claim = templateClaim();
    claim.results.clear();
    Result<std::vector<RequestMetadata>> metadata = claimMetadata(kDriver, kDataDir, claim, node());
    REQUIRE(metadata.ok());
    CHECK(metadata->empty());
}
