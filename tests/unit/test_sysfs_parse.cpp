#include "base/strings.h"
#include "sysfs/sysfs_parse.h"

#include <doctest/doctest.h>

using namespace kvgpu;

TEST_CASE("PCI ids parse from sysfs text and reject everything else")
{
    CHECK(*parsePciId("0x10de\n") == 0x10de);
    CHECK(*parsePciId("0X1EB8") == 0x1eb8);
    CHECK(*parsePciId("  0xffff  ") == 0xffff);
    for (const char *bad : {"", "\n", "0x", "10de junk", "0x10000", "nvidia", "-0x1", "0x10de\n0x10de"}) {
        CAPTURE(bad);
        Result<std::uint16_t> r = parsePciId(bad);
        CHECK_FALSE(r.ok());
        CHECK(r.error().find("malformed PCI id") != std::string::npos);
    }
}

TEST_CASE("PCI class codes are 24 bits")
{
    CHECK(*parsePciClass("0x030200\n") == 0x030200);
    CHECK(*parsePciClass("0x068000") == 0x068000);
    CHECK_FALSE(parsePciClass("0x1000000").ok());
    CHECK_FALSE(parsePciClass("display").ok());
}

TEST_CASE("NUMA node: -1 is unknown, other negatives and junk are malformed")
{
    CHECK(*parseNumaNode("-1\n") == -1);
    CHECK(*parseNumaNode("0\n") == 0);
    CHECK(*parseNumaNode("3") == 3);
    CHECK_FALSE(parseNumaNode("-2").ok());
    CHECK_FALSE(parseNumaNode("").ok());
    CHECK_FALSE(parseNumaNode("1.5").ok());
    CHECK_FALSE(parseNumaNode("99999999999999999999").ok());
}

TEST_CASE("IOMMU group comes from the link's last component")
{
    CHECK(*parseIommuGroupLink("../../../../kernel/iommu_groups/12") == 12);
    CHECK(*parseIommuGroupLink("/sys/kernel/iommu_groups/0") == 0);
    CHECK_FALSE(parseIommuGroupLink("../../../kernel/iommu_groups/x1").ok());
    CHECK_FALSE(parseIommuGroupLink("../../../kernel/other/12").ok());
    CHECK_FALSE(parseIommuGroupLink("").ok());
}

TEST_CASE("group numbers are plain non-negative decimals")
{
    CHECK(parseGroupNumber("12") == 12);
    CHECK(parseGroupNumber("0") == 0);
    for (const char *bad : {"vfio", "devices", "-1", "12a", "", "99999999999"})
        CHECK_FALSE(parseGroupNumber(bad).has_value());
}

TEST_CASE("counts are non-negative decimals")
{
    CHECK(*parseCount("16\n") == 16);
    CHECK_FALSE(parseCount("-1").ok());
    CHECK_FALSE(parseCount("many").ok());
}

TEST_CASE("device links yield the PCIe path under /sys/devices")
{
    auto path = devicePathComponents("../../../devices/pci0000:64/0000:64:00.0/0000:65:00.0");
    REQUIRE(path.ok());
    CHECK(*path == std::vector<std::string>{"pci0000:64", "0000:64:00.0", "0000:65:00.0"});
    CHECK_FALSE(devicePathComponents("../../../bus/pci/0000:65:00.0").ok());
    CHECK_FALSE(devicePathComponents("../../../devices/").ok());
}

TEST_CASE("health file parsers")
{
    CHECK(parseAerTotal("Undefined 0\nDLP 1\nTOTAL_ERR_FATAL 4\n", "TOTAL_ERR_FATAL") == 4);
    CHECK(parseAerTotal("DLP 1\nSDES 2\n", "TOTAL_ERR_FATAL") == 3);
    CHECK_FALSE(parseAerTotal("", "TOTAL_ERR_FATAL").has_value());
    CHECK_FALSE(parseAerTotal("DLP lots\n", "TOTAL_ERR_FATAL").has_value());
    CHECK_FALSE(parseAerTotal("garbage\n", "TOTAL_ERR_FATAL").has_value());
    CHECK(parseLinkSpeed("16.0 GT/s PCIe\n") == 16.0);
    CHECK(parseLinkSpeed("2.5 GT/s") == 2.5);
    CHECK_FALSE(parseLinkSpeed("Unknown").has_value());
    CHECK_FALSE(parseLinkSpeed("").has_value());
}

TEST_CASE("string helpers")
{
    CHECK(trim("  a b \n") == "a b");
    CHECK(split("a,,b", ',') == std::vector<std::string>{"a", "", "b"});
    CHECK(join({"a", "b"}, ",") == "a,b");
    CHECK(baseName("../drivers/vfio-pci") == "vfio-pci");
    CHECK(baseName("vfio-pci/") == "vfio-pci");
    CHECK(quoteIfNeeded("plain") == "plain");
    CHECK(quoteIfNeeded("two words") == "\"two words\"");
    CHECK(quoteIfNeeded("a\"b c") == "\"a\\\"b c\"");
    CHECK(quoteIfNeeded("") == "\"\"");
    CHECK(*parseHex("0x0") == 0);
    CHECK_FALSE(parseDecimal("+1").has_value());
}
