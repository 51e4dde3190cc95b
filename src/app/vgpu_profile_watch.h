// The one signal that is polled rather than evented: an SR-IOV vGPU VF's
// profile. Writing nvidia/current_vgpu_type sends no uevent and no
// sysfs_notify (the driver's store handler only creates or destroys the
// vGPU), and inotify on sysfs reports only writes made through the same sysfs
// mount, which a pod's is not. So while at least one VF is bound to nvidia, a
// timer asks the event dispatch to read each such VF's current_vgpu_type (one
// small read per VF) and to re-derive the VFs whose value changed. Without
// such VFs there is no timer at all: a node without SR-IOV vGPU keeps zero
// idle wake-ups.
//
// The watch is a subscriber of the device index: it learns how many VFs are
// bound to nvidia from each publish (the index keeps the count as devices
// change), never by scanning the node.
//
// Threading contract: bound to the loop thread, like the dispatch.
#pragma once

#include "app/event_dispatch.h"
#include "index/index_changes.h"
#include "loop/event_loop.h"

#include <chrono>
#include <memory>

namespace kvgpu {

class VgpuProfileWatch final : public IndexSubscriber {
public:
    // `interval` 0 disables the watch.
    VgpuProfileWatch(EventLoop &loop, EventDispatch &events, std::chrono::milliseconds interval);

    // Starts the timer when VFs are bound to nvidia and it is not running;
    // stops it when none is left.
    void indexChanged(const IndexChanges &changes) override;
    bool running() const { return timer_ != nullptr; }
    // Stops the timer for good (before the loop closes).
    void stop();

private:
    EventLoop &loop_;
    EventDispatch &events_;
    std::chrono::milliseconds interval_;
    std::unique_ptr<Timer> timer_;
};

} // namespace kvgpu
