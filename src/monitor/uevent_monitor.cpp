#include "monitor/uevent_monitor.h"

#include "base/log.h"

#include <cerrno>
#include <cstring>
#include <sys/socket.h>

#include <libudev.h>

namespace kvgpu {

std::unique_ptr<UeventMonitor> UeventMonitor::create(EventLoop &loop, Source source, int receiveBufferBytes,
                                                     Callbacks callbacks, std::string &error)
{
    udev *context = udev_new();
    if (!context) {
        error = "udev_new failed";
        return nullptr;
    }
    udev_monitor *monitor = udev_monitor_new_from_netlink(context, source == Source::Kernel ? "kernel" : "udev");
    if (!monitor) {
        error = std::string("cannot open the uevent netlink socket: ") + std::strerror(errno);
        udev_unref(context);
        return nullptr;
    }
    for (const char *subsystem : {"pci", "mdev", "vfio"})
        udev_monitor_filter_add_match_subsystem_devtype(monitor, subsystem, nullptr);
    if (receiveBufferBytes > 0 && udev_monitor_set_receive_buffer_size(monitor, receiveBufferBytes) < 0) {
        // libudev forces the size (SO_RCVBUFFORCE), which needs CAP_NET_ADMIN;
        // without it, ask for it plainly: the kernel caps it at net.core.rmem_max.
        int fd = udev_monitor_get_fd(monitor);
        int granted = 0;
        socklen_t length = sizeof granted;
        ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receiveBufferBytes, sizeof receiveBufferBytes);
        ::getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &granted, &length);
        log::info("uevent receive buffer capped by net.core.rmem_max; an overflow triggers a full rescan",
                  {{"requested", std::to_string(receiveBufferBytes)}, {"granted", std::to_string(granted)}});
    }
    int rc = udev_monitor_enable_receiving(monitor);
    if (rc < 0) {
        error = std::string("cannot enable the uevent monitor: ") + std::strerror(-rc);
        udev_monitor_unref(monitor);
        udev_unref(context);
        return nullptr;
    }
    return std::unique_ptr<UeventMonitor>(new UeventMonitor(loop, context, monitor, std::move(callbacks)));
}

UeventMonitor::UeventMonitor(EventLoop &loop, udev *context, udev_monitor *monitor, Callbacks callbacks)
    : udev_(context), monitor_(monitor), callbacks_(std::move(callbacks)),
      watcher_(std::make_unique<FdWatcher>(loop, udev_monitor_get_fd(monitor)))
{
    watcher_->start([this](int status) {
        if (status >= 0)
            onReadable();
    });
}

UeventMonitor::~UeventMonitor()
{
    watcher_.reset();
    udev_monitor_unref(monitor_);
    udev_unref(udev_);
}

void UeventMonitor::onReadable()
{
    // Drain everything queued: one wake-up can carry a burst.
    while (true) {
        errno = 0;
        udev_device *device = udev_monitor_receive_device(monitor_);
        if (!device) {
            if (errno == ENOBUFS) {
                log::warn("uevent receive buffer overflowed; events were lost, rescanning");
                callbacks_.overflow();
                continue;
            }
            // EAGAIN: drained (a message libudev cannot parse is dropped by it).
            callbacks_.drained();
            return;
        }
        Uevent event;
        auto text = [](const char *s) { return s ? std::string(s) : std::string(); };
        event.action = text(udev_device_get_action(device));
        event.subsystem = text(udev_device_get_subsystem(device));
        event.sysname = text(udev_device_get_sysname(device));
        event.devpath = text(udev_device_get_devpath(device));
        for (udev_list_entry *entry = udev_device_get_properties_list_entry(device); entry;
             entry = udev_list_entry_get_next(entry))
            event.properties[udev_list_entry_get_name(entry)] = text(udev_list_entry_get_value(entry));
        udev_device_unref(device);
        callbacks_.event(event);
    }
}

} // namespace kvgpu
