#include "metrics/metrics_server.h"

#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>

#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <prometheus/exposer.h>
#include <prometheus/registry.h>

namespace kvgpu {

namespace {

// The address a local client reaches a server bound to `address` at: the
// host itself, or loopback for a wildcard.
std::string localHostOf(const std::string &address)
{
    std::string host = address.substr(0, address.rfind(':'));
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    if (host.empty() || host == "0.0.0.0")
        return "127.0.0.1";
    if (host == "::")
        return "::1";
    return host;
}

// Opens a TCP connection to host:port and hangs up at once.
void knock(const std::string &host, int port)
{
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    addrinfo *found = nullptr;
    if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0 || !found)
        return;
    int fd = ::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        // Bounds a connect to an address that does not answer.
        timeval timeout{0, 100 * 1000};
        ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
        static_cast<void>(::connect(fd, found->ai_addr, found->ai_addrlen));
        ::close(fd);
    }
    ::freeaddrinfo(found);
}

} // namespace

Result<std::unique_ptr<MetricsServer>> MetricsServer::start(const std::string &address,
                                                            std::shared_ptr<prometheus::Registry> registry)
{
    try {
        // One worker thread: a scrape is a few kilobytes, and Prometheus scrapes
        // one target at a time.
        auto exposer = std::make_unique<prometheus::Exposer>(address, 1);
        exposer->RegisterCollectable(registry);
        return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(exposer), std::move(registry),
                                                                localHostOf(address)));
    } catch (const std::exception &e) {
        // civetweb reports a port in use or a bad address by throwing.
        return Error{e.what()};
    }
}

MetricsServer::MetricsServer(std::unique_ptr<prometheus::Exposer> exposer,
                             std::shared_ptr<prometheus::Registry> registry, std::string localHost)
    : exposer_(std::move(exposer)), registry_(std::move(registry)), localHost_(std::move(localHost))
{
}

MetricsServer::~MetricsServer()
{
    // civetweb's listening thread waits for connections in poll() slices of two
    // seconds and sees that it is asked to stop only between slices, so the
    // exposer's destructor alone takes up to 2 s (most of a SIGTERM's time). A
    // connection ends the slice at once. The stop flag is set inside the
    // destructor, so a waker knocks until the destructor has returned; a knock
    // that comes before the flag is accepted and hung up like any client.
    const int listening = port();
    std::mutex mutex;
    std::condition_variable changed;
    bool stopped = false;
    std::thread waker;
    if (listening > 0)
        waker = std::thread([&, listening] {
            std::unique_lock lock(mutex);
            while (!stopped) {
                lock.unlock();
                knock(localHost_, listening);
                lock.lock();
                changed.wait_for(lock, std::chrono::milliseconds(5), [&] { return stopped; });
            }
        });
    exposer_.reset();
    {
        std::lock_guard lock(mutex);
        stopped = true;
    }
    changed.notify_all();
    if (waker.joinable())
        waker.join();
}

int MetricsServer::port() const
{
    std::vector<int> ports = exposer_->GetListeningPorts();
    return ports.empty() ? 0 : ports.front();
}

} // namespace kvgpu
