#include "sysfs/egm.h"
#include "temp_tree.h"

#include <doctest/doctest.h>

using namespace kvgpu;
using kvgpu::test::TempTree;

namespace {
using Ids = std::vector<std::string>;

// A Grace node's sysfs and /dev side by side, with EGM regions in either layout.
struct GraceNode {
    TempTree sys, dev;

    void regionWithFile(const std::string &name, const std::string &gpuDevices, bool node = true)
    {
        sys.write("class/egm/" + name + "/gpu_devices", gpuDevices);
        sys.write("class/egm/" + name + "/egm_size", "0x1000000000\n");
        if (node)
            dev.write(name, "");
    }
    void regionWithLinks(const std::string &name, const Ids &gpus, bool node = true)
    {
        sys.write("class/egm/" + name + "/egm_size", "0x1000000000\n");
        for (const std::string &gpu : gpus)
            sys.link("class/egm/" + name + "/" + gpu, "../../../devices/pci0009:00/" + gpu);
        if (node)
            dev.write(name, "");
    }
    std::vector<EgmRegion> regions() { return readEgmRegions(SysfsTree(sys.root()), DevTree(dev.root())); }
};
} // namespace

TEST_CASE("gpu_devices lists a region's GPUs one per line or space-separated")
{
    CHECK(parseEgmGpuDevices("0009:01:00.0\n0019:01:00.0\n").gpus == Ids{"0009:01:00.0", "0019:01:00.0"});
    CHECK(parseEgmGpuDevices("0019:01:00.0 0009:01:00.0").gpus == Ids{"0009:01:00.0", "0019:01:00.0"});
    CHECK(parseEgmGpuDevices("0009:01:00.0\t 0009:01:00.0\n").gpus == Ids{"0009:01:00.0"});
    EgmMembership odd = parseEgmGpuDevices("0009:01:00.0 junk 0009:01:00.8\n");
    CHECK(odd.gpus == Ids{"0009:01:00.0"});
    CHECK(odd.rejected == Ids{"junk", "0009:01:00.8"});
    CHECK(parseEgmGpuDevices("").gpus.empty());
}

TEST_CASE("both sysfs layouts of a region are read: the gpu_devices file and one link per GPU")
{
    GraceNode grace;
    grace.regionWithFile("egm4", "0009:01:00.0\n0009:02:00.0\n");
    grace.regionWithLinks("egm5", {"0019:01:00.0", "0019:02:00.0"});
    std::vector<EgmRegion> regions = grace.regions();
    REQUIRE(regions.size() == 2);
    CHECK(regions[0].name == "egm4");
    CHECK(regions[0].gpus == Ids{"0009:01:00.0", "0009:02:00.0"});
    CHECK(regions[0].hasNode);
    CHECK(regions[0].problem.empty());
    CHECK(regions[1].name == "egm5");
    CHECK(regions[1].gpus == Ids{"0019:01:00.0", "0019:02:00.0"});
}

TEST_CASE("a region without its device node or without GPUs says so")
{
    GraceNode grace;
    grace.regionWithFile("egm4", "0009:01:00.0\n", false);
    grace.regionWithFile("egm5", "\n");
    std::vector<EgmRegion> regions = grace.regions();
    REQUIRE(regions.size() == 2);
    CHECK_FALSE(regions[0].hasNode);
    CHECK(regions[0].problem == "no " + grace.dev.path("egm4"));
    CHECK(regions[1].problem.find("lists no GPUs") != std::string::npos);
    CHECK(readEgmRegions(SysfsTree(grace.sys.path("nothing")), DevTree(grace.dev.root())).empty());
}

TEST_CASE("a request gets a region's node only when it holds every GPU of that region")
{
    GraceNode grace;
    grace.regionWithFile("egm4", "0009:01:00.0 0009:02:00.0");
    grace.regionWithLinks("egm5", {"0019:01:00.0"});
    grace.regionWithFile("egm6", "0029:01:00.0", false);
    std::vector<EgmRegion> regions = grace.regions();

    CHECK(egmRegionsHeldBy(regions, {"0009:02:00.0", "0009:01:00.0"}) == Ids{"egm4"});
    CHECK(egmRegionsHeldBy(regions, {"0009:01:00.0"}).empty());
    CHECK(egmRegionsHeldBy(regions, {"0000:41:00.4"}).empty());
    CHECK(egmRegionsHeldBy(regions, {"0009:01:00.0", "0009:02:00.0", "0019:01:00.0"}) == Ids{"egm4", "egm5"});
    CHECK(egmRegionsHeldBy(regions, {"0019:01:00.0", "0029:01:00.0"}) == Ids{"egm5"}); // egm6 has no node
    CHECK(egmRegionsHeldBy(regions, {"0009:01:00.0", "0009:02:00.0 "}) == Ids{"egm4"});
    grace.regionWithFile("egm7", "0039:0A:00.0\n");
    CHECK(egmRegionsHeldBy(grace.regions(), {"0039:0a:00.0"}) == Ids{"egm7"}); // case does not matter
}
