#include "loop/event_loop.h"

#include "base/log.h"

namespace kvgpu {

namespace {
template <typename Handle>
void closeAndFree(Handle *handle)
{
    handle->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t *>(handle),
             [](uv_handle_t *h) { delete reinterpret_cast<Handle *>(h); });
}
} // namespace

void Inbox::post(std::function<void()> task)
{
    std::lock_guard lock(mutex_);
    if (!async_)
        return;
    tasks_.push_back(std::move(task));
    uv_async_send(async_);
}

EventLoop::EventLoop()
{
    uv_loop_init(&loop_);
    auto *async = new uv_async_t;
    uv_async_init(&loop_, async, &EventLoop::onAsync);
    async->data = this;
    inbox_->async_ = async;
}

EventLoop::~EventLoop()
{
    if (!closed_)
        close();
}

void EventLoop::run() { uv_run(&loop_, UV_RUN_DEFAULT); }

void EventLoop::stop() { uv_stop(&loop_); }

void EventLoop::onAsync(uv_async_t *handle)
{
    if (auto *self = static_cast<EventLoop *>(handle->data)) {
        self->countWakeup();
        self->drainInbox();
    }
}

void EventLoop::drainInbox()
{
    std::vector<std::function<void()>> tasks;
    {
        std::lock_guard lock(inbox_->mutex_);
        tasks.swap(inbox_->tasks_);
    }
    for (auto &task : tasks)
        task();
}

int EventLoop::close()
{
    closed_ = true;
    uv_async_t *async = nullptr;
    std::vector<std::function<void()>> dropped;
    {
        std::lock_guard lock(inbox_->mutex_);
        async = inbox_->async_;
        inbox_->async_ = nullptr;
        dropped.swap(inbox_->tasks_);
    }
    if (async)
        closeAndFree(async);
    uv_run(&loop_, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&loop_);
    if (rc != 0)
        log::error("event loop closed with open handles", {{"error", uv_strerror(rc)}});
    return rc;
}

Timer::Timer(EventLoop &loop) : handle_(new uv_timer_t), loop_(loop)
{
    uv_timer_init(loop.raw(), handle_);
    handle_->data = this;
}

Timer::~Timer() { closeAndFree(handle_); }

void Timer::start(uint64_t timeoutMs, uint64_t repeatMs, std::function<void()> callback)
{
    callback_ = std::move(callback);
    uv_timer_start(
        handle_,
        [](uv_timer_t *h) {
            if (auto *self = static_cast<Timer *>(h->data)) {
                self->loop_.countWakeup();
                self->callback_();
            }
        },
        timeoutMs, repeatMs);
}

void Timer::stop() { uv_timer_stop(handle_); }

bool Timer::active() const { return uv_is_active(reinterpret_cast<const uv_handle_t *>(handle_)) != 0; }

FdWatcher::FdWatcher(EventLoop &loop, int fd) : handle_(new uv_poll_t), loop_(loop)
{
    uv_poll_init(loop.raw(), handle_, fd);
    handle_->data = this;
}

FdWatcher::~FdWatcher() { closeAndFree(handle_); }

int FdWatcher::start(std::function<void(int)> callback)
{
    callback_ = std::move(callback);
    return uv_poll_start(handle_, UV_READABLE, [](uv_poll_t *h, int status, int) {
        if (auto *self = static_cast<FdWatcher *>(h->data)) {
            self->loop_.countWakeup();
            self->callback_(status);
        }
    });
}

SignalWatcher::SignalWatcher(EventLoop &loop, int signum, std::function<void()> callback)
    : handle_(new uv_signal_t), loop_(loop), callback_(std::move(callback))
{
    uv_signal_init(loop.raw(), handle_);
    handle_->data = this;
    uv_signal_start(
        handle_,
        [](uv_signal_t *h, int) {
            if (auto *self = static_cast<SignalWatcher *>(h->data)) {
                self->loop_.countWakeup();
                self->callback_();
            }
        },
        signum);
}

SignalWatcher::~SignalWatcher() { closeAndFree(handle_); }

} // namespace kvgpu
