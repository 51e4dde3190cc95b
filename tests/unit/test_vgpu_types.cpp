#include "sysfs/vgpu_types.h"

#include <doctest/doctest.h>

using namespace kvgpu;

TEST_CASE("a VF's catalog lists its creatable types under the driver's header")
{
    std::vector<VgpuType> types = parseCreatableVgpuTypes("ID    : vGPU Name\n"
                                                          "1428  : NVIDIA H200X-141C\n"
                                                          "1414  : NVIDIA H200X-1-18C\n");
    CHECK(types == std::vector<VgpuType>{{1428, "NVIDIA H200X-141C"}, {1414, "NVIDIA H200X-1-18C"}});
}

TEST_CASE("a fully used card shows the header only, or nothing")
{
    CHECK(parseCreatableVgpuTypes("ID    : vGPU Name\n").empty());
    CHECK(parseCreatableVgpuTypes("").empty());
}

TEST_CASE("the catalog is read leniently: blank lines, garbage, no header, no colon")
{
    std::vector<VgpuType> types = parseCreatableVgpuTypes("\n"
                                                          "  1145  :  NVIDIA L40S-1B  \r\n"
                                                          "garbage line\n"
                                                          ": NVIDIA orphan\n"
                                                          "1146 NVIDIA L40S-2B\n"
                                                          "1147x NVIDIA L40S-3B\n"
                                                          "1148  :   \n"
                                                          "0     : NVIDIA none\n"
                                                          "99999999999 : NVIDIA too big\n"
                                                          "1145  : NVIDIA L40S-1B duplicate\n"
                                                          "\t1149\t:\tNVIDIA L40S-4B");
    CHECK(types == std::vector<VgpuType>{{1145, "NVIDIA L40S-1B"}, {1146, "NVIDIA L40S-2B"}, {1149, "NVIDIA L40S-4B"}});
}

TEST_CASE("current_vgpu_type is one decimal id, 0 meaning no profile")
{
    CHECK(*parseCurrentVgpuType("1414\n") == 1414u);
    CHECK(*parseCurrentVgpuType("0\n") == 0u);
    CHECK(*parseCurrentVgpuType("4294967295") == 4294967295u);
    for (const char *bad : {"", "\n", "-1", "0x10", "1414 1415", "4294967296", "none"}) {
        CAPTURE(bad);
        Result<std::uint32_t> parsed = parseCurrentVgpuType(bad);
        REQUIRE_FALSE(parsed.ok());
        CHECK(parsed.error().find("malformed vGPU type id") == 0);
    }
}
