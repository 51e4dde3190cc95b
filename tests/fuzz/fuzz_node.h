// A small fixed GPU node in temporary sysfs and /dev trees, built once per
// fuzzing process: the targets that fuzz requests (Allocate, uevents) run
// them against it. The same shapes as the end-to-end tests' node: two GPUs
// sharing a name, a T4 with its audio function in one group, NUMA -1, a GPU
// bound to nvidia carrying vGPUs of two types, a GPU without a group node, a
// foreign device, a GPU bound to nvidia with no vGPUs.
#pragma once

#include "index/device_index.h"
#include "sysfs/node_reader.h"
#include "fuzz_support.h"
#include "temp_tree.h" // FakePci, devicePath

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace kvgpu::fuzz {

// A directory tree the fuzz targets change between events, in fuzz::scratchDir
// (tmpfs) rather than TempTree's /tmp: the uevent target rewrites links and
// files thousands of times a second.
class ScratchTree : public test::TempTree {
public:
    explicit ScratchTree(const std::string &name) : TempTree(scratchDir(name)) {}
};

struct FixedNode {
    ScratchTree sys{"kvgpu-fuzz-sys"}, dev{"kvgpu-fuzz-dev"};
    std::vector<std::string> addresses; // every PCI function, foreign ones included
    std::vector<std::string> uuids;     // every mdev
    std::vector<int> groups;            // every IOMMU group, with or without a /dev/vfio node
    std::map<std::string, std::string> functionDirs; // address -> devices/... directory

    FixedNode()
    {
        using test::FakePci;
        std::vector<FakePci> functions = {
            {.address = "0000:3b:00.0", .device = 0x20b1, .group = 30, .numa = 0, .parents = "pci0000:3a/0000:3a:00.0"},
            {.address = "0000:3c:00.0", .device = 0x20f1, .group = 31, .numa = 1, .parents = "pci0000:3a/0000:3a:01.0"},
            {.address = "0000:65:00.0", .device = 0x1eb8, .group = 12, .numa = -1},
            {.address = "0000:65:00.1", .device = 0x10f8, .classCode = 0x040300, .group = 12, .numa = -1},
            {.address = "0000:66:00.0", .device = 0x2236, .group = 13, .numa = 0},
            {.address = "0000:67:00.0", .device = 0x1eb8, .driver = "nvidia", .group = 14},
            {.address = "0000:68:00.0", .device = 0x1eb8, .group = 15, .numa = 0}, // no /dev/vfio/15
            {.address = "0000:00:1f.3", .vendor = 0x8086, .device = 0xa348, .classCode = 0x040300,
             .driver = "snd_hda_intel", .group = 5, .parents = "pci0000:00"},
        };
        FakePci parent{.address = "0000:b1:00.0", .device = 0x1eb8, .driver = "nvidia", .group = 40, .numa = 1,
                       .parents = "pci0000:b0"};
        functions.push_back(parent);
        for (const FakePci &f : functions) {
            test::addPci(sys, f);
            addresses.push_back(f.address);
            functionDirs[f.address] = devicePath(f);
            groups.push_back(*f.group);
        }
        struct {
            const char *uuid, *type, *name;
            int group;
        } mdevs[] = {
            {"aa618089-8b16-4d01-a136-25a0f3c73123", "nvidia-222", "GRID T4-1Q", 101},
            {"bb618089-8b16-4d01-a136-25a0f3c73123", "nvidia-222", "GRID T4-1Q", 102},
            {"cc618089-8b16-4d01-a136-25a0f3c73123", "nvidia-223", "GRID T4-2Q", 103},
        };
        for (const auto &m : mdevs) {
            test::addMdev(sys, parent, m.uuid, m.type, m.name, m.group);
            uuids.push_back(m.uuid);
            groups.push_back(m.group);
        }
        sys.mkdir("devices/pci0000:64/0000:64:00.0/0000:65:00.0/vfio-dev/vfio3");
        for (const char *node : {"vfio", "30", "31", "12", "13", "14", "40", "101", "102", "103"})
            dev.write(std::string("vfio/") + node, "");
        dev.write("iommu", "");
    }

    SysfsTree sysfs() const { return SysfsTree(sys.root()); }
    DevTree devTree() const { return DevTree(dev.root()); }
};

} // namespace kvgpu::fuzz
