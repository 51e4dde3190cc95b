#include "plain_node.h"

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <stdlib.h>

#include <fmt/format.h>

namespace kvgpu::test {

namespace {

// One root port for every GPU keeps the paths short.
const std::string kParents = "pci0000:00/0000:00:01.0";

bool isVfioDriver(const std::string &driver) { return driver == "vfio-pci"; }

// A storm changes the tree tens of thousands of times: on a disk's file system
// each change costs a millisecond, on tmpfs (where /sys and /dev live too)
// microseconds.
std::string freshDirectory(const char *name)
{
    for (const char *parent : {"/dev/shm", "/tmp"}) {
        std::string pattern = fmt::format("{}/kvgpu-{}-XXXXXX", parent, name);
        if (::mkdtemp(pattern.data()))
            return pattern;
    }
    throw std::runtime_error(std::string("cannot create a temporary directory: ") + std::strerror(errno));
}

} // namespace

PlainNode::PlainNode() : sys_(freshDirectory("sys")), dev_(freshDirectory("dev")) { dev_.mkdir("vfio"); }

std::string PlainNode::gpuDir(const std::string &address) const
{
    return fmt::format("devices/{}/{}", kParents, address);
}

std::string PlainNode::gpuDevpath(const std::string &address) const { return "/" + gpuDir(address); }

void PlainNode::addGpu(const std::string &address, int group, const std::string &driver)
{
    addPci(sys_, FakePci{.address = address, .driver = driver, .group = group, .numa = 0, .parents = kParents});
    dev_.write(fmt::format("vfio/{}", group), "");
    gpus_[address] = Gpu{.group = group, .driver = driver, .types = {}};
}

void PlainNode::addVgpuType(const std::string &parent, const std::string &typeId, const std::string &name)
{
    std::string dir = gpuDir(parent) + "/mdev_supported_types/" + typeId;
    sys_.write(dir + "/name", name + "\n");
    sys_.write(dir + "/available_instances", "32\n");
    gpus_.at(parent).types[typeId] = name;
}

std::string PlainNode::createVgpu(const std::string &parent, const std::string &typeId)
{
    std::string uuid = fmt::format("{:08x}-0000-4000-8000-{:012x}", nextUuid_, nextUuid_);
    ++nextUuid_;
    int group = nextGroup_++;
    std::string dir = gpuDir(parent) + "/" + uuid;
    std::string devpath = "/" + dir;

    // device_add: the device, its type and its bus link.
    sys_.link(dir + "/mdev_type", "../mdev_supported_types/" + typeId);
    sys_.link("bus/mdev/devices/" + uuid, "../../../" + dir);
    uevents_.send("add", devpath, "mdev", {"MDEV_TYPE=" + typeId});
    // The vfio-mdev probe: a new IOMMU group and its /dev/vfio node.
    sys_.link(dir + "/iommu_group", fmt::format("../../../../../kernel/iommu_groups/{}", group));
    dev_.write(fmt::format("vfio/{}", group), "");
    uevents_.send("add", fmt::format("/devices/virtual/vfio/{}", group), "vfio");
    // Bound to its driver.
    sys_.link(dir + "/driver", "../../../../../bus/mdev/drivers/nvidia-vgpu-vfio");
    uevents_.send("bind", devpath, "mdev", {"DRIVER=nvidia-vgpu-vfio", "MDEV_TYPE=" + typeId});

    vgpus_[uuid] = Vgpu{.parent = parent, .typeId = typeId, .group = group};
    return uuid;
}

void PlainNode::removeVgpu(const std::string &uuid)
{
    const Vgpu vgpu = vgpus_.at(uuid);
    std::string dir = gpuDir(vgpu.parent) + "/" + uuid;
    std::string devpath = "/" + dir;

    sys_.remove(dir + "/driver");
    uevents_.send("unbind", devpath, "mdev", {"MDEV_TYPE=" + vgpu.typeId});
    sys_.remove(dir + "/iommu_group");
    dev_.remove(fmt::format("vfio/{}", vgpu.group));
    uevents_.send("remove", fmt::format("/devices/virtual/vfio/{}", vgpu.group), "vfio");
    sys_.remove("bus/mdev/devices/" + uuid);
    sys_.remove(dir);
    uevents_.send("remove", devpath, "mdev", {"MDEV_TYPE=" + vgpu.typeId});
    vgpus_.erase(uuid);
}

void PlainNode::unbind(const std::string &address)
{
    sys_.remove(gpuDir(address) + "/driver");
    uevents_.send("unbind", gpuDevpath(address), "pci", {"PCI_SLOT_NAME=" + address});
    gpus_.at(address).driver.clear();
}

void PlainNode::bind(const std::string &address, const std::string &driver)
{
    sys_.link(gpuDir(address) + "/driver", "../../../../bus/pci/drivers/" + driver);
    uevents_.send("bind", gpuDevpath(address), "pci", {"DRIVER=" + driver, "PCI_SLOT_NAME=" + address});
    gpus_.at(address).driver = driver;
}

void PlainNode::touch(const std::string &address)
{
    uevents_.send("change", gpuDevpath(address), "pci", {"PCI_SLOT_NAME=" + address});
}

std::map<std::string, std::set<std::string>> PlainNode::expected() const
{
    // Names as the test's pci.ids gives them: every GPU is a 10de:1eb8.
    std::map<std::string, std::set<std::string>> resources;
    for (const auto &[address, gpu] : gpus_)
        if (isVfioDriver(gpu.driver))
            resources["nvidia.com/TU104GL_TESLA_T4"].insert(address);
    for (const auto &[uuid, vgpu] : vgpus_) {
        std::string name = gpus_.at(vgpu.parent).types.at(vgpu.typeId);
        for (char &c : name)
            if (c == ' ')
                c = '_';
        resources["nvidia.com/" + name].insert(uuid);
    }
    return resources;
}

std::vector<std::string> PlainNode::vgpus() const
{
    std::vector<std::string> uuids;
    for (const auto &entry : vgpus_)
        uuids.push_back(entry.first);
    return uuids;
}

std::vector<std::string> PlainNode::gpus() const
{
    std::vector<std::string> addresses;
    for (const auto &entry : gpus_)
        addresses.push_back(entry.first);
    return addresses;
}

} // namespace kvgpu::test
