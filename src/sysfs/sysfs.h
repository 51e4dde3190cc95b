// Reads sysfs (or a copy of it under another root) with plain POSIX calls, so
// that tests can point it at a temporary tree or a umockdev testbed.
//
// No call ever blocks on what it finds: attributes must be regular files
// (opened with O_NONBLOCK|O_NOFOLLOW after an lstat, see base/regular_file.h),
// links are read with readlink(2), directories are opened with O_DIRECTORY.
// A FIFO, socket, device node, directory or symlink where an attribute should
// be is an error naming the file and what it is, so the caller can skip that
// device and carry on.
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

    // The attribute's contents, trailing newline included; an error names the file.
    Result<std::string> readFile(std::string_view relative) const;
    // Reads at most `maxBytes` bytes of a binary attribute (config space).
    Result<std::string> readBinary(std::string_view relative, size_t maxBytes) const;
    // The target text of a symlink, as readlink(2) returns it.
    Result<std::string> readLink(std::string_view relative) const;
    // Entry names of a directory, sorted, without "." and "..".
    Result<std::vector<std::string>> listDir(std::string_view relative) const;
    // Whether anything (file, link, even a dangling one) is there.
    bool exists(std::string_view relative) const;

private:
    std::string root_;
};

} // namespace kvgpu
