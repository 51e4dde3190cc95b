#include "daemon_process.h"

#include <csignal>
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
        status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return false;
    }
    return r == 0;
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
