// Runs the plugin binary as a child process for end-to-end tests, the demo
// and the benchmarks: its stderr goes to a log file, and the process is killed
// and reaped when the object goes away, so an aborted test never leaves a
// daemon holding the test runner's pipes. A process that ends by a signal or
// with a status other than 0 is reported on stderr the moment it is reaped
// (unless the object killed it itself), so a failed test says how it died.
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
    // "running", "exited with status 66" or "killed by signal 1 (SIGHUP)".
    std::string state();
    std::string log() const;
    // For a failure message: what state() says, then the log from the first
    // line of a sanitizer report if it holds one, else its last `lines` lines.
    std::string report(size_t lines = 40);
    // Waits until the log holds `needle`.
    bool waitForLog(const std::string &needle, std::chrono::milliseconds timeout) const;

    // The plugin's publish generation: how many times it has handed the
    // device lists to its subscribers (its debug line "published"), 0 before
    // the first. Its own proof that it processed everything before a later
    // event: a test that must show that something did not happen triggers a
    // later event and waits for a generation after it, instead of sleeping.
    // Needs --log-level debug.
    unsigned long publishedGeneration() const;
    // Waits until the generation is `generation` or later.
    bool waitForPublished(unsigned long generation, std::chrono::milliseconds timeout) const;
    // Waits until the log holds `needle` more than `skip` times and a publish
    // follows the first of those after `skip`: the plugin has processed what
    // that line reports, and everything it received before it.
    bool waitForPublishAfter(const std::string &needle, std::chrono::milliseconds timeout, size_t skip = 0) const;
    // How often the log holds `needle`.
    size_t logCount(const std::string &needle) const;

    // Resource use read from /proc, for leak checks.
    int openFds() const;
    int threads() const;
    long rssKiB() const;

private:
    void reaped(int waitStatus);

    pid_t pid_ = -1;
    std::optional<int> status_;
    int waitStatus_ = 0;
    bool killedByUs_ = false;
    std::string logPath_;
};

} // namespace kvgpu::test
