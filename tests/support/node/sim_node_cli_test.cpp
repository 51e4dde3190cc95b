// sim-node as other tests and the demo use it: a separate process that
// announces its roots, takes commands on stdin, reports actions on stdout and
// cleans up after itself.
#include "selftest_files.h"
#include "uevent_recorder.h"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

using namespace kvgpu::test;
using namespace std::chrono_literals;

namespace {

const std::string kL4 = "0000:e1:00.0";

// A temporary directory removed with everything in it.
class TempDir {
public:
    TempDir() {
        std::string pattern = "/tmp/sim-node-cli.XXXXXX";
        REQUIRE(mkdtemp(pattern.data()) != nullptr);
        path_ = pattern;
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    std::string operator/(const std::string &name) const { return path_ + "/" + name; }

private:
    std::string path_;
};

// sim-node as a child with pipes on stdin and stdout. Killed in the
// destructor if still running, so a failed test cannot leave it holding the
// test's stdout (meson would wait for its whole timeout).
class SimNodeProcess {
public:
    // Starts without LD_PRELOAD and UMOCKDEV_DIR, so that sim-node has to
    // re-execute itself with the preload, as it does for a user.
    explicit SimNodeProcess(const std::vector<std::string> &arguments) {
        const char *binary = std::getenv("SIM_NODE");
        REQUIRE_MESSAGE(binary, "SIM_NODE must name the sim-node binary");
        int toChild[2];
        int fromChild[2];
        REQUIRE(pipe2(toChild, O_CLOEXEC) == 0);
        REQUIRE(pipe2(fromChild, O_CLOEXEC) == 0);

        std::vector<std::string> args = {binary};
        args.insert(args.end(), arguments.begin(), arguments.end());
        std::vector<char *> argv;
        for (std::string &arg : args)
            argv.push_back(arg.data());
        argv.push_back(nullptr);
        std::vector<std::string> env;
        for (char **entry = environ; *entry; ++entry) {
            const std::string_view variable(*entry);
            if (!variable.starts_with("LD_PRELOAD=") && !variable.starts_with("UMOCKDEV_DIR="))
                env.emplace_back(variable);
        }
        std::vector<char *> envp;
        for (std::string &variable : env)
            envp.push_back(variable.data());
        envp.push_back(nullptr);

        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, toChild[0], STDIN_FILENO);
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], STDOUT_FILENO);
        const int spawned = posix_spawn(&pid_, binary, &actions, nullptr, argv.data(), envp.data());
        posix_spawn_file_actions_destroy(&actions);
        close(toChild[0]);
        close(fromChild[1]);
        stdin_ = toChild[1];
        stdout_ = fromChild[0];
        REQUIRE_MESSAGE(spawned == 0, "cannot start sim-node: " << std::strerror(spawned));
    }

    ~SimNodeProcess() {
        if (pid_ > 0 && !exitStatus_) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
        closeStdin();
        close(stdout_);
    }

    SimNodeProcess(const SimNodeProcess &) = delete;
    SimNodeProcess &operator=(const SimNodeProcess &) = delete;

    void send(const std::string &line) {
        const std::string text = line + "\n";
        REQUIRE(write(stdin_, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
    }

    void closeStdin() {
        if (stdin_ >= 0)
            close(stdin_);
        stdin_ = -1;
    }

    std::optional<std::string> readLine(std::chrono::milliseconds timeout = 5s) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (true) {
            if (const std::size_t newline = buffer_.find('\n'); newline != std::string::npos) {
                std::string line = buffer_.substr(0, newline);
                buffer_.erase(0, newline + 1);
                return line;
            }
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            pollfd fd{stdout_, POLLIN, 0};
            if (left.count() <= 0 || poll(&fd, 1, static_cast<int>(left.count())) <= 0)
                return std::nullopt;
            char chunk[4096];
            const ssize_t length = read(stdout_, chunk, sizeof chunk);
            if (length <= 0)
                return std::nullopt;
            buffer_.append(chunk, static_cast<std::size_t>(length));
        }
    }

    bool running() {
        if (exitStatus_)
            return false;
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
            exitStatus_ = status;
            return false;
        }
        return true;
    }

    // The exit code, or -1 when it did not exit within `timeout`.
    int waitForExit(std::chrono::milliseconds timeout = 10s) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (running() && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(10ms);
        if (!exitStatus_)
            return -1;
        return WIFEXITED(*exitStatus_) ? WEXITSTATUS(*exitStatus_) : 128 + WTERMSIG(*exitStatus_);
    }

    void signal(int number) { kill(pid_, number); }

