// Small filesystem reads for the self-test's assertions. Reentrant.
#pragma once

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace kvgpu::test::files {

inline std::string text(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream content;
    content << in.rdbuf();
    return content.str();
}

inline bool exists(const std::string &path) { return std::filesystem::exists(path); }

inline bool isLink(const std::string &path) {
    return std::filesystem::is_symlink(std::filesystem::symlink_status(path));
}

inline std::string linkTarget(const std::string &path) {
    std::error_code error;
    return std::filesystem::read_symlink(path, error).string();
}

// Where a path leads once every link is followed; "" when it leads nowhere.
inline std::string resolved(const std::string &path) {
    std::error_code error;
    auto target = std::filesystem::canonical(path, error);
    return error ? "" : target.string();
}

inline std::vector<std::string> list(const std::string &dir) {
    std::vector<std::string> names;
    std::error_code error;
    for (const auto &entry : std::filesystem::directory_iterator(dir, error))
        names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

inline void write(const std::string &path, const std::string &content) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << content;
}

} // namespace kvgpu::test::files
