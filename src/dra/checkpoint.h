// What this plugin has prepared, kept on disk so that a restart of the
// plugin (or of the kubelet) finds it: a repeated NodePrepareResources gets
// the same CDI ids, a NodeUnprepareResources after a restart knows which
// files to remove, and a device prepared for one claim is refused to another.
//
// The file is JSON: {"version": 1, "checksum": "<16 hex digits>", "claims":
// {<uid>: {...}}}; the checksum (FNV-1a 64 of the claims' compact JSON)
// catches a file that was cut or edited. Saving is atomic (atomic_file.h).
//
// Thread safety: the functions touch only the named file; a Checkpoint is a
// plain value. Callers serialize saves (prepare and unprepare are serialized).
#pragma once

#include "base/result.h"

#include <map>
#include <string>
#include <vector>

namespace kvgpu::dra {

inline constexpr int kCheckpointVersion = 1;

struct CheckpointDevice {
    std::string request; // as allocated, may be "req/sub"
    std::string pool;
    std::string device;
    std::vector<std::string> cdiIds;

    bool operator==(const CheckpointDevice &) const = default;
};

struct PreparedClaim {
    std::string uid, ns, name;
    std::vector<CheckpointDevice> devices;
    std::vector<std::string> files; // every file written for the claim (absolute paths), removed at unprepare

    bool operator==(const PreparedClaim &) const = default;
};

struct Checkpoint {
    std::map<std::string, PreparedClaim> claims; // by claim UID

    bool operator==(const Checkpoint &) const = default;
};

// The checkpoint's file content, and its parse ("<what> is corrupt: <why>"
// errors, `what` naming the source).
std::string checkpointText(const Checkpoint &checkpoint);
Result<Checkpoint> parseCheckpoint(std::string_view text, const std::string &what);

// Reads `path`: a file that is not there is an empty checkpoint (first
// start); an unreadable or corrupt one is an error naming the file.
Result<Checkpoint> loadCheckpoint(const std::string &path);
// Writes `path` atomically: temporary file beside it, fsync, rename, fsync
// of the directory.
Result<void> saveCheckpoint(const std::string &path, const Checkpoint &checkpoint);

} // namespace kvgpu::dra
