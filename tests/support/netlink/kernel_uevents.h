// Uevents sent through the kernel's own uevent socket, so that a daemon under
// test reads them from a real netlink socket with a real receive buffer that
// overflows the way it does on a node.
//
// Since Linux 4.18 the kernel accepts a uevent written to its
// NETLINK_KOBJECT_UEVENT socket by a process with CAP_SYS_ADMIN over the
// network namespace, and broadcasts it to group 1 of that namespace with
// sender port 0, exactly like one of its own; libudev's "kernel" monitor
// takes it as such. Only a private network namespace is safe for this: in the
// host's, udevd and every other listener would act on the fake events. So the
// test process first moves itself into a new one; the daemon it starts
// afterwards inherits it.
//
// Threading contract: enterPrivateNetworkNamespace() must run on the thread
// that later starts the daemon and creates the senders, before other threads
// exist that would stay in the old namespace. A KernelUevents is
// thread-compatible: one instance per sending thread.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace kvgpu::test {

// Moves the calling thread into a new network namespace (once per process)
// and checks that the kernel re-broadcasts an injected uevent there. Returns
// why the kernel path cannot be used (not root, namespaces not allowed, an
// older kernel), or nothing when it can.
std::optional<std::string> enterPrivateNetworkNamespace();

class KernelUevents {
public:
    // Throws std::runtime_error when the socket cannot be opened.
    KernelUevents();
    ~KernelUevents();
    KernelUevents(const KernelUevents &) = delete;
    KernelUevents &operator=(const KernelUevents &) = delete;

    // "action@devpath" with ACTION, DEVPATH, SUBSYSTEM and `properties`
    // ("KEY=VALUE"); the kernel adds SEQNUM. Throws when the kernel refuses it.
    void send(const std::string &action, const std::string &devpath, const std::string &subsystem,
              const std::vector<std::string> &properties = {});
    unsigned long sent() const { return sent_; }

private:
    int fd_ = -1;
    unsigned long sent_ = 0;
};

} // namespace kvgpu::test
