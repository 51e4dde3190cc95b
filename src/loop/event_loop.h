// The reactor's event loop: a libuv loop plus a thread-safe inbox, and small
// RAII wrappers for the handles the daemon uses (timer, poll, signal).
//
// Threading contract: an EventLoop and every handle on it are bound to the
// thread that runs the loop, except EventLoop::post(), which any thread may
// call: it queues the function and wakes the loop with uv_async_send (which
// coalesces, so the async callback drains the whole inbox).
//
// Handle lifetime follows libuv's rule: a handle's memory is freed only in its
// close callback. The wrappers allocate the uv handle separately and hand it to
// uv_close() in their destructor, so destroying a wrapper is always safe; the
// loop must then turn once more (EventLoop::close() does) before uv_loop_close.
#pragma once

#include <functional>
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

    // Runs until stop() is called or no handle is left.
    void run();
    // Makes run() return after the current callback (loop thread only).
    void stop();

    // Queues `task` to run on the loop thread. Thread-safe. Tasks posted after
    // close() are dropped.
    void post(std::function<void()> task) { inbox_->post(std::move(task)); }
    // For callbacks that may outlive the loop.
    std::shared_ptr<Inbox> inbox() const { return inbox_; }

    // Closes the inbox, runs the loop until every closed handle's callback has
    // run, and closes the loop. Returns uv_loop_close()'s result: 0 means every
    // handle was closed (nothing leaked).
    int close();

    // How many times the loop woke up to run callbacks (for the idle benchmark).
    unsigned long wakeups() const { return wakeups_; }
    void countWakeup() { ++wakeups_; }

private:
    static void onAsync(uv_async_t *handle);
    void drainInbox();

    uv_loop_t loop_{};
    std::shared_ptr<Inbox> inbox_ = std::make_shared<Inbox>();
    bool closed_ = false;
    unsigned long wakeups_ = 0;
};

// A one-shot or repeating timer.
class Timer {
public:
    explicit Timer(EventLoop &loop);
    ~Timer();
    Timer(const Timer &) = delete;
    Timer &operator=(const Timer &) = delete;

    void start(uint64_t timeoutMs, uint64_t repeatMs, std::function<void()> callback);
    void stop();
    bool active() const;

private:
    uv_timer_t *handle_;
    EventLoop &loop_;
    std::function<void()> callback_;
};

// Watches a file descriptor for readability. The fd is not owned.
class FdWatcher {
public:
    FdWatcher(EventLoop &loop, int fd);
    ~FdWatcher();
    FdWatcher(const FdWatcher &) = delete;
    FdWatcher &operator=(const FdWatcher &) = delete;

    // `callback` runs on each readable event; it receives libuv's status (<0 on error).
    int start(std::function<void(int status)> callback);

private:
    uv_poll_t *handle_;
    EventLoop &loop_;
    std::function<void(int)> callback_;
};

class SignalWatcher {
public:
    SignalWatcher(EventLoop &loop, int signum, std::function<void()> callback);
    ~SignalWatcher();
    SignalWatcher(const SignalWatcher &) = delete;
    SignalWatcher &operator=(const SignalWatcher &) = delete;

private:
    uv_signal_t *handle_;
    EventLoop &loop_;
    std::function<void()> callback_;
};

} // namespace kvgpu
