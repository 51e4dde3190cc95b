// Replacing a file so that a reader (a container runtime scanning its CDI
// directory, this plugin reading its checkpoint after a crash) sees either
// the old content or the new, never a part: the content goes to a temporary
// file in the same directory, which is flushed to disk and renamed over the
// target, and the directory is flushed so that the rename survives a power
// loss. The temporary name starts with '.' and ends in ".tmp", which CDI
// (only *.json and *.yaml) and the kubelet's plugin watcher both ignore.
//
// Thread safety: free functions with no shared state; concurrent writers of
// one target each write their own temporary file and the last rename wins.
#pragma once

#include "base/result.h"

#include <string>
#include <string_view>

namespace kvgpu::dra {

// Writes `content` to `dir`/`fileName` atomically, with mode 0644. `dir`
// must exist. On failure the target is untouched and no temporary file is
// left behind.
Result<void> writeFileAtomically(const std::string &dir, const std::string &fileName, std::string_view content);

// Removes `dir`/`fileName`; a file that is not there is success.
Result<void> removeFile(const std::string &dir, const std::string &fileName);

} // namespace kvgpu::dra
