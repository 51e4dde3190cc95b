#include "naming/pci_names.h"
#include "temp_tree.h"

#include <doctest/doctest.h>

using namespace kvgpu;
using kvgpu::test::TempTree;

TEST_CASE("names come from the given pci.ids, scoped to the vendor")
{
    TempTree dir;
    dir.write("pci.ids", "# test database\n"
                         "10de  NVIDIA Corporation\n"
                         "\t1eb8  TU104GL [Tesla T4]\n"
                         "\t\t10de 12a2  T4 16GB\n"
                         "\t20f1  GA100 [A100 PCIe 40GB]\n"
                         "8086  Intel Corporation\n"
                         "\t2235  Some Intel device\n");
    PciIdsDatabase db(dir.path("pci.ids"), {0x10de, 0x8086});
    CHECK(db.deviceName(0x10de, 0x1eb8) == "TU104GL [Tesla T4]");
    CHECK(db.deviceName(0x10de, 0x20f1) == "GA100 [A100 PCIe 40GB]");
    // An id only another vendor has must not match NVIDIA's lookup.
    CHECK_FALSE(db.deviceName(0x10de, 0x2235).has_value());
    CHECK(db.deviceName(0x8086, 0x2235) == "Some Intel device");
    // Cached answers are the same.
    CHECK(db.deviceName(0x10de, 0x1eb8) == "TU104GL [Tesla T4]");
}

TEST_CASE("only the vendors asked for are kept")
{
    TempTree dir;
    dir.write("pci.ids", "10de  NVIDIA Corporation\n\t1eb8  TU104GL [Tesla T4]\n"
                         "8086  Intel Corporation\n\t2235  Some Intel device\n");
    PciIdsDatabase db(dir.path("pci.ids"));
    CHECK(db.deviceName(0x10de, 0x1eb8) == "TU104GL [Tesla T4]");
    CHECK_FALSE(db.deviceName(0x8086, 0x2235).has_value());
}

TEST_CASE("pci.ids lines: devices of the wanted vendor, everything else skipped")
{
    PciIdsNames parsed = parsePciIds("# comment\n"
                                     "\n"
                                     "10de  NVIDIA Corporation\r\n"
                                     "\t1eb8  TU104GL [Tesla T4]  \r\n"
                                     "\t\t10de 12a2  T4 16GB\n"
                                     "\t1eb8  a second entry for the same id\n"
                                     "\tzz  not an id\n"
                                     "\t20f1  GA100 [A100 PCIe 40GB]\n"
                                     "garbage at the top level\n"
                                     "\t2235  after garbage: belongs to no vendor\n"
                                     "C 03  Display controller\n"
                                     "\t02  3D controller\n",
                                     {0x10de});
    CHECK(parsed.names.size() == 2);
    CHECK(parsed.names.at(0x10de1eb8) == "TU104GL [Tesla T4]"); // the first entry wins, trimmed
    CHECK(parsed.names.at(0x10de20f1) == "GA100 [A100 PCIe 40GB]");
    CHECK(parsed.malformedLines == 2); // "\tzz" and the top-level garbage
}

TEST_CASE("a missing database only costs the names")
{
    PciIdsDatabase db("/nonexistent/pci.ids");
    CHECK_FALSE(db.deviceName(0x10de, 0x1eb8).has_value());
}

TEST_CASE("a malformed database is logged and lookups carry on without names")
{
    TempTree dir;
    dir.write("pci.ids", "10de  NVIDIA Corporation\n\t\t\t\tgarbage\nzz\n");
    PciIdsDatabase db(dir.path("pci.ids"));
    CHECK_FALSE(db.deviceName(0x10de, 0x1eb8).has_value());
    CHECK_FALSE(db.deviceName(0x10de, 0x20f1).has_value());
}

TEST_CASE("Debian's pci.ids names the T4 as the original plugin saw it")
{
    PciIdsDatabase db("/usr/share/misc/pci.ids");
    auto name = db.deviceName(0x10de, 0x1eb8);
    if (!name)
        return; // pci.ids not installed: covered by the tests above
    CHECK(*name == "TU104GL [Tesla T4]");
}
