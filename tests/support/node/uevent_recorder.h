// Records the uevents a daemon would receive: a libudev "kernel" monitor
// filtered by subsystem, the way the daemon listens.
//
// Create it after the SimNode, in a process running with the umockdev preload
// and UMOCKDEV_DIR set: the preload decides at socket creation where the
// monitor listens. Thread-bound: use it from one thread.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

struct udev;
struct udev_monitor;

namespace kvgpu::test {

struct Uevent {
    std::string action;
    std::string subsystem;
    std::string devpath;
    // udev_device_get_driver() when received: libudev reads the driver link
    // at that moment, so it may be newer than the event; "" when unbound.
    std::string driver;
    // The properties the event carried.
    std::map<std::string, std::string> properties;

    // The last DEVPATH component: a PCI address, a UUID or a group number.
    std::string name() const;
    // "bind pci 0000:65:00.0": short enough to compare whole sequences.
    std::string summary() const;
    // "" when absent.
    std::string property(const std::string &key) const;
    bool has(const std::string &key) const { return properties.count(key) != 0; }
};

std::vector<std::string> summaries(const std::vector<Uevent> &events);

class UeventRecorder {
public:
    // Throws std::runtime_error without the umockdev preload.
    explicit UeventRecorder(std::vector<std::string> subsystems = {"pci", "mdev", "vfio"});
    ~UeventRecorder();

    UeventRecorder(const UeventRecorder &) = delete;
    UeventRecorder &operator=(const UeventRecorder &) = delete;

    std::optional<Uevent> next(std::chrono::milliseconds timeout = std::chrono::seconds(3));
    // Everything that arrives until `quiet` passes without another event. The
    // simulation sends synchronously, so after a verb returns its events are
    // already queued.
    std::vector<Uevent> drain(std::chrono::milliseconds quiet = std::chrono::milliseconds(50));
    // Waits for `count` events (fewer on timeout), then for stragglers.
    std::vector<Uevent> take(std::size_t count,
                             std::chrono::milliseconds timeout = std::chrono::seconds(5));
    // How many reads failed with ENOBUFS: the node told this monitor that it
    // lost events (with netlink_overflow_preload.c loaded).
    int overflows() const { return overflows_; }

private:
    udev *udev_ = nullptr;
    udev_monitor *monitor_ = nullptr;
    int overflows_ = 0;
};

} // namespace kvgpu::test
