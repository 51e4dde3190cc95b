// A GPU node as plain directories (sysfs and /dev under a temp dir, read by
// the daemon through --sysfs-root and --dev-root) that changes in the
// kernel's order: the tree first, then the uevent that announces the change,
// sent through the kernel's uevent socket (kernel_uevents.h). The node keeps
// its own truth: what a kubelet should hold after every event was heard.
//
// Threading contract: thread-compatible; one thread drives a node.
#pragma once

#include "kernel_uevents.h"
#include "temp_tree.h"

#include <map>
#include <set>
#include <string>
#include <vector>

namespace kvgpu::test {

class PlainNode {
public:
    PlainNode();

    const std::string &sysfsRoot() const { return sys_.root(); }
    const std::string &devRoot() const { return dev_.root(); }

    // Before the daemon starts: present, no event.
    void addGpu(const std::string &address, int group, const std::string &driver);
    void addVgpuType(const std::string &parent, const std::string &typeId, const std::string &name);

    // While it runs, each change is announced as the kernel does. A vGPU is
    // added, gets its IOMMU group (and /dev/vfio node) and is bound to its
    // driver; removal undoes this in reverse.
    std::string createVgpu(const std::string &parent, const std::string &typeId);
    void removeVgpu(const std::string &uuid);
    void unbind(const std::string &address);
    void bind(const std::string &address, const std::string &driver);
    // A change event that changes nothing (a storm's filler).
    void touch(const std::string &address);

    // The truth: every advertised resource (nvidia.com/...) with its device ids.
    std::map<std::string, std::set<std::string>> expected() const;
    std::vector<std::string> vgpus() const;
    std::vector<std::string> gpus() const;
    std::string driverOf(const std::string &address) const { return gpus_.at(address).driver; }
    unsigned long eventsSent() const { return uevents_.sent(); }

private:
    struct Gpu {
        int group = 0;
        std::string driver;
        std::map<std::string, std::string> types; // id -> name
    };
    struct Vgpu {
        std::string parent;
        std::string typeId;
        int group = 0;
    };
    std::string gpuDir(const std::string &address) const;
    std::string gpuDevpath(const std::string &address) const;

    TempTree sys_;
    TempTree dev_;
    KernelUevents uevents_;
    std::map<std::string, Gpu> gpus_;
    std::map<std::string, Vgpu> vgpus_;
    int nextGroup_ = 1000;
    unsigned long nextUuid_ = 1;
};

} // namespace kvgpu::test