private:
    pid_t pid_ = -1;
    int stdin_ = -1;
    int stdout_ = -1;
    std::string buffer_;
    std::optional<int> exitStatus_;
};

std::map<std::string, std::string> waitForReadyFile(const std::string &path, SimNodeProcess &process) {
    for (int attempt = 0; attempt < 1000 && !files::exists(path) && process.running(); ++attempt)
        std::this_thread::sleep_for(10ms);
    REQUIRE_MESSAGE(files::exists(path), "sim-node did not write its ready file");
    std::map<std::string, std::string> values;
    std::istringstream in(files::text(path));
    for (std::string line; std::getline(in, line);)
        values[line.substr(0, line.find('='))] = line.substr(line.find('=') + 1);
    return values;
}

std::string demoDescription() {
    const char *path = std::getenv("SIM_NODE_DEMO");
    REQUIRE_MESSAGE(path, "SIM_NODE_DEMO must name demo-node.conf");
    return path;
}

// Points this process's preload at the child's testbed for as long as it lives.
class ListeningTo {
public:
    explicit ListeningTo(const std::string &umockdevDir) { setenv("UMOCKDEV_DIR", umockdevDir.c_str(), 1); }
    ~ListeningTo() { unsetenv("UMOCKDEV_DIR"); }
};

} // namespace

