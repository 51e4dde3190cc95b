// A throwaway directory tree for unit tests of the sysfs readers: files,
// symlinks and directories under a fresh /tmp directory, removed on
// destruction. Also builds the sysfs shape of a PCI function or mdev in one call.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include <fmt/format.h>
#include <stdlib.h>

namespace kvgpu::test {

class TempTree {
public:
    TempTree()
    {
        char pattern[] = "/tmp/kvgpu-unit-XXXXXX";
        root_ = ::mkdtemp(pattern);
    }
    // A tree at a chosen place (emptied first), e.g. on tmpfs for the fuzzers.
    explicit TempTree(std::string root) : root_(std::move(root))
    {
        std::filesystem::remove_all(root_);
        std::filesystem::create_directories(root_);
    }
    ~TempTree() { std::filesystem::remove_all(root_); }
    TempTree(const TempTree &) = delete;
    TempTree &operator=(const TempTree &) = delete;

    const std::string &root() const { return root_; }
    std::string path(const std::string &relative) const { return root_ + "/" + relative; }

    void write(const std::string &relative, const std::string &content)
    {
        std::filesystem::path p = path(relative);
        std::filesystem::create_directories(p.parent_path());
        std::ofstream(p, std::ios::binary) << content;
    }
    void mkdir(const std::string &relative) { std::filesystem::create_directories(path(relative)); }
    void link(const std::string &relative, const std::string &target)
    {
        std::filesystem::path p = path(relative);
        std::filesystem::create_directories(p.parent_path());
        std::filesystem::remove(p);
        std::filesystem::create_symlink(target, p);
    }
    void remove(const std::string &relative) { std::filesystem::remove_all(path(relative)); }

private:
    std::string root_;
};

// A PCI function in sysfs shape: devices/<parents>/<address> with its bus link.
struct FakePci {
    std::string address;
    std::uint16_t vendor = 0x10de;
    std::uint16_t device = 0x1eb8;
    std::uint32_t classCode = 0x030200;
    std::string driver = "vfio-pci"; // "" = unbound
    std::optional<int> group = 12;
    std::optional<int> numa = 0;
    std::string parents = "pci0000:64/0000:64:00.0";
};

inline std::string devicePath(const FakePci &f) { return fmt::format("devices/{}/{}", f.parents, f.address); }

inline void addPci(TempTree &tree, const FakePci &f)
{
    std::string dir = devicePath(f);
    tree.write(dir + "/vendor", fmt::format("0x{:04x}\n", f.vendor));
    tree.write(dir + "/device", fmt::format("0x{:04x}\n", f.device));
    tree.write(dir + "/class", fmt::format("0x{:06x}\n", f.classCode));
    if (f.numa)
        tree.write(dir + "/numa_node", fmt::format("{}\n", *f.numa));
    if (!f.driver.empty())
        tree.link(dir + "/driver", "../../../../bus/pci/drivers/" + f.driver);
    if (f.group)
        tree.link(dir + "/iommu_group", fmt::format("../../../../kernel/iommu_groups/{}", *f.group));
    tree.link("bus/pci/devices/" + f.address, "../../../" + dir);
    if (f.group)
        tree.link(fmt::format("kernel/iommu_groups/{}/devices/{}", *f.group, f.address), "../../../../" + dir);
}

inline void addMdev(TempTree &tree, const FakePci &parent, const std::string &uuid, const std::string &typeId,
                    const std::optional<std::string> &typeName, int group)
{
    std::string parentDir = devicePath(parent);
    std::string typeDir = parentDir + "/mdev_supported_types/" + typeId;
    if (typeName)
        tree.write(typeDir + "/name", *typeName + "\n");
    tree.write(typeDir + "/available_instances", "4\n");
    std::string dir = parentDir + "/" + uuid;
    tree.link(dir + "/mdev_type", "../mdev_supported_types/" + typeId);
    tree.link(dir + "/iommu_group", fmt::format("../../../../../kernel/iommu_groups/{}", group));
    tree.link(dir + "/driver", "../../../../../bus/mdev/drivers/nvidia-vgpu-vfio");
    tree.link("bus/mdev/devices/" + uuid, "../../../" + dir);
}

} // namespace kvgpu::test
