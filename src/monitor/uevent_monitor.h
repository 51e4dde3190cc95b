// Kernel uevents for the subsystems that matter here (pci, mdev, vfio), read
// from a libudev netlink monitor polled by the loop.
//
// The monitor listens from listen() on, before the daemon's first scan, so
// nothing that happens during the scan is lost. It never goes deaf on its own:
//  - a receive buffer overflow (ENOBUFS from a read, or the socket error that
//    epoll reports before any read, which makes libuv stop the poll handle)
//    means events were dropped. The kernel then keeps dropping, without a
//    second ENOBUFS, until the queue is empty, so the monitor drains the queue
//    first and only then reports BatchEnd::Lost: the earliest moment at which
//    a rescan sees everything the dropped events would have said. A stopped
//    poll handle is started again;
//  - a socket that fails for any other reason is closed and opened again (also
//    reported as Lost). If that fails too the monitor is not listening, says
//    so in the log, and ensureListening() (SIGHUP) tries again.
// At most kBatchLimit events are read per loop turn, so that a storm cannot
// keep signals (SIGTERM) and the kubelet's work waiting.
//
// Threading contract: bound to the loop thread; the sink is called on it.
#pragma once

#include "base/result.h"
#include "loop/event_loop.h"

#include <map>
#include <memory>
#include <string>

struct udev;
struct udev_monitor;

namespace kvgpu {

struct Uevent {
    std::string action;    // add, remove, bind, unbind, change, ...
    std::string subsystem; // pci, mdev, vfio
    std::string sysname;   // PCI address, mdev UUID, VFIO group number
    std::string devpath;   // /devices/pci0000:64/...
    std::map<std::string, std::string> properties;
};

class UeventMonitor {
public:
    enum class Source { Kernel, Udev };
    struct Config {
        Source source = Source::Kernel;
        int receiveBufferBytes = 0; // 0 keeps the kernel's default
    };
    // How a batch of reads ended.
    enum class BatchEnd {
        Drained, // the queue is empty
        Paused,  // kBatchLimit events were read and more are queued; the rest comes next turn
        Lost,    // events were dropped (or the socket was re-opened) and the queue is now empty: rescan
    };
    // Where the monitor's events go (EventDispatch in the daemon).
    class Sink {
    public:
        virtual ~Sink() = default;
        virtual void uevent(const Uevent &event) = 0;
        // After the events of a batch, so the sink publishes once per batch.
        // While events are known lost and the queue is not yet empty, batches
        // end silently: what was read is known to be incomplete.
        virtual void ueventBatchEnd(BatchEnd end) = 0;
    };
    // Events read per loop turn: whatever else the loop has to do (a SIGTERM,
    // a kubelet's call answered on the loop) waits behind at most this many
    // in a storm. 64: under ASan a storm's uevent costs up to ~10 ms.
    static constexpr int kBatchLimit = 64;

    UeventMonitor(EventLoop &loop, Config config, Sink &sink);
    ~UeventMonitor();
    UeventMonitor(const UeventMonitor &) = delete;
    UeventMonitor &operator=(const UeventMonitor &) = delete;

    // Opens the netlink socket and starts polling it; the value is the receive
    // buffer the kernel granted, in bytes.
    Result<int> listen();
    // Listens again if the monitor is not listening (its socket could not be
    // re-opened); true when it listens afterwards. A re-opened socket reports
    // BatchEnd::Lost once it has been read.
    bool ensureListening();
    bool listening() const { return monitor_ != nullptr && polling_; }

private:
    Result<int> open();
    void close();
    void onPoll(int status);
    void readBatch();
    void restartPolling();
    void reopen();

    EventLoop &loop_;
    const Config config_;
    Sink &sink_;
    udev *udev_ = nullptr;
    udev_monitor *monitor_ = nullptr;
    std::unique_ptr<FdWatcher> watcher_;
    bool polling_ = false;    // the poll handle is started
    bool lost_ = false;       // events were dropped since the queue was last empty
};

} // namespace kvgpu