TEST_CASE("sim-node announces its roots, takes commands and reports every action") {
    TempDir temp;
    SimNodeProcess simNode({"--description", demoDescription(), "--ready-file", temp / "ready"});
    const auto ready = waitForReadyFile(temp / "ready", simNode);
    REQUIRE(ready.count("UMOCKDEV_DIR"));
    REQUIRE(ready.count("SYSFS_ROOT"));
    REQUIRE(ready.count("DEV_ROOT"));
    CHECK(simNode.readLine() == "UMOCKDEV_DIR=" + ready.at("UMOCKDEV_DIR"));
    CHECK(simNode.readLine() == "SYSFS_ROOT=" + ready.at("SYSFS_ROOT"));
    CHECK(simNode.readLine() == "DEV_ROOT=" + ready.at("DEV_ROOT"));
    const std::string sys = ready.at("SYSFS_ROOT");
    const std::string dev = ready.at("DEV_ROOT");
    CHECK(sys == ready.at("UMOCKDEV_DIR") + "/sys");
    CHECK(files::list(sys + "/bus/mdev/devices").size() == 2);
    CHECK(files::exists(dev + "/vfio/20"));

    {
        // A daemon started with the preload and this UMOCKDEV_DIR hears the node.
        ListeningTo listening(ready.at("UMOCKDEV_DIR"));
        UeventRecorder uevents;

        simNode.send("unbind 0000:67:00.1");
        CHECK(simNode.readLine() == "unbound address=0000:67:00.1 driver=vfio-pci");
        CHECK(summaries(uevents.take(1)) == std::vector<std::string>{"unbind pci 0000:67:00.1"});

        simNode.send("bind 0000:67:00.1 snd_hda_intel");
        CHECK(simNode.readLine() == "bound address=0000:67:00.1 driver=snd_hda_intel");
        CHECK(uevents.take(1).at(0).property("DRIVER") == "snd_hda_intel");

        simNode.send("add-gpu 0000:17:00.0 id=10de:1eb8 group=77 numa=0");
        CHECK(simNode.readLine() == "pci added address=0000:17:00.0 id=10de:1eb8 group=77 driver=vfio-pci");
        CHECK(summaries(uevents.take(3)) ==
              std::vector<std::string>{"add pci 0000:17:00.0", "add vfio 77", "bind pci 0000:17:00.0"});
        CHECK(files::exists(dev + "/vfio/77"));

        // The kernel emulation runs: writing a UUID into create makes a vGPU.
        const std::string uuid = "0f0e0d0c-0b0a-4908-8706-050403020100";
        files::write(sys + "/bus/pci/devices/" + kL4 + "/mdev_supported_types/nvidia-592/create", uuid + "\n");
        CHECK(simNode.readLine() ==
              "vgpu created uuid=" + uuid + " type=nvidia-592 parent=0000:e1:00.0");
        CHECK(uevents.take(3).size() == 3);
        files::write(sys + "/bus/mdev/devices/" + uuid + "/remove", "1\n");
        CHECK(simNode.readLine() ==
              "vgpu removed uuid=" + uuid + " type=nvidia-592 parent=0000:e1:00.0");
        CHECK(uevents.take(3).size() == 3);

        simNode.send("delete-vfio-node 21");
        CHECK(simNode.readLine() == "vfio node deleted group=21");
        CHECK(summaries(uevents.take(1)) == std::vector<std::string>{"remove vfio 21"});
        CHECK_FALSE(files::exists(dev + "/vfio/21"));
        simNode.send("create-vfio-node 21");
        CHECK(simNode.readLine() == "vfio node created group=21");
        CHECK(summaries(uevents.take(1)) == std::vector<std::string>{"add vfio 21"});

        simNode.send("set-attribute 0000:ca:00.0 power_state D3cold");
        CHECK(simNode.readLine() == "attribute set address=0000:ca:00.0 name=power_state");
        CHECK(files::text(sys + "/bus/pci/devices/0000:ca:00.0/power_state") == "D3cold\n");
        simNode.send("  set-attribute   0000:ca:00.0 current_link_speed   2.5 GT/s PCIe");
        CHECK(simNode.readLine() == "attribute set address=0000:ca:00.0 name=current_link_speed");
        CHECK(files::text(sys + "/bus/pci/devices/0000:ca:00.0/current_link_speed") == "2.5 GT/s PCIe\n");

        simNode.send("change 0000:ca:00.0 ERROR_EVENT=BEGIN_RECOVERY DEVICE_ONLINE=0");
        CHECK(simNode.readLine() ==
              "change sent address=0000:ca:00.0 ERROR_EVENT=BEGIN_RECOVERY DEVICE_ONLINE=0");
        CHECK(uevents.take(1).at(0).property("ERROR_EVENT") == "BEGIN_RECOVERY");

        simNode.send("remove 0000:17:00.0");
        CHECK(simNode.readLine() == "pci removed address=0000:17:00.0");
        CHECK(summaries(uevents.take(3)) ==
              std::vector<std::string>{"remove vfio 77", "unbind pci 0000:17:00.0", "remove pci 0000:17:00.0"});
    }

    simNode.send("frobnicate 1");
    CHECK(simNode.readLine().value_or("").starts_with("error: unknown command 'frobnicate'"));
    simNode.send("unbind 0000:99:00.0");
    CHECK(simNode.readLine() == "error: no PCI function 0000:99:00.0 on this node");
    simNode.send("add-gpu 0000:18:00.0 group=3");
    CHECK(simNode.readLine() == "error: gpu 0000:18:00.0: missing id=vvvv:dddd");

    simNode.send("quit");
    CHECK(simNode.waitForExit() == 0);
    CHECK_FALSE(files::exists(temp / "ready"));
    CHECK_FALSE(files::exists(ready.at("UMOCKDEV_DIR")));
    CHECK_FALSE(files::exists(dev));
}

