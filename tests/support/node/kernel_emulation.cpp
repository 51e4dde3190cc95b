#include "kernel_emulation.h"

#include "node_names.h"
#include "sim_node.h"
#include "sysfs_files.h"

#include <fmt/format.h>

#include <cerrno>
#include <charconv>
#include <algorithm>
#include <cstring>
#include <optional>
#include <stdexcept>

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

namespace kvgpu::test {

namespace {

std::string_view trim(std::string_view text) {
    const std::size_t first = text.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos)
        return {};
    const std::size_t last = text.find_last_not_of(" \t\r\n");
    return text.substr(first, last - first + 1);
}

std::optional<unsigned long> parseUnsigned(std::string_view text) {
    unsigned long value = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size() || text.empty())
        return std::nullopt;
    return value;
}

} // namespace

KernelEmulation::KernelEmulation(SimNode &node) : node_(node) {
    inotifyFd_ = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (inotifyFd_ < 0)
        throw std::runtime_error(fmt::format("inotify_init1: {}", std::strerror(errno)));
    stopFd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (stopFd_ < 0) {
        const int error = errno;
        close(inotifyFd_);
        throw std::runtime_error(fmt::format("eventfd: {}", std::strerror(error)));
    }
    thread_ = std::thread([this] { run(); });
}

KernelEmulation::~KernelEmulation() {
    const std::uint64_t one = 1;
    if (write(stopFd_, &one, sizeof one) != sizeof one)
        fmt::print(stderr, "sim-node: cannot wake the kernel emulation: {}\n", std::strerror(errno));
    thread_.join();
    close(stopFd_);
    close(inotifyFd_);
}

void KernelEmulation::watchVgpuType(const std::string &typeDir, const std::string &parent,
                                    const std::string &typeId) {
    addWatch(Target{Target::Kind::VgpuType, typeDir, parent, typeId});
}

void KernelEmulation::watchVgpu(const std::string &vgpuDir, const std::string &uuid) {
    addWatch(Target{Target::Kind::Vgpu, vgpuDir, "", uuid});
}

void KernelEmulation::watchSriovPf(const std::string &pfDir, const std::string &pf) {
    addWatch(Target{Target::Kind::SriovPf, pfDir, "", pf});
}

void KernelEmulation::watchVgpuProfile(const std::string &nvidiaDir, const std::string &vf) {
    addWatch(Target{Target::Kind::VgpuProfile, nvidiaDir, "", vf});
}

void KernelEmulation::addWatch(Target target) {
    // A directory watch: sysfs attribute files are rewritten in place, and
    // IN_CLOSE_WRITE names the file, so one watch covers create or remove.
    const int wd = inotify_add_watch(inotifyFd_, target.dir.c_str(), IN_CLOSE_WRITE | IN_ONLYDIR);
    if (wd < 0)
        throw std::runtime_error(
            fmt::format("cannot watch {}: {}", target.dir, std::strerror(errno)));
    std::lock_guard lock(mutex_);
    watches_[wd] = std::move(target);
}

void KernelEmulation::run() {
    pollfd fds[2] = {{inotifyFd_, POLLIN, 0}, {stopFd_, POLLIN, 0}};
    alignas(inotify_event) char buffer[16 * 1024];
    while (true) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            fmt::print(stderr, "sim-node: kernel emulation stops: poll: {}\n", std::strerror(errno));
            return;
        }
        if (fds[1].revents)
            return;
        const ssize_t length = read(inotifyFd_, buffer, sizeof buffer);
        if (length <= 0)
            continue;
        for (ssize_t offset = 0; offset < length;) {
            const auto *event = reinterpret_cast<const inotify_event *>(buffer + offset);
            offset += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
            std::optional<Target> target;
            {
                std::lock_guard lock(mutex_);
                auto found = watches_.find(event->wd);
                if (found == watches_.end())
                    continue;
                // The directory is gone (vGPU removed, driver unbound).
                if (event->mask & IN_IGNORED) {
                    watches_.erase(found);
                    continue;
                }
                target = found->second;
            }
            if ((event->mask & IN_CLOSE_WRITE) && event->len > 0)
                handleWrite(*target, event->name);
        }
    }
}

void KernelEmulation::handleWrite(const Target &target, std::string_view fileName) {
    const bool isCreate = target.kind == Target::Kind::VgpuType && fileName == "create";
    const bool isRemove = target.kind == Target::Kind::Vgpu && fileName == "remove";
    const bool isNumVfs = target.kind == Target::Kind::SriovPf && fileName == "sriov_numvfs";
    const bool isProfile = target.kind == Target::Kind::VgpuProfile && fileName == "current_vgpu_type";
    if (!isCreate && !isRemove && !isNumVfs && !isProfile)
        return;
    const std::string path = target.dir + "/" + std::string(fileName);
    std::string content;
    try {
        content = readFile(path);
    } catch (const std::exception &) {
        return; // removed meanwhile: nothing left to act on
    }
    const std::string_view value = trim(content);
    // No exception may leave this thread: bad input is the writer's problem,
    // which the kernel would answer with EINVAL.
    try {
        if (isNumVfs || isProfile) {
            // The node writes these files itself too; an unchanged value is a no-op there.
            const std::optional<unsigned long> number = parseUnsigned(value);
            if (!number || *number > 0xffffffffUL) {
                fmt::print(stderr, "sim-node: ignoring '{}' written to {}: not a number\n", value, path);
                return;
            }
            if (isNumVfs)
                node_.setNumVfs(target.id, static_cast<int>(std::min(*number, 1024UL)));
            else
                node_.setVgpuProfile(target.id, static_cast<std::uint32_t>(*number));
        } else if (isCreate) {
            if (value.empty())
                return;
            if (!isUuid(value)) {
                fmt::print(stderr, "sim-node: ignoring '{}' written to {}: not a UUID\n", value, path);
                return;
            }
            node_.createVgpu(target.parent, target.id, std::string(value));
        } else {
            const std::optional<unsigned long> number = parseUnsigned(value);
            if (!number) {
                fmt::print(stderr, "sim-node: ignoring '{}' written to {}: not a number\n", value,
                           path);
                return;
            }
            if (*number != 0)
                node_.removeVgpu(target.id);
        }
    } catch (const std::exception &e) {
        fmt::print(stderr, "sim-node: ignoring '{}' written to {}: {}\n", value, path, e.what());
    }
}

} // namespace kvgpu::test
