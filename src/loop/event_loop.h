// The reactor's event loop: a libuv loop plus a thread-safe inbox, and small
// RAII wrappers for the handles the daemon uses (timer, poll, signal).
//
// Threading contract: an EventLoop and every handle on it are bound to the
// thread that runs the loop, except EventLoop::post(), which any thread may
// call: it queues the function and wakes the loop with uv_async_send (which
// coalesces, so the async callback drains the whole inbox).
//
// Every libuv callback enters our code through one trampoline,
// EventLoop::enter(): an exception must never unwind through libuv's C frames,
// so it is caught there, logged, and the loop stops with failed() set; the
// daemon then exits non-zero (close() reports it) and Kubernetes restarts it.
//
// Handle lifetime follows libuv's rule: a handle's memory is freed only in its
// close callback. The wrappers allocate the uv handle separately and hand it to
// uv_close() in their destructor, so destroying a wrapper is always safe; the
// loop must then turn once more (EventLoop::close() does) before uv_loop_close.
// A handle whose uv_*_init failed is never closed (libuv does not know it): the
// wrapper logs why, frees it at once, and its operations return the error.
#pragma once

#include <exception>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <vector>

#include <uv.h>

namespace kvgpu {

// The thread-safe half of an EventLoop: queued tasks and the async handle that
// wakes the loop. Shared so that callbacks on other threads (gRPC completions)
// can hold it past the loop's life; posts after close are dropped.
class Inbox {
public:
    void post(std::function<void()> task);

private:
    friend class EventLoop;
    std::mutex mutex_;
    std::vector<std::function<void()>> tasks_; // guarded by mutex_
    uv_async_t *async_ = nullptr;              // guarded by mutex_; null once closed
};

class EventLoop {
public:
    EventLoop();
    ~EventLoop();
    EventLoop(const EventLoop &) = delete;
    EventLoop &operator=(const EventLoop &) = delete;

    uv_loop_t *raw() { return &loop_; }
    // 0, or the libuv error that made the loop unusable (uv_loop_init or the
    // inbox's uv_async_init failed); run() then returns at once.
    int initError() const { return initError_; }

    // Runs until stop() is called or no handle is left.
    void run();
    // Makes run() return after the current callback (loop thread only).
    void stop();
    // Whether a callback threw and stopped the loop.
    bool failed() const { return failed_; }

    // Queues `task` to run on the loop thread. Thread-safe. Tasks posted after
    // close() are dropped.
    void post(std::function<void()> task) { inbox_->post(std::move(task)); }
    // For callbacks that may outlive the loop.
    std::shared_ptr<Inbox> inbox() const { return inbox_; }

    // Closes the inbox, runs the loop until every closed handle's callback has
    // run, and closes the loop. Returns 0 when every handle was closed (nothing
    // leaked) and no callback failed; otherwise uv_loop_close()'s error, or
    // UV_ECANCELED when a callback threw.
    int close();

    // How many times the loop woke up to run callbacks (for the idle benchmark).
    unsigned long wakeups() const { return wakeups_; }

    // The trampoline every libuv callback goes through (see the header
    // comment). `source` names the handle kind in the log line.
    template <typename Callback>
    void enter(const char *source, Callback &&callback) noexcept
    {
        ++wakeups_;
        try {
            callback();
        } catch (...) {
            callbackFailed(source, std::current_exception());
        }
    }

private:
    static void onAsync(uv_async_t *handle);
    void drainInbox();
    void callbackFailed(const char *source, std::exception_ptr error) noexcept;

    uv_loop_t loop_{};
    int initError_ = 0;
    bool loopReady_ = false; // uv_loop_init succeeded, so the loop must be closed
    std::shared_ptr<Inbox> inbox_ = std::make_shared<Inbox>();
    bool closed_ = false;
    bool failed_ = false;
    unsigned long wakeups_ = 0;
};

// A one-shot or repeating timer.
class Timer {
public:
    explicit Timer(EventLoop &loop);
    ~Timer();
    Timer(const Timer &) = delete;
    Timer &operator=(const Timer &) = delete;

    // (Re)arms the timer. Safe from inside the timer's own callback: the
    // callback that is running stays alive until it returns. Returns 0 or the
    // libuv error.
    int start(uint64_t timeoutMs, uint64_t repeatMs, std::function<void()> callback);
    void stop();
    bool active() const;
    int initError() const { return initError_; }

private:
    void fire();

    uv_timer_t *handle_;
    int initError_ = 0;
    EventLoop &loop_;
    std::shared_ptr<std::function<void()>> callback_;
};

// Watches a file descriptor for readability. The fd is not owned.
class FdWatcher {
public:
    FdWatcher(EventLoop &loop, int fd);
    ~FdWatcher();
    FdWatcher(const FdWatcher &) = delete;
    FdWatcher &operator=(const FdWatcher &) = delete;

    // `callback` runs on each readable event; it receives libuv's status (<0 on
    // error). Returns 0 or the libuv error (also when uv_poll_init failed: a
    // regular file, say, cannot be polled).
    int start(std::function<void(int status)> callback);
    int initError() const { return initError_; }

private:
    void fire(int status);

    uv_poll_t *handle_;
    int initError_ = 0;
    EventLoop &loop_;
    std::shared_ptr<std::function<void(int)>> callback_;
};

// Makes `signals` reach the calling thread's SignalWatchers whichever thread
// the kernel picks for them. It blocks them in the calling thread, and so in
// every thread it creates afterwards; the daemon calls it first thing, before
// gRPC starts a thread, so that a blocked signal waits, pending, for its
// SignalWatcher to read it instead of running a handler on whichever thread
// the kernel picks (TSan delays a handler while that thread sleeps in an
// uninstrumented gRPC wait) or, before the watcher exists, killing the process
// by the default action.
//
// A thread that did not inherit the mask (one a library created before the
// call, or with its own mask) can still be picked for a process-directed
// signal. So that the default action never kills the process there, it also
// installs a handler for each signal that forwards it to the calling thread
// (tgkill), where it waits, blocked, for the signalfd: the loop sees it as if
// the kernel had picked its own thread. The handler does nothing else, and
// only async-signal-safe calls. If the calling thread has exited, a forwarded
// signal is lost; call this from the thread that runs the loop.
void blockSignals(std::initializer_list<int> signals);

// Delivers one signal to the loop through a signalfd. The signal must be
// blocked in the loop's thread (blockSignals) or the kernel never queues it
// for the fd; the constructor calls blockSignals for it, so the watcher's
// thread (the loop's) becomes where the signal is forwarded to. A signal that
// arrived before the watcher was created is read as soon as the loop runs.
class SignalWatcher {
public:
    SignalWatcher(EventLoop &loop, int signum, std::function<void()> callback);
    ~SignalWatcher();
    SignalWatcher(const SignalWatcher &) = delete;
    SignalWatcher &operator=(const SignalWatcher &) = delete;

    // 0, or the error (a negative errno or libuv error) that keeps the signal
    // from being watched (logged).
    int initError() const { return initError_; }

private:
    void drain();

    int fd_ = -1;
    int initError_ = 0;
    std::unique_ptr<FdWatcher> watcher_;
    std::function<void()> callback_;
};

} // namespace kvgpu
