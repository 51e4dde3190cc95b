// Verbs for the end-to-end stories about the configuration and the metrics:
// writing the configuration the three ways it changes on a real node (an
// editor renaming a new file over it, a kubelet swapping a ConfigMap's
// `..data` symlink, a write in place), scraping /metrics, and running the
// binary's one-shot commands.
#pragma once

#include "free_port.h"
#include "plugin_fixture.h"
#include "timeouts.h"

#include <arpa/inet.h>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace kvgpu::test {

// The body of GET http://127.0.0.1:PORT/PATH; empty when nothing answers.
inline std::string httpGet(int port, const std::string &path)
{
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string response;
    if (::connect(fd, reinterpret_cast<sockaddr *>(&address), sizeof address) == 0) {
        std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
        if (::write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
            char buffer[8192];
            ssize_t n;
            while ((n = ::read(fd, buffer, sizeof buffer)) > 0)
                response.append(buffer, static_cast<size_t>(n));
        }
    }
    ::close(fd);
    size_t body = response.find("\r\n\r\n");
    return body == std::string::npos ? std::string() : response.substr(body + 4);
}

// What a command printed and how it exited.
struct CommandResult {
    int exitCode = -1;
    std::string output; // stdout and stderr
};

inline CommandResult runCommand(const std::string &command)
{
    CommandResult result;
    FILE *pipe = ::popen((command + " 2>&1").c_str(), "r");
    if (!pipe)
        return result;
    std::array<char, 4096> buffer;
    size_t n;
    while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0)
        result.output.append(buffer.data(), n);
    int status = ::pclose(pipe);
    result.exitCode = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return result;
}

inline std::string quoted(const std::string &s) { return "'" + s + "'"; }

// A directory holding config.yaml, changed the ways a node sees it change.
class ConfigDirectory {
public:
    explicit ConfigDirectory(std::string dir) : dir_(std::move(dir)) { std::filesystem::create_directories(dir_); }

    std::string file() const { return dir_ + "/config.yaml"; }

    // An editor's save: a new file renamed over the old one.
    void saveAsEditor(const std::string &text)
    {
        std::string temp = dir_ + "/.config.yaml.swp";
        std::ofstream(temp) << text;
        std::filesystem::rename(temp, file());
    }

    // What the kubelet does to a mounted ConfigMap: the data goes into a new
    // timestamped directory, `..data` is swapped to it by a rename, and the old
    // directory is removed. config.yaml is a symlink through `..data` and never
    // changes itself.
    void updateAsConfigMap(const std::string &text)
    {
        std::string generation = "..2026_12_01_00_00_0" + std::to_string(++generation_);
        std::filesystem::create_directories(dir_ + "/" + generation);
        std::ofstream(dir_ + "/" + generation + "/config.yaml") << text;
        std::filesystem::create_directory_symlink(generation, dir_ + "/..data_tmp");
        std::filesystem::rename(dir_ + "/..data_tmp", dir_ + "/..data");
        if (!std::filesystem::exists(file(), ec_) || !std::filesystem::is_symlink(file()))
            std::filesystem::create_symlink("..data/config.yaml", file());
        if (!previous_.empty())
            std::filesystem::remove_all(dir_ + "/" + previous_);
        previous_ = generation;
    }

    // `echo ... > config.yaml`.
    void writeInPlace(const std::string &text) { std::ofstream(file(), std::ios::trunc) << text; }

private:
    std::string dir_;
    std::string previous_;
    int generation_ = 0;
    std::error_code ec_;
};

inline size_t occurrences(const std::string &text, const std::string &needle)
{
    size_t count = 0;
    for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size()))
        ++count;
    return count;
}

} // namespace kvgpu::test
