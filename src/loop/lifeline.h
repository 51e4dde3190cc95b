// Lets a task posted to the loop outlive the object that posted it without
// running on it after it is gone. An object that posts work about itself
// (a queued rescan, a gRPC completion handed back to the loop) holds a
// Lifeline and wraps each such task with guard(): the task runs only while
// the Lifeline, and so its owner, still exists.
//
// Threading contract: the Lifeline is created and destroyed on the loop
// thread, and the guarded tasks run there (EventLoop::post); a guarded task
// may be created on any thread (it only copies a weak reference).
#pragma once

#include <memory>
#include <utility>

namespace kvgpu {

class Lifeline {
public:
    Lifeline() = default;
    Lifeline(const Lifeline &) = delete;
    Lifeline &operator=(const Lifeline &) = delete;

    // `task` wrapped so that it does nothing once this Lifeline is destroyed.
    template <typename Task>
    auto guard(Task task) const
    {
        return [alive = std::weak_ptr<const char>(token_), task = std::move(task)](auto &&...args) mutable {
            if (alive.lock())
                task(std::forward<decltype(args)>(args)...);
        };
    }

private:
    std::shared_ptr<const char> token_ = std::make_shared<const char>('\0');
};

} // namespace kvgpu
