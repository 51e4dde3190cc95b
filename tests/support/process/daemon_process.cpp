#include "daemon_process.h"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace kvgpu::test {

std::string pluginBinary()
{
    const char *path = std::getenv("KVGPU_PLUGIN_BINARY");
    if (!path || !*path)
        throw std::runtime_error("KVGPU_PLUGIN_BINARY is not set");
    return path;
}

DaemonProcess::DaemonProcess(const std::string &binary, const std::vector<std::string> &args,
                             const std::string &logPath)
    : logPath_(logPath)
{
    std::vector<std::string> argvStorage{binary};
    argvStorage.insert(argvStorage.end(), args.begin(), args.end());
    std::vector<char *> argv;
    for (auto &a : argvStorage)
        argv.push_back(a.data());
    argv.push_back(nullptr);

    int logFd = ::open(logPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (logFd < 0)
        throw std::runtime_error("cannot open " + logPath + ": " + std::strerror(errno));
    // A signal sent the moment the child exists must meet the default
    // disposition, not the test runner's own handlers (doctest catches
    // SIGTERM) in a child that has not exec'd yet: block every signal across
    // fork, reset the dispositions in the child, then unblock.
    sigset_t all, previous;
    sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &previous);
    pid_ = ::fork();
    if (pid_ < 0) {
        int error = errno;
        ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
        throw std::runtime_error(std::string("fork: ") + std::strerror(error));
    }
    if (pid_ == 0) {
        for (int signum = 1; signum < NSIG; ++signum)
            ::signal(signum, SIG_DFL);
        ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
        int devnull = ::open("/dev/null", O_RDWR);
        ::dup2(devnull, STDIN_FILENO);
        ::dup2(logFd, STDOUT_FILENO);
        ::dup2(logFd, STDERR_FILENO);
        ::execv(binary.c_str(), argv.data());
        std::_Exit(127);
    }
    ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    ::close(logFd);
}

DaemonProcess::~DaemonProcess()
{
    if (running()) {
        killedByUs_ = true;
        ::kill(pid_, SIGKILL);
        waitExit(std::chrono::seconds(5));
    }
}

bool DaemonProcess::running()
{
    if (status_)
        return false;
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
        reaped(status);
        return false;
    }
    return r == 0;
}

void DaemonProcess::reaped(int waitStatus)
{
    waitStatus_ = waitStatus;
    status_ = WIFEXITED(waitStatus) ? WEXITSTATUS(waitStatus) : 128 + WTERMSIG(waitStatus);
    if (*status_ != 0 && !killedByUs_)
        std::fprintf(stderr, "daemon pid %d (%s): %s\n", static_cast<int>(pid_), logPath_.c_str(), state().c_str());
}

std::string DaemonProcess::state()
{
    if (running())
        return "running";
    if (WIFEXITED(waitStatus_))
        return "exited with status " + std::to_string(WEXITSTATUS(waitStatus_));
    const int signum = WTERMSIG(waitStatus_);
    const char *name = ::sigabbrev_np(signum);
    return "killed by signal " + std::to_string(signum) + (name ? std::string(" (SIG") + name + ")" : std::string()) +
           (WCOREDUMP(waitStatus_) ? ", core dumped" : "");
}

std::string DaemonProcess::report(size_t lines)
{
    const std::string text = log();
    // Each step moves `start` back to the newline before one more line; the
    // newline that ends the log ends its last line and starts none.
    size_t start = text.size() - (!text.empty() && text.back() == '\n' ? 1 : 0);
    bool whole = true;
    for (size_t line = 0; line < lines && start > 0; ++line) {
        start = text.rfind('\n', start - 1);
        if (start == std::string::npos)
            break;
        whole = false;
    }
    if (start == std::string::npos || whole)
        start = 0;
    else
        ++start;
    // A sanitizer's report is what the reader needs, and it is long: from its
    // first line on, whatever the tail holds.
    for (const char *mark : {"WARNING: ThreadSanitizer", "ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                             "runtime error:"}) {
        const size_t at = text.find(mark);
        if (at != std::string::npos && at < start)
            start = text.rfind('\n', at) == std::string::npos ? 0 : text.rfind('\n', at) + 1;
    }
    return "the plugin is " + state() + "; the end of its log (" + logPath_ + "):\n" + text.substr(start);
}

void DaemonProcess::signal(int signum)
{
    if (running())
        ::kill(pid_, signum);
}

std::optional<int> DaemonProcess::waitExit(std::chrono::milliseconds timeout)
{
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (running()) {
        if (std::chrono::steady_clock::now() > deadline)
            return std::nullopt;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return status_;
}

std::string DaemonProcess::log() const
{
    std::ifstream in(logPath_);
    std::stringstream out;
    out << in.rdbuf();
    return out.str();
}

bool DaemonProcess::waitForLog(const std::string &needle, std::chrono::milliseconds timeout) const
{
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (log().find(needle) == std::string::npos) {
        if (std::chrono::steady_clock::now() > deadline)
            return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
}

namespace {
const std::string kPublished = "msg=published generation=";
} // namespace

unsigned long DaemonProcess::publishedGeneration() const
{
    const std::string text = log();
    const size_t at = text.rfind(kPublished);
    return at == std::string::npos ? 0 : std::strtoul(text.c_str() + at + kPublished.size(), nullptr, 10);
}

bool DaemonProcess::waitForPublishAfter(const std::string &needle, std::chrono::milliseconds timeout,
                                        size_t skip) const
{
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
        const std::string text = log();
        size_t at = text.find(needle);
        for (size_t seen = 0; seen < skip && at != std::string::npos; ++seen)
            at = text.find(needle, at + needle.size());
        if (at != std::string::npos && text.find(kPublished, at + needle.size()) != std::string::npos)
            return true;
        if (std::chrono::steady_clock::now() > deadline)
            return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

size_t DaemonProcess::logCount(const std::string &needle) const
{
    const std::string text = log();
    size_t count = 0;
    for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size()))
        ++count;
    return count;
}

bool DaemonProcess::waitForPublished(unsigned long generation, std::chrono::milliseconds timeout) const
{
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (publishedGeneration() < generation) {
        if (std::chrono::steady_clock::now() > deadline)
            return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
}

int DaemonProcess::openFds() const
{
    std::string dir = "/proc/" + std::to_string(pid_) + "/fd";
    DIR *d = ::opendir(dir.c_str());
    if (!d)
        return -1;
    int n = 0;
    while (dirent *e = ::readdir(d))
        if (e->d_name[0] != '.')
            ++n;
    ::closedir(d);
    return n;
}

namespace {
long statusField(pid_t pid, const std::string &key)
{
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(key + ":", 0) == 0)
            return std::strtol(line.c_str() + key.size() + 1, nullptr, 10);
    return -1;
}
} // namespace

int DaemonProcess::threads() const { return static_cast<int>(statusField(pid_, "Threads")); }

long DaemonProcess::rssKiB() const { return statusField(pid_, "VmRSS"); }

} // namespace kvgpu::test
