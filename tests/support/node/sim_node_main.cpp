// sim-node: runs a simulated GPU node for demos and for tests in other
// processes. It builds the node from a description (see node_description.h),
// emulates the kernel's vGPU create/remove files, prints where the fake /sys and
// /dev live, then takes commands on stdin and prints one line per action.
//
//   sim-node --description demo-node.conf [--ready-file PATH]
//
// A daemon sees the node when started with LD_PRELOAD=libumockdev-preload.so.0,
// the printed UMOCKDEV_DIR, and its sysfs/dev roots pointed at SYSFS_ROOT and
// DEV_ROOT. The process runs until `quit`, SIGINT or SIGTERM; stdin reaching EOF
// does not stop it.
#include "node_description.h"
#include "sim_node.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

namespace {

using kvgpu::test::SimNode;

constexpr const char *kPreload = "libumockdev-preload.so.0";
constexpr const char *kReexecMarker = "SIM_NODE_REEXECUTED";

const char *kCommandHelp =
    "commands: bind <bdf> <driver> | unbind <bdf> | add-gpu <bdf> id=... group=... [...] |\n"
    "  add-function <bdf> ... | add-bridge <path> ... | add-vgpu-type <bdf> <type> ... |\n"
    "  create-vgpu <uuid> parent=<bdf> type=<type> | remove <bdf> | remove-vgpu <uuid> |\n"
    "  delete-vfio-node <N> | create-vfio-node <N> | set-attribute <address> <name> <value> |\n"
    "  change <address> KEY=VALUE... | add-sriov-profile <pf> <id> name=... instances=N |\n"
    "  set-numvfs <pf> <count> | set-vgpu-profile <vf> <id> | add-egm <egmN> gpus=... |\n"
    "  add-egm-gpu <egmN> <bdf> | remove-egm <egmN> | quit";

// umockdev delivers uevents only to processes that carry its preload library,
// so re-execute with it rather than make every user remember.
void ensureUmockdevPreload(char **argv) {
    const char *preload = std::getenv("LD_PRELOAD");
    if (preload && std::strstr(preload, "libumockdev-preload")) {
        unsetenv(kReexecMarker);
        return;
    }
    if (std::getenv(kReexecMarker)) {
        fmt::print(stderr, "sim-node: LD_PRELOAD={} did not take effect; is umockdev installed?\n",
                   kPreload);
        std::exit(1);
    }
    std::string value = kPreload;
    if (preload && *preload)
        value += std::string(":") + preload;
    setenv("LD_PRELOAD", value.c_str(), 1);
    setenv(kReexecMarker, "1", 1);
    execv("/proc/self/exe", argv);
    fmt::print(stderr, "sim-node: cannot re-execute with {}: {}\n", kPreload, std::strerror(errno));
    std::exit(1);
}

// Serialises stdout between the command thread, the kernel emulation thread
// (through the reporter) and the main thread.
class Output {
public:
    void line(const std::string &text) {
        std::lock_guard lock(mutex_);
        std::fputs(text.c_str(), stdout);
        std::fputc('\n', stdout);
        // Flushed per line: the reader is usually a test waiting on a pipe.
        std::fflush(stdout);
    }

private:
    std::mutex mutex_;
};

std::vector<std::string> splitWords(const std::string &line) {
    std::istringstream in(line);
    std::vector<std::string> words;
    for (std::string word; in >> word;)
        words.push_back(word);
    return words;
}

// The rest of `line` after its first `count` words, without leading blanks.
std::string afterWords(const std::string &line, std::size_t count) {
    std::size_t position = 0;
    for (std::size_t word = 0; word <= count; ++word) {
        position = line.find_first_not_of(" \t", position);
        if (position == std::string::npos)
            return "";
        if (word == count)
            break;
        position = line.find_first_of(" \t", position);
        if (position == std::string::npos)
            return "";
    }
    return line.substr(position);
}

int parseGroup(const std::string &text) {
    std::size_t used = 0;
    const int group = std::stoi(text, &used);
    if (used != text.size() || group < 0)
        throw std::runtime_error(fmt::format("'{}' is not an IOMMU group number", text));
    return group;
}

// Runs one command line. Actions report themselves through the node's reporter;
// returns false on `quit`.
bool runCommand(SimNode &node, const std::string &line) {
    std::vector<std::string> words = splitWords(line);
    if (words.empty() || words[0][0] == '#')
        return true;
    const std::string &command = words[0];
    const std::string rest = " " + afterWords(line, 1);
    auto expectWords = [&](std::size_t count, std::string_view usage) {
        if (words.size() != count)
            throw std::runtime_error(fmt::format("usage: {}", usage));
    };
    auto applyItem = [&](const std::string &keyword) {
        // A keyword alone takes the rest of the command line; a whole line is used as it is.
        const std::string text = keyword.find(' ') == std::string::npos ? keyword + rest : keyword;
        auto item = kvgpu::test::parseDescriptionLine(text);
        if (!item)
            throw std::runtime_error(fmt::format("usage: {} <address> key=value...", command));
        kvgpu::test::applyDescriptionItem(node, *item);
    };

    if (command == "quit") {
        return false;
    } else if (command == "bind") {
        expectWords(3, "bind <bdf> <driver>");
        node.bind(words[1], words[2]);
    } else if (command == "unbind") {
        expectWords(2, "unbind <bdf>");
        node.unbind(words[1]);
    } else if (command == "add-gpu") {
        applyItem("gpu");
    } else if (command == "add-function") {
        applyItem("function");
    } else if (command == "add-bridge") {
        applyItem("bridge");
    } else if (command == "add-vgpu-type") {
        applyItem("vgpu-type");
    } else if (command == "create-vgpu") {
        applyItem("vgpu");
    } else if (command == "add-sriov-profile") {
        applyItem("sriov-profile");
    } else if (command == "set-numvfs") {
        expectWords(3, "set-numvfs <pf> <count>");
        applyItem("vfs " + words[1] + " count=" + words[2]);
    } else if (command == "set-vgpu-profile") {
        expectWords(3, "set-vgpu-profile <vf> <type id>");
        applyItem("vf-profile");
    } else if (command == "add-egm") {
        applyItem("egm");
    } else if (command == "add-egm-gpu") {
        expectWords(3, "add-egm-gpu <region> <bdf>");
        node.addEgmGpu(words[1], words[2]);
    } else if (command == "remove-egm") {
        expectWords(2, "remove-egm <region>");
        node.removeEgmRegion(words[1]);
    } else if (command == "remove") {
        expectWords(2, "remove <bdf>");
        node.removePciFunction(words[1]);
    } else if (command == "remove-vgpu") {
        expectWords(2, "remove-vgpu <uuid>");
        node.removeVgpu(words[1]);
    } else if (command == "delete-vfio-node") {
        expectWords(2, "delete-vfio-node <group>");
        node.deleteVfioNode(parseGroup(words[1]));
    } else if (command == "create-vfio-node") {
        expectWords(2, "create-vfio-node <group>");
        node.createVfioNode(parseGroup(words[1]));
    } else if (command == "set-attribute") {
        if (words.size() < 4)
            throw std::runtime_error("usage: set-attribute <address> <name> <value>");
        // Like `echo value > attribute`: the rest of the line plus a newline.
        node.setAttribute(words[1], words[2], afterWords(line, 3) + "\n");
    } else if (command == "change") {
        if (words.size() < 2)
            throw std::runtime_error("usage: change <address> KEY=VALUE...");
        std::vector<std::pair<std::string, std::string>> properties;
        for (std::size_t i = 2; i < words.size(); ++i) {
            const std::size_t equals = words[i].find('=');
            if (equals == std::string::npos)
                throw std::runtime_error(fmt::format("'{}' is not KEY=VALUE", words[i]));
            properties.emplace_back(words[i].substr(0, equals), words[i].substr(equals + 1));
        }
        node.sendChange(words[1], properties);
    } else {
        throw std::runtime_error(fmt::format(
            "unknown command '{}' (known: bind, unbind, add-gpu, add-function, add-bridge, "
            "add-vgpu-type, create-vgpu, remove, remove-vgpu, delete-vfio-node, create-vfio-node, "
            "set-attribute, change, add-sriov-profile, set-numvfs, set-vgpu-profile, add-egm, add-egm-gpu, "
            "remove-egm, quit)",
            command));
    }
    return true;
}

void writeReadyFile(const std::string &path, const std::string &content) {
    // Written under a temporary name and renamed, so that a waiter never
    // reads half a file.
    const std::string temporary = fmt::format("{}.tmp.{}", path, getpid());
    std::FILE *file = std::fopen(temporary.c_str(), "w");
    if (!file || std::fputs(content.c_str(), file) < 0 || std::fclose(file) != 0 ||
        std::rename(temporary.c_str(), path.c_str()) != 0)
        throw std::runtime_error(
            fmt::format("cannot write the ready file {}: {}", path, std::strerror(errno)));
}

} // namespace

