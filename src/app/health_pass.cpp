#include "app/health_pass.h"

#include "base/log.h"

namespace kvgpu {

HealthPass::HealthPass(EventLoop &loop, EventDispatch &events, std::uint64_t intervalMs)
    : events_(events), interval_(loop), turn_(loop)
{
    if (intervalMs > 0)
        interval_.start(intervalMs, intervalMs, [this] { start(); });
}

void HealthPass::start()
{
    if (running()) {
        log::debug("health pass still running; not starting another",
                   {{"done", std::to_string(next_)}, {"devices", std::to_string(targets_.size())}});
        return;
    }
    targets_ = events_.polledHealthTargets();
    next_ = 0;
    log::debug("health pass started", {{"devices", std::to_string(targets_.size())}});
    if (targets_.empty())
        return;
    turn_.start(0, 1, [this] { readNext(); });
}

void HealthPass::readNext()
{
    if (running())
        events_.readPolledHealth(targets_[next_++]);
    if (!running()) {
        turn_.stop();
        log::debug("health pass done", {{"devices", std::to_string(targets_.size())}});
    }
}

} // namespace kvgpu
