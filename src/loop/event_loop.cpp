#include "loop/event_loop.h"

#include "base/log.h"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <pthread.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string>

namespace kvgpu {

namespace {
template <typename Handle>
void closeAndFree(Handle *handle)
{
    handle->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t *>(handle),
             [](uv_handle_t *h) { delete reinterpret_cast<Handle *>(h); });
}

// Runs a uv_*_init; on failure frees the handle (libuv never saw it, so it must
// not be closed), logs what cannot be watched and returns the error.
template <typename Handle, typename Init>
int initHandle(Handle *&handle, const char *what, Init init)
{
    int rc = init(handle);
    if (rc != 0) {
        delete handle;
        handle = nullptr;
        log::error("cannot create an event loop handle", {{"handle", what}, {"error", uv_strerror(rc)}});
    }
    return rc;
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
    initError_ = uv_loop_init(&loop_);
    if (initError_ != 0) {
        log::error("cannot create the event loop", {{"error", uv_strerror(initError_)}});
        return;
    }
    loopReady_ = true;
    auto *async = new uv_async_t;
    initError_ = initHandle(async, "inbox", [this](uv_async_t *h) { return uv_async_init(&loop_, h, &EventLoop::onAsync); });
    if (initError_ != 0)
        return;
    async->data = this;
    inbox_->async_ = async;
}

EventLoop::~EventLoop()
{
    if (!closed_)
        close();
}

void EventLoop::run()
{
    if (initError_ == 0)
        uv_run(&loop_, UV_RUN_DEFAULT);
}

void EventLoop::stop()
{
    if (initError_ == 0)
        uv_stop(&loop_);
}

void EventLoop::callbackFailed(const char *source, std::exception_ptr error) noexcept
{
    std::string what = "unknown exception";
    try {
        std::rethrow_exception(error);
    } catch (const std::exception &e) {
        what = e.what();
    } catch (...) {
    }
    log::error("a callback failed; stopping so that the daemon exits and is restarted",
               {{"source", source}, {"error", what}});
    failed_ = true;
    stop();
}

void EventLoop::onAsync(uv_async_t *handle)
{
    if (auto *self = static_cast<EventLoop *>(handle->data))
        self->enter("inbox", [self] { self->drainInbox(); });
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
    if (closed_)
        return initError_ != 0 ? initError_ : (failed_ ? UV_ECANCELED : 0);
    closed_ = true;
    uv_async_t *async = nullptr;
    std::vector<std::function<void()>> dropped;
    {
        std::lock_guard lock(inbox_->mutex_);
        async = inbox_->async_;
        inbox_->async_ = nullptr;
        dropped.swap(inbox_->tasks_);
    }
    if (!loopReady_)
        return initError_;
    if (async)
        closeAndFree(async);
    uv_run(&loop_, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&loop_);
    if (rc != 0)
        log::error("event loop closed with open handles", {{"error", uv_strerror(rc)}});
    if (rc == 0 && initError_ != 0)
        rc = initError_;
    if (rc == 0 && failed_)
        rc = UV_ECANCELED;
    return rc;
}

Timer::Timer(EventLoop &loop) : handle_(new uv_timer_t), loop_(loop)
{
    initError_ = loop.initError() != 0
                     ? loop.initError()
                     : initHandle(handle_, "timer", [&loop](uv_timer_t *h) { return uv_timer_init(loop.raw(), h); });
    if (initError_ != 0) {
        delete handle_;
        handle_ = nullptr;
        return;
    }
    handle_->data = this;
}

Timer::~Timer()
{
    if (handle_)
        closeAndFree(handle_);
}

int Timer::start(uint64_t timeoutMs, uint64_t repeatMs, std::function<void()> callback)
{
    if (!handle_)
        return initError_;
    // A new object rather than an assignment: the callback that may be running
    // right now (a retry that re-arms its own timer) holds the old one.
    callback_ = std::make_shared<std::function<void()>>(std::move(callback));
    return uv_timer_start(
        handle_,
        [](uv_timer_t *h) {
            if (auto *self = static_cast<Timer *>(h->data))
                self->loop_.enter("timer", [self] { self->fire(); });
        },
        timeoutMs, repeatMs);
}

void Timer::fire()
{
    std::shared_ptr<std::function<void()>> running = callback_;
    (*running)();
}

void Timer::stop()
{
    if (handle_)
        uv_timer_stop(handle_);
}

bool Timer::active() const
{
    return handle_ && uv_is_active(reinterpret_cast<const uv_handle_t *>(handle_)) != 0;
}

FdWatcher::FdWatcher(EventLoop &loop, int fd) : handle_(new uv_poll_t), loop_(loop)
{
    initError_ = loop.initError() != 0
                     ? loop.initError()
                     : initHandle(handle_, "poll", [&loop, fd](uv_poll_t *h) { return uv_poll_init(loop.raw(), h, fd); });
    if (initError_ != 0) {
        delete handle_;
        handle_ = nullptr;
        return;
    }
    handle_->data = this;
}

FdWatcher::~FdWatcher()
{
    if (handle_)
        closeAndFree(handle_);
}

int FdWatcher::start(std::function<void(int)> callback)
{
    if (!handle_)
        return initError_;
    callback_ = std::make_shared<std::function<void(int)>>(std::move(callback));
    return uv_poll_start(handle_, UV_READABLE, [](uv_poll_t *h, int status, int) {
        if (auto *self = static_cast<FdWatcher *>(h->data))
            self->loop_.enter("poll", [self, status] { self->fire(status); });
    });
}

void FdWatcher::fire(int status)
{
    std::shared_ptr<std::function<void(int)>> running = callback_;
    (*running)(status);
}

namespace {
// For each signal, the thread whose signalfds read it (0: none yet). Written
// by blockSignals, read by the handler on any thread.
std::atomic<pid_t> signalTargets[NSIG];
static_assert(std::atomic<pid_t>::is_always_lock_free, "read in a signal handler");

// Runs only on a thread that does not block the signal, which is never the
// target (that thread blocks it): hands the signal to the target, where it is
// pending, blocked, until a signalfd reads it.
extern "C" void forwardSignal(int signum)
{
    const int savedErrno = errno;
    const pid_t target = signalTargets[signum].load(std::memory_order_relaxed);
    if (target > 0 && target != static_cast<pid_t>(::syscall(SYS_gettid)))
        ::syscall(SYS_tgkill, ::getpid(), target, signum);
    errno = savedErrno;
}
} // namespace

void blockSignals(std::initializer_list<int> signals)
{
    sigset_t set;
    sigemptyset(&set);
    for (int signum : signals)
        sigaddset(&set, signum);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    const pid_t self = static_cast<pid_t>(::syscall(SYS_gettid));
    for (int signum : signals) {
        if (signum <= 0 || signum >= NSIG)
            continue;
        signalTargets[signum].store(self, std::memory_order_relaxed);
        struct sigaction action {};
        action.sa_handler = forwardSignal;
        sigfillset(&action.sa_mask);
        action.sa_flags = SA_RESTART;
        if (::sigaction(signum, &action, nullptr) != 0)
            log::error("cannot forward a signal to the event loop",
                       {{"signal", std::to_string(signum)}, {"error", std::strerror(errno)}});
    }
}

SignalWatcher::SignalWatcher(EventLoop &loop, int signum, std::function<void()> callback)
    : callback_(std::move(callback))
{
    blockSignals({signum});
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, signum);
    fd_ = ::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd_ < 0) {
        initError_ = -errno;
        log::error("cannot watch a signal", {{"signal", std::to_string(signum)}, {"error", std::strerror(errno)}});
        return;
    }
    watcher_ = std::make_unique<FdWatcher>(loop, fd_);
    initError_ = watcher_->start([this](int) { drain(); });
    if (initError_ != 0)
        log::error("cannot watch a signal", {{"signal", std::to_string(signum)}, {"error", uv_strerror(initError_)}});
}

void SignalWatcher::drain()
{
    // One callback per delivery that the kernel queued; the same signal sent
    // twice before a read is one delivery, as with a handler.
    signalfd_siginfo info;
    while (::read(fd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info))
        callback_();
}

SignalWatcher::~SignalWatcher()
{
    watcher_.reset(); // stop polling before the fd goes away
    if (fd_ >= 0)
        ::close(fd_);
}

} // namespace kvgpu
