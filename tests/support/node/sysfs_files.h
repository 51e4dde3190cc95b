// File-level helpers for building a fake sysfs: whole-file reads and writes,
// relative symlinks, the uevent file's DRIVER line, umockdev record escaping and
// the kernel's AER counter files. Throw std::runtime_error (std::filesystem
// errors included) naming the path. Reentrant.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace kvgpu::test {

void writeFile(const std::string &path, std::string_view content);
std::string readFile(const std::string &path);
// Creates (or replaces) `link` pointing at `target`.
void replaceSymlink(const std::string &target, const std::string &link);

// "../../../../" for devpath "/devices/pci0000:64/0000:64:00.0/0000:65:00.0":
// the way from that device's directory up to the sysfs root.
std::string dotdotsToSysRoot(std::string_view devpath);

// Rewrites a uevent file with DRIVER=<driver> as its first line (where the
// kernel prints it), or without any DRIVER line.
void setUeventDriver(const std::string &ueventPath, const std::optional<std::string> &driver);

// Escapes a value for an "A:" line of umockdev's device record format.
std::string escapeRecordValue(std::string_view value);

enum class AerSeverity { Correctable, NonFatal, Fatal };
// The contents of aer_dev_correctable / aer_dev_nonfatal / aer_dev_fatal with
// every counter at zero, in the kernel's order and spelling.
std::string aerCounters(AerSeverity severity);

} // namespace kvgpu::test
