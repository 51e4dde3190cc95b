#include "monitor/uevent_monitor.h"

#include "base/log.h"

#include <cerrno>
#include <cstring>
#include <sys/socket.h>

#include <libudev.h>

namespace kvgpu {

namespace {

std::string errnoText(int error) { return std::strerror(error); }

Uevent toUevent(udev_device *device)
{
    Uevent event;
    auto text = [](const char *s) { return s ? std::string(s) : std::string(); };
    event.action = text(udev_device_get_action(device));
    event.subsystem = text(udev_device_get_subsystem(device));
    event.sysname = text(udev_device_get_sysname(device));
    event.devpath = text(udev_device_get_devpath(device));
    for (udev_list_entry *entry = udev_device_get_properties_list_entry(device); entry;
         entry = udev_list_entry_get_next(entry))
        event.properties[udev_list_entry_get_name(entry)] = text(udev_list_entry_get_value(entry));
    return event;
}

} // namespace

UeventMonitor::UeventMonitor(EventLoop &loop, Config config, Sink &sink)
    : loop_(loop), config_(config), sink_(sink)
{
}

UeventMonitor::~UeventMonitor() { close(); }

Result<int> UeventMonitor::listen()
{
    if (monitor_)
        return Error{"the uevent monitor is already listening"};
    return open();
}

Result<int> UeventMonitor::open()
{
    udev *context = udev_new();
    if (!context)
        return Error{"udev_new failed: " + errnoText(errno)};
    udev_monitor *monitor =
        udev_monitor_new_from_netlink(context, config_.source == Source::Kernel ? "kernel" : "udev");
    if (!monitor) {
        int error = errno;
        udev_unref(context);
        return Error{"cannot open the uevent netlink socket: " + errnoText(error)};
    }
    for (const char *subsystem : {"pci", "mdev", "vfio", "egm"})
        udev_monitor_filter_add_match_subsystem_devtype(monitor, subsystem, nullptr);
    int fd = udev_monitor_get_fd(monitor);
    int requested = config_.receiveBufferBytes;
    if (requested > 0 && udev_monitor_set_receive_buffer_size(monitor, requested) < 0) {
        // libudev forces the size (SO_RCVBUFFORCE), which needs CAP_NET_ADMIN;
        // without it, ask for it plainly: the kernel caps it at net.core.rmem_max.
        ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &requested, sizeof requested);
        int capped = 0;
        socklen_t length = sizeof capped;
        ::getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &capped, &length);
        log::info("uevent receive buffer capped by net.core.rmem_max; an overflow triggers a full rescan",
                  {{"requested", std::to_string(requested)}, {"granted", std::to_string(capped)}});
    }
    int granted = 0;
    socklen_t length = sizeof granted;
    ::getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &granted, &length);
    if (int rc = udev_monitor_enable_receiving(monitor); rc < 0) {
        udev_monitor_unref(monitor);
        udev_unref(context);
        return Error{"cannot enable the uevent monitor: " + errnoText(-rc)};
    }
    udev_ = context;
    monitor_ = monitor;
    watcher_ = std::make_unique<FdWatcher>(loop_, fd);
    if (int rc = watcher_->start([this](int status) { onPoll(status); }); rc < 0) {
        close();
        return Error{std::string("cannot poll the uevent socket: ") + uv_strerror(rc)};
    }
    polling_ = true;
    return granted;
}

void UeventMonitor::close()
{
    watcher_.reset(); // stop polling before the socket goes away
    if (monitor_)
        udev_monitor_unref(monitor_);
    if (udev_)
        udev_unref(udev_);
    monitor_ = nullptr;
    udev_ = nullptr;
    polling_ = false;
}

void UeventMonitor::onPoll(int status)
{
    if (status < 0) {
        // epoll reported the socket's error (ENOBUFS: the buffer overflowed)
        // before a read did, and libuv has stopped the poll handle. The reads
        // below take the error and drain the queue; polling starts again at
        // once (FdWatcher keeps the running callback alive while it is
        // replaced).
        polling_ = false;
        if (!lost_)
            log::warn("uevent receive buffer overflowed; events were lost, rescanning once the queue is drained",
                      {{"reported", uv_strerror(status)}});
        lost_ = true;
        restartPolling();
        if (!monitor_)
            return; // re-opened (and reported) or closed by restartPolling
    }
    readBatch();
}

void UeventMonitor::readBatch()
{
    for (int read = 0; read < kBatchLimit; ++read) {
        errno = 0;
        udev_device *device = udev_monitor_receive_device(monitor_);
        if (!device) {
            int error = errno;
            if (error == ENOBUFS) {
                if (!lost_)
                    log::warn("uevent receive buffer overflowed; events were lost, rescanning once the queue is "
                              "drained");
                lost_ = true;
                continue;
            }
            if (error == EINTR)
                continue;
            if (error == EAGAIN || error == EWOULDBLOCK || error == 0) {
                // Empty (a message libudev cannot parse or that the filter
                // refuses is dropped by it): the kernel delivers again.
                BatchEnd end = lost_ ? BatchEnd::Lost : BatchEnd::Drained;
                lost_ = false;
                sink_.ueventBatchEnd(end);
                return;
            }
            log::error("the uevent socket failed; re-opening it", {{"error", errnoText(error)}});
            lost_ = true;
            reopen();
            return;
        }
        Uevent event = toUevent(device);
        udev_device_unref(device);
        sink_.uevent(event);
    }
    if (!lost_)
        sink_.ueventBatchEnd(BatchEnd::Paused);
}

void UeventMonitor::restartPolling()
{
    if (!monitor_ || polling_)
        return;
    if (int rc = watcher_->start([this](int status) { onPoll(status); }); rc < 0) {
        log::warn("cannot poll the uevent socket again; re-opening it", {{"error", uv_strerror(rc)}});
        reopen();
        return;
    }
    polling_ = true;
}

void UeventMonitor::reopen()
{
    close();
    Result<int> opened = open();
    if (!opened) {
        log::error("cannot re-open the uevent socket: changes are not seen until SIGHUP",
                   {{"error", opened.error()}});
        return;
    }
    log::info("uevent socket re-opened; rescanning", {{"receive_buffer", std::to_string(*opened)}});
    // Whatever happened while there was no socket is unknown.
    lost_ = false;
    sink_.ueventBatchEnd(BatchEnd::Lost);
}

bool UeventMonitor::ensureListening()
{
    if (listening())
        return true;
    if (monitor_)
        restartPolling();
    else
        reopen();
    return listening();
}

} // namespace kvgpu
