#include "uevent_recorder.h"

#include <libudev.h>

#include <poll.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace kvgpu::test {

std::string Uevent::name() const { return devpath.substr(devpath.rfind('/') + 1); }

std::string Uevent::summary() const { return action + " " + subsystem + " " + name(); }

std::string Uevent::property(const std::string &key) const {
    auto found = properties.find(key);
    return found == properties.end() ? "" : found->second;
}

std::vector<std::string> summaries(const std::vector<Uevent> &events) {
    std::vector<std::string> lines;
    for (const Uevent &event : events)
        lines.push_back(event.summary());
    return lines;
}

UeventRecorder::UeventRecorder(std::vector<std::string> subsystems) {
    // Without the preload this would be a real netlink socket listening to the
    // host, and every test would fail for a confusing reason.
    const char *preload = std::getenv("LD_PRELOAD");
    if (!preload || !std::strstr(preload, "libumockdev-preload"))
        throw std::runtime_error("run with LD_PRELOAD=libumockdev-preload.so.0 (meson test does)");
    udev_ = udev_new();
    monitor_ = udev_ ? udev_monitor_new_from_netlink(udev_, "kernel") : nullptr;
    if (!monitor_)
        throw std::runtime_error("cannot create a udev monitor");
    for (const std::string &subsystem : subsystems)
        udev_monitor_filter_add_match_subsystem_devtype(monitor_, subsystem.c_str(), nullptr);
    if (udev_monitor_enable_receiving(monitor_) < 0)
        throw std::runtime_error("cannot enable the udev monitor");
}

UeventRecorder::~UeventRecorder() {
    udev_monitor_unref(monitor_);
    udev_unref(udev_);
}

std::optional<Uevent> UeventRecorder::next(std::chrono::milliseconds timeout) {
    pollfd fd{udev_monitor_get_fd(monitor_), POLLIN, 0};
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() < 0 || poll(&fd, 1, static_cast<int>(left.count())) <= 0)
            return std::nullopt;
        errno = 0;
        udev_device *device = udev_monitor_receive_device(monitor_);
        if (!device) {
            if (errno == ENOBUFS)
                ++overflows_;
            continue; // filtered out or malformed, or the loss reported
        }
        Uevent event;
        auto text = [](const char *value) { return std::string(value ? value : ""); };
        event.action = text(udev_device_get_action(device));
        event.subsystem = text(udev_device_get_subsystem(device));
        event.devpath = text(udev_device_get_devpath(device));
        udev_list_entry *entry = nullptr;
        udev_list_entry_foreach(entry, udev_device_get_properties_list_entry(device))
            event.properties[udev_list_entry_get_name(entry)] = text(udev_list_entry_get_value(entry));
        // Only after the properties: libudev answers this from the driver link
        // as it is now, and adds that as a DRIVER property the event never had.
        event.driver = text(udev_device_get_driver(device));
        udev_device_unref(device);
        return event;
    }
}

std::vector<Uevent> UeventRecorder::drain(std::chrono::milliseconds quiet) {
    std::vector<Uevent> events;
    while (auto event = next(quiet))
        events.push_back(std::move(*event));
    return events;
}

std::vector<Uevent> UeventRecorder::take(std::size_t count, std::chrono::milliseconds timeout) {
    std::vector<Uevent> events;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (events.size() < count) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        auto event = next(std::max(left, std::chrono::milliseconds(0)));
        if (!event)
            break;
        events.push_back(std::move(*event));
    }
    for (Uevent &straggler : drain())
        events.push_back(std::move(straggler));
    return events;
}

} // namespace kvgpu::test
