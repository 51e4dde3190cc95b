// The slow health timer's pass over the signals that change without a uevent
// (power state, config space liveness, AER counters). A config-space or AER
// read of a GPU that fell off the bus can take milliseconds, so a pass never
// reads the whole node in one callback: it reads one device per loop turn,
// and the uevents, inotify changes and gRPC work that arrive meanwhile are
// served between two devices rather than after the last one. Each device is
// read, and its verdict published, by the event dispatch (the one owner of
// change); the pass only paces the reads.
//
// Threading contract: bound to the loop thread, like the dispatch it drives.
#pragma once

#include "app/event_dispatch.h"
#include "loop/event_loop.h"

#include <cstdint>
#include <string>
#include <vector>

namespace kvgpu {

class HealthPass {
public:
    // Starts a pass every `intervalMs` (0: only when start() is called).
    HealthPass(EventLoop &loop, EventDispatch &events, std::uint64_t intervalMs);
    HealthPass(const HealthPass &) = delete;
    HealthPass &operator=(const HealthPass &) = delete;

    // Begins a pass over every polled device, unless one is still going (a
    // pass that outlasts the interval is not stacked on).
    void start();
    bool running() const { return next_ < targets_.size(); }

private:
    void readNext();

    EventDispatch &events_;
    Timer interval_;
    // Re-arms every turn while a pass is running. A 1 ms repeat rather than
    // 0: libuv 1.44 runs a due timer again in the same turn, before any I/O.
    Timer turn_;
    std::vector<std::string> targets_;
    std::size_t next_ = 0;
};

} // namespace kvgpu
