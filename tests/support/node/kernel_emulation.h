// Emulates what the kernel does when user space writes into a vGPU type's
// `create` file (a UUID: create the vGPU), a vGPU's `remove` file ("1":
// remove it), an SR-IOV PF's `sriov_numvfs` (make or remove VFs) or a VF's
// `nvidia/current_vgpu_type` (set or clear its profile), by watching those directories with inotify and calling the
// SimNode verbs. Real sysfs handles such writes synchronously; here the write
// returns at once and the vGPU appears shortly after (the uevents tell when).
// Because a create file is a regular file, two writes in quick succession may
// be seen as one.
//
// Threading: owns one thread, started by the constructor and joined by the
// destructor. watch*() are thread-safe. Destroy it neither on its own thread
// nor while holding the SimNode mutex: the thread may be waiting for it.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace kvgpu::test {

class SimNode;

class KernelEmulation {
public:
    // Throws std::runtime_error when inotify or eventfd cannot be set up.
    explicit KernelEmulation(SimNode &node);
    ~KernelEmulation();

    KernelEmulation(const KernelEmulation &) = delete;
    KernelEmulation &operator=(const KernelEmulation &) = delete;

    // typeDir is the absolute path of mdev_supported_types/<typeId>.
    void watchVgpuType(const std::string &typeDir, const std::string &parent,
                       const std::string &typeId);
    // vgpuDir is the absolute path of the vGPU's sysfs directory.
    void watchVgpu(const std::string &vgpuDir, const std::string &uuid);
    // pfDir: an SR-IOV PF's sysfs directory (sriov_numvfs).
    void watchSriovPf(const std::string &pfDir, const std::string &pf);
    // nvidiaDir: a VF's nvidia/ directory (current_vgpu_type).
    void watchVgpuProfile(const std::string &nvidiaDir, const std::string &vf);

private:
    struct Target {
        enum class Kind { VgpuType, Vgpu, SriovPf, VgpuProfile } kind;
        std::string dir;
        std::string parent;
        std::string id; // type id, vGPU UUID, PF or VF address
    };

    void addWatch(Target target);
    void run();
    void handleWrite(const Target &target, std::string_view fileName);

    SimNode &node_;
    int inotifyFd_ = -1;
    // Written by the destructor to wake the thread: a self-pipe as an eventfd.
    int stopFd_ = -1;
    std::mutex mutex_;
    std::map<int, Target> watches_; // guarded by mutex_
    std::thread thread_;
};

} // namespace kvgpu::test
