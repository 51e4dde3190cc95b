#include "kernel_uevents.h"

#include <cerrno>
#include <cstring>
#include <poll.h>
#include <sched.h>
#include <stdexcept>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/netlink.h>

namespace kvgpu::test {

namespace {

int openUeventSocket(unsigned groups)
{
    int fd = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT);
    if (fd < 0)
        return -1;
    sockaddr_nl address{};
    address.nl_family = AF_NETLINK;
    address.nl_groups = groups;
    if (::bind(fd, reinterpret_cast<sockaddr *>(&address), sizeof address) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

// Whether a uevent sent now comes back on group 1 within a second.
std::optional<std::string> kernelRebroadcasts()
{
    int listener = openUeventSocket(1);
    if (listener < 0)
        return std::string("cannot listen to uevents: ") + std::strerror(errno);
    std::optional<std::string> problem;
    try {
        KernelUevents sender;
        sender.send("change", "/devices/virtual/kvgpu-test/probe", "kvgpu-test");
        pollfd readable{.fd = listener, .events = POLLIN, .revents = 0};
        if (::poll(&readable, 1, 1000) != 1)
            problem = "the kernel did not broadcast an injected uevent (Linux 4.18 or later is needed)";
    } catch (const std::exception &e) {
        problem = e.what();
    }
    ::close(listener);
    return problem;
}

} // namespace

std::optional<std::string> enterPrivateNetworkNamespace()
{
    static const std::optional<std::string> problem = []() -> std::optional<std::string> {
        if (::unshare(CLONE_NEWNET) != 0)
            return std::string("cannot enter a private network namespace (CAP_SYS_ADMIN is needed, as root has): ") +
                   std::strerror(errno);
        return kernelRebroadcasts();
    }();
    return problem;
}

KernelUevents::KernelUevents() : fd_(openUeventSocket(0))
{
    if (fd_ < 0)
        throw std::runtime_error(std::string("cannot open the kernel uevent socket: ") + std::strerror(errno));
}

KernelUevents::~KernelUevents() { ::close(fd_); }

void KernelUevents::send(const std::string &action, const std::string &devpath, const std::string &subsystem,
                         const std::vector<std::string> &properties)
{
    // The kernel takes one netlink message (a request of any non-control
    // type) whose payload is the uevent text, and broadcasts the payload.
    std::string payload = action + "@" + devpath;
    payload.push_back('\0');
    auto add = [&payload](const std::string &field) {
        payload += field;
        payload.push_back('\0');
    };
    add("ACTION=" + action);
    add("DEVPATH=" + devpath);
    add("SUBSYSTEM=" + subsystem);
    for (const std::string &property : properties)
        add(property);

    std::string message(NLMSG_HDRLEN, '\0');
    message += payload;
    nlmsghdr header{};
    header.nlmsg_len = static_cast<__u32>(message.size());
    header.nlmsg_type = NLMSG_MIN_TYPE;
    header.nlmsg_flags = NLM_F_REQUEST;
    header.nlmsg_seq = static_cast<__u32>(++sent_);
    std::memcpy(message.data(), &header, sizeof header);

    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK; // port 0: the kernel
    ssize_t n = ::sendto(fd_, message.data(), message.size(), 0, reinterpret_cast<sockaddr *>(&kernel), sizeof kernel);
    if (n != static_cast<ssize_t>(message.size()))
        throw std::runtime_error(std::string("the kernel refused an injected uevent: ") + std::strerror(errno));
}

} // namespace kvgpu::test
