#include "monitor_pacing.h"

#include "netlink_overflow.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace kvgpu::test {

namespace {

// umockdev's preload binds each monitor at <root>/event<N>, and umockdev's
// sender globs for "event[0-9]*".
std::vector<std::string> monitorSockets(const std::string &root) {
    std::vector<std::string> sockets;
    std::error_code error;
    for (const auto &entry : std::filesystem::directory_iterator(root, error)) {
        const std::string name = entry.path().filename().string();
        if (name.size() > 5 && name.rfind("event", 0) == 0 && name[5] >= '0' && name[5] <= '9')
            sockets.push_back(entry.path().string());
    }
    return sockets;
}

// True when the socket at `path` can take one more datagram (or is gone, which
// umockdev handles itself); waits for that until `deadline`.
bool waitForRoom(const std::string &path, std::chrono::steady_clock::time_point deadline) {
    const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return true;
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::snprintf(address.sun_path, sizeof address.sun_path, "%s", path.c_str());
    bool room = true;
    // A connected datagram socket polls writable only while its peer's queue
    // has room: the kernel's own flow-control signal.
    if (connect(fd, reinterpret_cast<const sockaddr *>(&address), sizeof address) == 0) {
        pollfd probe{fd, POLLOUT, 0};
        while (true) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            const int ready = poll(&probe, 1, static_cast<int>(std::max<long long>(left.count(), 0)));
            if (ready < 0 && errno == EINTR)
                continue;
            room = ready != 0;
            break;
        }
    }
    close(fd);
    return room;
}

} // namespace

std::vector<std::string> sendPaced(const std::string &umockdevRoot, std::chrono::milliseconds patience,
                                   const std::function<void()> &send) {
    const auto deadline = std::chrono::steady_clock::now() + patience;
    std::vector<std::pair<std::string, std::string>> hidden;
    for (const std::string &path : monitorSockets(umockdevRoot)) {
        if (waitForRoom(path, deadline))
            continue;
        const std::string parked =
            umockdevRoot + "/stalled-" + std::filesystem::path(path).filename().string();
        if (std::rename(path.c_str(), parked.c_str()) == 0) {
            hidden.emplace_back(path, parked);
            fmt::print(stderr,
                       "sim-node: a uevent monitor ({}) has not read for {} ms; it misses this event\n",
                       path, patience.count());
        }
    }
    auto restore = [&hidden] {
        for (const auto &[path, parked] : hidden)
            std::rename(parked.c_str(), path.c_str());
    };
    try {
        send();
    } catch (...) {
        restore();
        throw;
    }
    restore();
    std::vector<std::string> missed;
    for (const auto &[path, parked] : hidden)
        missed.push_back(path);
    return missed;
}

void reportOverflow(const std::string &monitorSocket) {
    // The mark first: the monitor that the wake makes read must find it.
    const std::filesystem::path socketPath(monitorSocket);
    const std::string mark =
        (socketPath.parent_path() / (KVGPU_OVERFLOW_MARK_PREFIX + socketPath.filename().string())).string();
    if (std::FILE *file = std::fopen(mark.c_str(), "w"))
        std::fclose(file);
    else
        fmt::print(stderr, "sim-node: cannot leave the overflow mark {}: {}\n", mark, std::strerror(errno));
    const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return;
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::snprintf(address.sun_path, sizeof address.sun_path, "%s", monitorSocket.c_str());
    // A full queue refuses the wake (EAGAIN), but then the socket is readable
    // already; a monitor that has gone away refuses it too, and needs none.
    static const char kWake[] = KVGPU_OVERFLOW_WAKE;
    (void)sendto(fd, kWake, sizeof kWake - 1, MSG_DONTWAIT, reinterpret_cast<const sockaddr *>(&address),
                 sizeof address);
    close(fd);
}

} // namespace kvgpu::test
