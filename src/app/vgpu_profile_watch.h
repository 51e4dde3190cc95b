// The one signal that is polled rather than evented: an SR-IOV vGPU VF's
// profile. Writing nvidia/current_vgpu_type sends no uevent and no
// sysfs_notify (the driver's store handler only creates or destroys the
// vGPU), and inotify on sysfs reports only writes made through the same sysfs
// mount, which a pod's is not. So while at least one VF is bound to nvidia, a
// timer reads each such VF's current_vgpu_type (one small read per VF) and
// re-derives the VFs whose value changed at once. Without such VFs there is
// no timer at all: a node without SR-IOV vGPU keeps zero idle wake-ups.
//
// Threading contract: bound to the loop thread, like the registry it reads.
#pragma once

#include "device/registry.h"
#include "loop/event_loop.h"

#include <chrono>
#include <functional>
#include <memory>

namespace kvgpu {

class VgpuProfileWatch {
public:
    // `interval` 0 disables the watch. `changed` runs after a tick that
    // re-derived something (the daemon publishes then).
    VgpuProfileWatch(EventLoop &loop, DeviceRegistry &registry, std::chrono::milliseconds interval,
                     std::function<void()> changed);

    // Starts the timer when the registry has nvidia-bound VFs and it is not
    // running; stops it when none is left. Call after every reconcile.
    void follow();
    bool running() const { return timer_ != nullptr; }

private:
    EventLoop &loop_;
    DeviceRegistry &registry_;
    std::chrono::milliseconds interval_;
    std::function<void()> changed_;
    std::unique_ptr<Timer> timer_;
};

} // namespace kvgpu
