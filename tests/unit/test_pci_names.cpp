#include "device/pci_names.h"
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
    PciIdsDatabase db(dir.path("pci.ids"));
    CHECK(db.deviceName(0x10de, 0x1eb8) == "TU104GL [Tesla T4]");
    CHECK(db.deviceName(0x10de, 0x20f1) == "GA100 [A100 PCIe 40GB]");
    // An id only another vendor has must not match NVIDIA's lookup.
    CHECK_FALSE(db.deviceName(0x10de, 0x2235).has_value());
    CHECK(db.deviceName(0x8086, 0x2235) == "Some Intel device");
    // Cached answers are the same.
    CHECK(db.deviceName(0x10de, 0x1eb8) == "TU104GL [Tesla T4]");
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
