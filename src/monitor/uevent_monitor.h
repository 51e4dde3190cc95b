// Kernel uevents for the subsystems that matter here (pci, mdev, vfio), read
// from a libudev netlink monitor polled by the loop.
//
// The monitor is enabled when it is created, before the daemon's first scan,
// so nothing that happens during the scan is lost. A receive buffer overflow
// (ENOBUFS) means events were dropped: the owner is told to rescan.
//
// Threading contract: bound to the loop thread.
#pragma once

#include "loop/event_loop.h"

#include <functional>
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
    struct Callbacks {
        std::function<void(const Uevent &)> event;
        // After the queue has been drained: the owner publishes once per burst.
        std::function<void()> drained;
        std::function<void()> overflow;
    };

    static std::unique_ptr<UeventMonitor> create(EventLoop &loop, Source source, int receiveBufferBytes,
                                                 Callbacks callbacks, std::string &error);
    ~UeventMonitor();
    UeventMonitor(const UeventMonitor &) = delete;
    UeventMonitor &operator=(const UeventMonitor &) = delete;

private:
    UeventMonitor(EventLoop &loop, udev *context, udev_monitor *monitor, Callbacks callbacks);
    void onReadable();

    udev *udev_;
    udev_monitor *monitor_;
    Callbacks callbacks_;
    std::unique_ptr<FdWatcher> watcher_;
};

} // namespace kvgpu
