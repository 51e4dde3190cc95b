#include "naming/resource_naming.h"

#include <doctest/doctest.h>

using namespace kvgpu;

TEST_CASE("pci.ids names are sanitised exactly as the original plugin did")
{
    struct Row {
        const char *pciIds;
        const char *expected;
    };
    // Real entries of vendor 10de in Debian's pci.ids.
    for (Row row : {Row{"TU104GL [Tesla T4]", "TU104GL_TESLA_T4"},
                    Row{"GA100 [A100 PCIe 40GB]", "GA100_A100_PCIE_40GB"},
                    Row{"GA100 [A100-SXM-64GB]", "GA100_A100SXM64GB"},
                    Row{"GV100GL [Tesla V100 PCIe 16GB]", "GV100GL_TESLA_V100_PCIE_16GB"},
                    Row{"AD104GL [L4]", "AD104GL_L4"},
                    Row{"GA102GL [A40]", "GA102GL_A40"},
                    Row{"NF200 PCIe 2.0 switch", "NF200_PCIE_2_0_SWITCH"},
                    Row{"  GK210GL [Tesla K80]\n", "GK210GL_TESLA_K80"},
                    Row{"GM204GL [Tesla M60]", "GM204GL_TESLA_M60"},
                    Row{"GA104 [RTX A4500 Embedded GPU ]", "GA104_RTX_A4500_EMBEDDED_GPU_"},
                    Row{"TU102  [GeForce\tRTX 2080 Ti] (rev a1)", "TU102_GEFORCE_RTX_2080_TI_REV_A1"}}) {
        CAPTURE(row.pciIds);
        CHECK(sanitizePciDeviceName(row.pciIds) == row.expected);
    }
}

TEST_CASE("ids whose names coincide produce the same name (and so share one resource)")
{
    // 10de:20b1 and 10de:20f1 are both "GA100 [A100 PCIe 40GB]".
    CHECK(sanitizePciDeviceName("GA100 [A100 PCIe 40GB]") == sanitizePciDeviceName("GA100 [A100 PCIe 40GB] "));
    CHECK(sanitizePciDeviceName("NV5 [Riva TNT2]") == "NV5_RIVA_TNT2");
}

TEST_CASE("unknown device ids are named by lowercase hex")
{
    CHECK(hexDeviceIdName(0x2235) == "2235");
    CHECK(hexDeviceIdName(0x1EB8) == "1eb8");
    CHECK(hexDeviceIdName(0x00ab) == "00ab");
}

TEST_CASE("vGPU type names keep their case and lose their whitespace runs")
{
    CHECK(sanitizeVgpuTypeName("GRID T4-1Q\n") == "GRID_T4-1Q");
    CHECK(sanitizeVgpuTypeName("NVIDIA  A100-4C") == "NVIDIA_A100-4C");
    CHECK(sanitizeVgpuTypeName("GRID M10-2Q") == "GRID_M10-2Q");
}

TEST_CASE("names the kubelet would refuse are repaired deterministically")
{
    CHECK(isValidResourceNamePart("TU104GL_TESLA_T4"));
    CHECK(isValidResourceNamePart("GRID_T4-1Q"));
    CHECK_FALSE(isValidResourceNamePart("GA104_RTX_A4500_EMBEDDED_GPU_"));
    CHECK_FALSE(isValidResourceNamePart(""));
    CHECK_FALSE(isValidResourceNamePart(std::string(64, 'A')));

    NamePart valid = repairResourceNamePart("TU104GL_TESLA_T4", "1eb8");
    CHECK(valid.name == "TU104GL_TESLA_T4");
    CHECK(valid.repair.empty());

    NamePart trailing = repairResourceNamePart("GA104_RTX_A4500_EMBEDDED_GPU_", "24fa");
    CHECK(trailing.name == "GA104_RTX_A4500_EMBEDDED_GPU");
    CHECK(trailing.repair.find("not a valid resource name") != std::string::npos);

    std::string longName = "NF200_PCIE_2_0_SWITCH_FOR_QUADRO_PLEX_S4___TESLA_S870___TESLA_S1070___TESLA_S2050";
    NamePart cut = repairResourceNamePart(longName, "05be");
    CHECK(cut.name.size() <= 63);
    CHECK(isValidResourceNamePart(cut.name));
    CHECK(cut.name == "NF200_PCIE_2_0_SWITCH_FOR_QUADRO_PLEX_S4___TESLA_S870___TESLA_S");
    CHECK(repairResourceNamePart(longName, "05be").name == cut.name); // deterministic

    NamePart odd = repairResourceNamePart("GRID_T4-1Q_(beta)/x", "nvidia-9");
    CHECK(odd.name == "GRID_T4-1Q__beta__x");

    NamePart nothing = repairResourceNamePart("___", "nvidia-9");
    CHECK(nothing.name == "nvidia-9");
}

TEST_CASE("KubeVirt env keys: prefix, upper case, '/' and '.' become '_', '-' kept")
{
    CHECK(envKey(DeviceKind::Passthrough, "nvidia.com/TU104GL_TESLA_T4") == "PCI_RESOURCE_NVIDIA_COM_TU104GL_TESLA_T4");
    CHECK(envKey(DeviceKind::Vgpu, "nvidia.com/GRID_T4-1Q") == "MDEV_PCI_RESOURCE_NVIDIA_COM_GRID_T4-1Q");
    CHECK(envKey(DeviceKind::Passthrough, "nvidia.com/2235") == "PCI_RESOURCE_NVIDIA_COM_2235");
    CHECK(envKey(DeviceKind::Vgpu, "nvidia.com/nvidia-222") == "MDEV_PCI_RESOURCE_NVIDIA_COM_NVIDIA-222");
}

TEST_CASE("resource names and socket names")
{
    CHECK(resourceName("GRID_T4-1Q") == "nvidia.com/GRID_T4-1Q");
    CHECK(socketFileName("nvidia.com/GRID_T4-1Q") == "kvgpu-GRID_T4-1Q.sock");
    // Not KubeVirt's own prefix, so the two never collide.
    CHECK(socketFileName("nvidia.com/TU104GL_TESLA_T4").rfind("kubevirt-", 0) == std::string::npos);
}
