// Device model names from the pci.ids database (the file lspci reads), scoped
// to the vendors asked for, so another vendor's entry for the same device id
// never matches.
//
// Only the wanted vendors' device lines are kept: the whole database is about
// 1.3 MB of text and forty thousand names, of which the plugin needs NVIDIA's
// two thousand. The file is read once, at construction, through the same
// never-blocking open as sysfs attributes.
//
// Thread safety: PciIdsDatabase is immutable after construction and may be
// read from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>

namespace kvgpu {

class PciNameSource {
public:
    virtual ~PciNameSource() = default;
    // The database's name for vendor:device, or nullopt when it has none.
    virtual std::optional<std::string> deviceName(std::uint16_t vendor, std::uint16_t device) = 0;
};

// The device names of `vendors` in pci.ids text, keyed by vendor << 16 | device.
// Lenient: comments, blank lines, subsystem lines and the class section are
// skipped; a malformed line is counted in `malformedLines` and skipped; when an
// id is listed twice the first name wins.
struct PciIdsNames {
    std::unordered_map<std::uint32_t, std::string> names;
    std::size_t malformedLines = 0;
};
PciIdsNames parsePciIds(std::string_view text, const std::set<std::uint16_t> &vendors);

class PciIdsDatabase final : public PciNameSource {
public:
    // Never fails: a missing or unreadable file, or one that is not a regular
    // file, is logged once with the reason and every lookup then returns
    // nullopt (devices are named by their hex id, as the original did).
    explicit PciIdsDatabase(const std::string &path, const std::set<std::uint16_t> &vendors = {0x10de});

    std::optional<std::string> deviceName(std::uint16_t vendor, std::uint16_t device) override;
    // Why the file is not used (it is missing, not a regular file, ...); empty while it is.
    const std::string &unusableReason() const { return unusable_; }

private:
    std::string unusable_;
    std::unordered_map<std::uint32_t, std::string> names_;
};

} // namespace kvgpu
