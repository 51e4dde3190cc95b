// sim-kubelet: a TestKubelet as a process, for demos and manual testing of the
// device plugin without a real node. It logs what a kubelet would see, one
// timestamped line per event, and takes a few commands on stdin.
//
// Signals are blocked in every thread and read from a signalfd by the main
// loop, so SIGINT and SIGTERM end the program through the same orderly path as
// "quit", with the kubelet stopped and every thread joined.

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <iterator>
#include <mutex>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "api.pb.h"
#include "test_kubelet.h"

namespace {

using kvgpu::test::TestKubelet;

std::mutex outputMutex;

// Prints one event line, prefixed with the local wall-clock time, and flushes
// it so that a reader of a pipe sees the event as it happens.
void emit(const std::string& line)
{
    const auto now = std::chrono::system_clock::now();
    const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
    const auto millis =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() %
        1000;
    std::tm local{};
    localtime_r(&seconds, &local);
    std::lock_guard lock(outputMutex);
    fmt::print("{:02}:{:02}:{:02}.{:03} {}\n", local.tm_hour, local.tm_min, local.tm_sec, millis,
               line);
    std::fflush(stdout);
}

std::string describeDevices(const std::vector<TestKubelet::Device>& devices)
{
    size_t healthy = 0;
    std::vector<std::string> parts;
    for (const TestKubelet::Device& device : devices) {
        if (device.health == "Healthy")
            ++healthy;
        std::string part = device.id + " " + device.health;
        if (!device.numaNodes.empty())
            part += " numa=" + fmt::format("{}", fmt::join(device.numaNodes, "+"));
        parts.push_back(std::move(part));
    }
    return fmt::format("devices={} healthy={} [{}]", devices.size(), healthy,
                       fmt::join(parts, ", "));
}

std::string describeAllocation(const v1beta1::AllocateResponse& response)
{
    std::vector<std::string> containers;
    for (const v1beta1::ContainerAllocateResponse& container : response.container_responses()) {
        std::vector<std::string> envs;
        for (const auto& [key, value] : container.envs())
            envs.push_back(key + "=" + value);
        std::sort(envs.begin(), envs.end());
        std::vector<std::string> devices;
        for (const v1beta1::DeviceSpec& spec : container.devices())
            devices.push_back(fmt::format("{}->{} {}", spec.host_path(), spec.container_path(),
                                          spec.permissions()));
        std::vector<std::string> mounts;
        for (const v1beta1::Mount& mount : container.mounts())
            mounts.push_back(fmt::format("{}->{}{}", mount.host_path(), mount.container_path(),
                                         mount.read_only() ? " ro" : ""));
        std::vector<std::string> annotations;
        for (const auto& [key, value] : container.annotations())
            annotations.push_back(key + "=" + value);
        std::sort(annotations.begin(), annotations.end());
        std::vector<std::string> cdi;
        for (const v1beta1::CDIDevice& device : container.cdi_devices())
            cdi.push_back(device.name());
        containers.push_back(fmt::format("envs=[{}] devices=[{}] mounts=[{}] annotations=[{}] "
                                         "cdi=[{}]",
                                         fmt::join(envs, ", "), fmt::join(devices, ", "),
                                         fmt::join(mounts, ", "), fmt::join(annotations, ", "),
                                         fmt::join(cdi, ", ")));
    }
    return fmt::format("{}", fmt::join(containers, " | "));
}

std::vector<std::string> splitList(const std::string& text)
{
    std::vector<std::string> items;
    std::stringstream stream(text);
    std::string item;
    while (std::getline(stream, item, ','))
        if (!item.empty())
            items.push_back(item);
    return items;
}

// Runs one stdin command; returns false when the program should end.
bool runCommand(TestKubelet& kubelet, const std::string& line)
{
    std::istringstream input(line);
    std::vector<std::string> words{std::istream_iterator<std::string>(input),
                                   std::istream_iterator<std::string>()};
    if (words.empty())
        return true;
    const std::string& command = words[0];
    if (command == "quit")
        return false;
    if (command == "restart") {
        emit("restarting");
        kubelet.restart();
        emit(fmt::format("restarted generation={} socket={}", kubelet.restarts(),
                         kubelet.socketPath()));
        return true;
    }
    if (command == "allocate") {
        if (words.size() != 3) {
            emit("error usage: allocate <resource> <id>[,<id>...]");
            return true;
        }
        v1beta1::AllocateResponse response;
        grpc::Status status = kubelet.allocate(words[1], {splitList(words[2])}, &response);
        if (status.ok())
            emit(fmt::format("allocate resource={} ids={} ok {}", words[1], words[2],
                             describeAllocation(response)));
        else
            emit(fmt::format("allocate resource={} ids={} error {}: {}", words[1], words[2],
                             kvgpu::test::statusCodeName(status.error_code()),
                             status.error_message()));
        return true;
    }
    emit(fmt::format("error unknown command \"{}\" (allocate, restart, quit)", command));
    return true;
}

// Feeds complete lines from stdin to runCommand; returns false on "quit".
bool drainStdin(TestKubelet& kubelet, std::string& pending, bool& stdinOpen)
{
    char buffer[4096];
    ssize_t n = read(STDIN_FILENO, buffer, sizeof buffer);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return true;
    if (n <= 0) {
        // Without stdin the simulator keeps serving until a signal arrives.
        stdinOpen = false;
        if (!pending.empty())
            return runCommand(kubelet, std::exchange(pending, {}));
        return true;
    }
    pending.append(buffer, static_cast<size_t>(n));
    size_t newline;
    while ((newline = pending.find('\n')) != std::string::npos) {
        std::string line = pending.substr(0, newline);
        pending.erase(0, newline + 1);
        if (!runCommand(kubelet, line))
            return false;
    }
    return true;
}

} // namespace

