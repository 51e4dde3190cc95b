#include "app/vgpu_profile_watch.h"

#include "base/log.h"

namespace kvgpu {

VgpuProfileWatch::VgpuProfileWatch(EventLoop &loop, EventDispatch &events, std::chrono::milliseconds interval)
    : loop_(loop), events_(events), interval_(interval)
{
}

void VgpuProfileWatch::indexChanged(const IndexChanges &changes)
{
    if (interval_.count() == 0)
        return;
    const std::size_t vfs = changes.profilePolledVfs;
    if (vfs > 0 && !timer_) {
        log::info("watching SR-IOV vGPU profiles (their writes send no uevent)",
                  {{"vfs", std::to_string(vfs)}, {"interval_ms", std::to_string(interval_.count())}});
        timer_ = std::make_unique<Timer>(loop_);
        const auto ms = static_cast<uint64_t>(interval_.count());
        timer_->start(ms, ms, [this] { events_.readVgpuProfiles(); });
    } else if (vfs == 0 && timer_) {
        log::info("no SR-IOV vGPU VF left; profile watch stopped");
        timer_.reset();
    }
}

void VgpuProfileWatch::stop()
{
    interval_ = std::chrono::milliseconds(0);
    timer_.reset();
}

} // namespace kvgpu
