#include "app/vgpu_profile_watch.h"

#include "base/log.h"

namespace kvgpu {

VgpuProfileWatch::VgpuProfileWatch(EventLoop &loop, DeviceRegistry &registry, std::chrono::milliseconds interval,
                                   std::function<void()> changed)
    : loop_(loop), registry_(registry), interval_(interval), changed_(std::move(changed))
{
}

void VgpuProfileWatch::follow()
{
    if (interval_.count() == 0)
        return;
    const size_t vfs = registry_.nvidiaBoundVfs();
    if (vfs > 0 && !timer_) {
        log::info("watching SR-IOV vGPU profiles (their writes send no uevent)",
                  {{"vfs", std::to_string(vfs)}, {"interval_ms", std::to_string(interval_.count())}});
        timer_ = std::make_unique<Timer>(loop_);
        const auto ms = static_cast<uint64_t>(interval_.count());
        timer_->start(ms, ms, [this] {
            if (registry_.refreshVgpuProfiles() > 0)
                changed_();
        });
    } else if (vfs == 0 && timer_) {
        log::info("no SR-IOV vGPU VF left; profile watch stopped");
        timer_.reset();
    }
}

} // namespace kvgpu