int main(int argc, char **argv) {
    CLI::App app{"A simulated GPU node on a umockdev testbed.\n" + std::string(kCommandHelp)};
    std::string descriptionPath;
    std::string readyFile;
    app.add_option("--description", descriptionPath, "node description file")
        ->required()
        ->check(CLI::ExistingFile);
    app.add_option("--ready-file", readyFile,
                   "file to write the UMOCKDEV_DIR/SYSFS_ROOT/DEV_ROOT lines to once the node exists");
    CLI11_PARSE(app, argc, argv);

    ensureUmockdevPreload(argv);

    // Block the stop signals before any thread exists, so that every thread
    // inherits the mask and only sigwait() below sees them.
    sigset_t stopSignals;
    sigemptyset(&stopSignals);
    sigaddset(&stopSignals, SIGINT);
    sigaddset(&stopSignals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stopSignals, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    // A stale value from a parent's testbed must not leak into ours.
    unsetenv("UMOCKDEV_DIR");

    Output output;
    std::unique_ptr<SimNode> node;
    try {
        node = SimNode::fromDescriptionFile(descriptionPath);
        node->setReporter([&output](const std::string &line) { output.line(line); });
        node->startKernelEmulation();
    } catch (const std::exception &e) {
        fmt::print(stderr, "sim-node: {}\n", e.what());
        return 1;
    }

    const std::string environment = fmt::format("UMOCKDEV_DIR={}\nSYSFS_ROOT={}\nDEV_ROOT={}\n",
                                                node->rootDir(), node->sysfsRoot(), node->devRoot());
    output.line(environment.substr(0, environment.size() - 1));
    if (!readyFile.empty()) {
        try {
            writeReadyFile(readyFile, environment);
        } catch (const std::exception &e) {
            fmt::print(stderr, "sim-node: {}\n", e.what());
            return 1;
        }
    }

    // Held while a command runs, so that shutdown never destroys the node
    // under a command.
    std::mutex commandMutex;
    std::thread commands([&] {
        for (std::string line; std::getline(std::cin, line);) {
            std::lock_guard lock(commandMutex);
            try {
                if (!runCommand(*node, line)) {
                    kill(getpid(), SIGTERM);
                    return;
                }
            } catch (const std::exception &e) {
                output.line(fmt::format("error: {}", e.what()));
            }
        }
        // EOF: keep serving until a signal arrives.
    });
    // The reader may sit in a blocking read forever; it is never joined.
    commands.detach();

    int signal = 0;
    sigwait(&stopSignals, &signal);
    // Never released: the reader must not run a command on the destroyed node.
    commandMutex.lock();
    node.reset();
    if (!readyFile.empty())
        std::remove(readyFile.c_str());
    std::fflush(stdout);
    // _exit: the detached reader still references stack objects of main().
    _exit(0);
}
