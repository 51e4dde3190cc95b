// Runs the plugin binary as a child process for end-to-end tests, the demo
// and the benchmarks: its stderr goes to a log file, and the process is killed
// and reaped when the object goes away, so an aborted test never leaves a
// daemon holding the test runner's pipes.
//
// Threading contract: thread-compatible; use one instance from one thread.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace kvgpu::test {

// The plugin binary: $KVGPU_PLUGIN_BINARY (set by meson for every test).
std::string pluginBinary();

class DaemonProcess {
public:
    DaemonProcess(const std::string &binary, const std::vector<std::string> &args, const std::string &logPath);
    ~DaemonProcess();
    DaemonProcess(const DaemonProcess &) = delete;
    DaemonProcess &operator=(const DaemonProcess &) = delete;

    pid_t pid() const { return pid_; }
    bool running();
    void signal(int signum);
    // The exit status (or 128 + signal) once the process ended, nullopt on timeout.
    std::optional<int> waitExit(std::chrono::milliseconds timeout);
    std::string log() const;
    // Waits until the log holds `needle`.
    bool waitForLog(const std::string &needle, std::chrono::milliseconds timeout) const;

    // Resource use read from /proc, for leak checks.
    int openFds() const;
    int threads() const;
    long rssKiB() const;

private:
    pid_t pid_ = -1;
    std::optional<int> status_;
    std::string logPath_;
};

} // namespace kvgpu::test
