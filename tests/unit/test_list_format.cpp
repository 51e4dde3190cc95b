#include "app/list_command.h"

#include <doctest/doctest.h>

using namespace kvgpu;

namespace {
Inventory sample()
{
    Inventory inv;
    inv.rows.push_back(DeviceRow{.id = "0000:65:00.0", .kind = "pci", .ids = "10de:1eb8", .model = "TU104GL [Tesla T4]",
                                 .driver = "vfio-pci", .deviceClass = "3D controller", .iommuGroup = 12, .numaNode = 0,
                                 .resource = "nvidia.com/TU104GL_TESLA_T4", .health = "Healthy"});
    inv.rows.push_back(DeviceRow{.id = "0000:65:00.1", .kind = "pci", .ids = "10de:10f8", .driver = "vfio-pci",
                                 .deviceClass = "audio", .iommuGroup = 12, .numaNode = -1,
                                 .reason = "audio function: travels with IOMMU group 12"});
    inv.resources["nvidia.com/TU104GL_TESLA_T4"] =
        Resource{"nvidia.com/TU104GL_TESLA_T4", DeviceKind::Passthrough, {AdvertisedDevice{.id = "0000:65:00.0"}}};
    return inv;
}
} // namespace

TEST_CASE("the table shows every device with its resource or why it is not advertised")
{
    std::string table = formatDeviceTable(sample());
    CHECK(table.rfind("DEVICE", 0) == 0);
    CHECK(table.find("0000:65:00.0  10de:1eb8  TU104GL [Tesla T4]  vfio-pci  3D controller  12     0     "
                     "nvidia.com/TU104GL_TESLA_T4 Healthy\n") != std::string::npos);
    CHECK(table.find("not advertised: audio function: travels with IOMMU group 12") != std::string::npos);
    CHECK(formatDeviceTable(Inventory{}).find("no NVIDIA PCI functions") != std::string::npos);
}

TEST_CASE("JSON output carries the same facts, with nulls for unknowns")
{
    std::string json = formatDeviceJson(sample(), {});
    CHECK(json.find("\"id\": \"0000:65:00.0\"") != std::string::npos);
    CHECK(json.find("\"resource\": \"nvidia.com/TU104GL_TESLA_T4\", \"health\": \"Healthy\"") != std::string::npos);
    CHECK(json.find("\"numaNode\": null, \"resource\": null") != std::string::npos);
    CHECK(json.find("\"envKey\": \"PCI_RESOURCE_NVIDIA_COM_TU104GL_TESLA_T4\"") != std::string::npos);
    CHECK(formatDeviceJson(Inventory{}, {}) ==
          "{\n  \"devices\": [],\n  \"resources\": [],\n  \"egmRegions\": []\n}\n");
}

TEST_CASE("JSON output shows each Grace EGM region with its GPUs, as the table does")
{
    const std::vector<EgmRegion> regions = {
        EgmRegion{.name = "egm4", .gpus = {"0009:01:00.0", "0009:02:00.0"}, .hasNode = true},
        EgmRegion{.name = "egm5", .gpus = {"0019:01:00.0"}, .hasNode = false,
                  .problem = "gpu_devices: \"junk\" is not a PCI address"},
    };
    std::string json = formatDeviceJson(sample(), regions);
    CHECK_MESSAGE(json.find("\"egmRegions\": [\n    {\"name\": \"egm4\", \"gpus\": [\"0009:01:00.0\", \"0009:02:00.0\"], "
                            "\"node\": \"/dev/egm4\", \"problem\": null},\n") != std::string::npos,
                  json);
    CHECK_MESSAGE(json.find("{\"name\": \"egm5\", \"gpus\": [\"0019:01:00.0\"], \"node\": null, "
                            "\"problem\": \"gpu_devices: \\\"junk\\\" is not a PCI address\"}\n  ]\n}\n") != std::string::npos,
                  json);
    // The devices and resources are as without regions.
    CHECK(json.find("\"envKey\": \"PCI_RESOURCE_NVIDIA_COM_TU104GL_TESLA_T4\"") != std::string::npos);
}