TEST_CASE("sim-node emulates SR-IOV vGPU and EGM: profile writes, VF counts, regions") {
    TempDir temp;
    SimNodeProcess simNode({"--description", demoDescription(), "--ready-file", temp / "ready"});
    const auto ready = waitForReadyFile(temp / "ready", simNode);
    for (int i = 0; i < 3; ++i)
        simNode.readLine(); // UMOCKDEV_DIR, SYSFS_ROOT, DEV_ROOT
    const std::string sys = ready.at("SYSFS_ROOT");
    const std::string dev = ready.at("DEV_ROOT");
    const std::string vf = sys + "/bus/pci/devices/0000:41:00.4/nvidia";

    // As `echo 1414 > current_vgpu_type`: the profile is set and the card's catalogs follow.
    files::write(vf + "/current_vgpu_type", "1414\n");
    CHECK(simNode.readLine() == "vgpu profile set vf=0000:41:00.4 type=1414");
    CHECK(files::text(vf + "/creatable_vgpu_types") == "ID    : vGPU Name\n");
    simNode.send("set-vgpu-profile 0000:41:00.4 0");
    CHECK(simNode.readLine() == "vgpu profile set vf=0000:41:00.4 type=0");
    simNode.send("set-vgpu-profile 0000:41:00.5 1428");
    CHECK(simNode.readLine() == "error: 0000:41:00.5 already carries vGPU type 1414; write 0 first (EPERM)");

    simNode.send("set-numvfs 0000:41:00.0 0");
    CHECK(simNode.readLine() == "sriov numvfs pf=0000:41:00.0 count=0");
    CHECK_FALSE(files::exists(sys + "/bus/pci/devices/0000:41:00.4"));
    files::write(sys + "/bus/pci/devices/0000:41:00.0/sriov_numvfs", "2\n");
    CHECK(simNode.readLine() == "sriov numvfs pf=0000:41:00.0 count=2");
    CHECK(files::text(sys + "/bus/pci/devices/0000:41:00.5/nvidia/current_vgpu_type") == "0\n");

    simNode.send("add-egm egm4 gpus=0000:ca:00.0");
    CHECK(simNode.readLine() == "egm region added name=egm4 gpus=1");
    CHECK(files::exists(dev + "/egm4"));
    simNode.send("add-egm-gpu egm4 0000:cb:00.0");
    CHECK(simNode.readLine() == "egm gpu added region=egm4 gpu=0000:cb:00.0");
    CHECK(files::text(sys + "/class/egm/egm4/gpu_devices") == "0000:ca:00.0\n0000:cb:00.0\n");

    simNode.send("quit");
    CHECK(simNode.waitForExit() == 0);
}

TEST_CASE("sim-node keeps running after stdin closes, until SIGTERM") {
    TempDir temp;
    SimNodeProcess simNode({"--description", demoDescription(), "--ready-file", temp / "ready"});
    const auto ready = waitForReadyFile(temp / "ready", simNode);
    simNode.closeStdin();
    std::this_thread::sleep_for(200ms);
    CHECK(simNode.running());
    CHECK(files::exists(ready.at("SYSFS_ROOT")));

    simNode.signal(SIGTERM);
    CHECK(simNode.waitForExit() == 0);
    CHECK_FALSE(files::exists(ready.at("UMOCKDEV_DIR")));
    CHECK_FALSE(files::exists(ready.at("DEV_ROOT")));
}

TEST_CASE("sim-node refuses a broken description and writes no ready file") {
    TempDir temp;
    files::write(temp / "broken.conf", "gpu 0000:65:00.0 group=1\n");
    SimNodeProcess simNode({"--description", temp / "broken.conf", "--ready-file", temp / "ready"});
    CHECK(simNode.waitForExit() == 1);
    CHECK_FALSE(files::exists(temp / "ready"));
}