int main(int argc, char** argv)
{
    CLI::App app{"sim-kubelet: a simulated kubelet for device plugins.\n\n"
                 "Serves the v1beta1 Registration service on <plugin-dir>/kubelet.sock and, like "
                 "the real kubelet, calls each registering plugin back, watches its "
                 "ListAndWatch stream and logs every event to stdout as one line with a "
                 "HH:MM:SS.mmm timestamp (register, rejected, update, stream-ended).\n\n"
                 "Commands on stdin, one per line:\n"
                 "  allocate <resource> <id>[,<id>...]  call Allocate for one container and "
                 "print the response\n"
                 "  restart                             restart like the kubelet: delete every "
                 "socket in the plugin dir, re-create kubelet.sock, forget registrations\n"
                 "  quit                                stop and exit\n"
                 "End of stdin does not stop the simulator (it can run with stdin from "
                 "/dev/null); SIGINT or SIGTERM stops it cleanly."};
    std::string pluginDir;
    app.add_option("--plugin-dir", pluginDir, "Device plugin directory (holds kubelet.sock)")
        ->required();
    CLI11_PARSE(app, argc, argv);

    // Block the signals before any gRPC thread exists, so every thread inherits
    // the mask and only the signalfd below receives them.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    if (pthread_sigmask(SIG_BLOCK, &signals, nullptr) != 0) {
        fmt::print(stderr, "sim-kubelet: cannot block signals\n");
        return 1;
    }
    const int signalFd = signalfd(-1, &signals, SFD_CLOEXEC);
    if (signalFd < 0) {
        fmt::print(stderr, "sim-kubelet: signalfd failed: {}\n", std::strerror(errno));
        return 1;
    }

    TestKubelet kubelet(pluginDir);
    kubelet.onRegistration([](const TestKubelet::Registration& r) {
        emit(fmt::format("register resource={} endpoint={} version={} preferred={} prestart={} "
                         "generation={}",
                         r.resource, r.endpoint, r.version, r.preferredAllocation,
                         r.preStartRequired, r.generation));
    });
    kubelet.onRejection([](const TestKubelet::Rejection& r) {
        emit(fmt::format("rejected resource={} endpoint={} version={} code={} reason={}",
                         r.resource, r.endpoint, r.version,
                         kvgpu::test::statusCodeName(r.code), r.message));
    });
    kubelet.onUpdate([](const std::string& resource, const TestKubelet::Update& update) {
        emit(fmt::format("update resource={} stream={} {}", resource, update.stream,
                         describeDevices(update.devices)));
    });
    kubelet.onStreamEnded([](const std::string& resource, int stream, const grpc::Status& s) {
        emit(fmt::format("stream-ended resource={} stream={} status={}{}{}", resource, stream,
                         kvgpu::test::statusCodeName(s.error_code()),
                         s.error_message().empty() ? "" : ": ", s.error_message()));
    });

    try {
        kubelet.start();
    } catch (const std::exception& e) {
        fmt::print(stderr, "sim-kubelet: {}\n", e.what());
        return 1;
    }
    emit(fmt::format("listening socket={}", kubelet.socketPath()));

    std::string pending;
    bool stdinOpen = true;
    bool running = true;
    while (running) {
        pollfd fds[2] = {{signalFd, POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
        const nfds_t count = stdinOpen ? 2 : 1;
        if (poll(fds, count, -1) < 0) {
            if (errno == EINTR)
                continue;
            fmt::print(stderr, "sim-kubelet: poll failed: {}\n", std::strerror(errno));
            break;
        }
        if (fds[0].revents & POLLIN) {
            signalfd_siginfo info{};
            if (read(signalFd, &info, sizeof info) == static_cast<ssize_t>(sizeof info))
                emit(fmt::format("signal {}", info.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM"));
            running = false;
        } else if (stdinOpen && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            running = drainStdin(kubelet, pending, stdinOpen);
        }
    }

    kubelet.stop();
    emit("stopped");
    close(signalFd);
    return 0;
}
