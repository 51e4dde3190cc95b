// Reads sysfs (or a copy of it under another root) with plain POSIX calls, so
// that tests can point it at a temporary tree or a umockdev testbed.
//
// Thread safety: immutable after construction; reentrant. Each call does its own I/O.
#pragma once

#include "base/result.h"

#include <string>
#include <string_view>
#include <vector>

namespace kvgpu {

class SysfsTree {
public:
    explicit SysfsTree(std::string root) : root_(std::move(root)) {}

    const std::string &root() const { return root_; }
    // root + "/" + relative (relative must not start with '/').
    std::string path(std::string_view relative) const;

    // The file's contents, trailing newline included; an error names the file.
    Result<std::string> readFile(std::string_view relative) const;
    // Reads at most `maxBytes` bytes of a binary file (config space).
    Result<std::string> readBinary(std::string_view relative, size_t maxBytes) const;
    // The target text of a symlink, as readlink(2) returns it.
    Result<std::string> readLink(std::string_view relative) const;
    // Entry names of a directory, sorted, without "." and "..".
    Result<std::vector<std::string>> listDir(std::string_view relative) const;
    bool exists(std::string_view relative) const;

private:
    std::string root_;
};

} // namespace kvgpu
