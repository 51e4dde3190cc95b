// Pure parsers for the contents of sysfs files and links. Each takes the raw
// text and returns a value or an error that says what was wrong with it; the
// caller adds which file it came from. Thread-safe.
#pragma once

#include "base/result.h"
// The names sysfs lists devices by (PCI addresses, mdev UUIDs) are checked by
// the shared vocabulary; it comes with these parsers for their readers.
#include "model/device_address.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kvgpu {

// "0x10de\n" -> 0x10de. Vendor, device and subsystem ids are 16 bits.
Result<std::uint16_t> parsePciId(std::string_view text);
// "0x030200\n" -> 0x030200 (24 bits).
Result<std::uint32_t> parsePciClass(std::string_view text);
// "1\n" -> 1, "-1\n" -> -1 (unknown). Other negatives are malformed.
Result<int> parseNumaNode(std::string_view text);
// "../../../kernel/iommu_groups/12" -> 12.
Result<int> parseIommuGroupLink(std::string_view target);
// An IOMMU group number as a name ("12" in /dev/vfio/12); nullopt for
// anything else ("vfio", "devices", "-1", "12a").
std::optional<int> parseGroupNumber(std::string_view name);
// A decimal counter file such as available_instances.
Result<long> parseCount(std::string_view text);
// An AER counter file (aer_dev_fatal: "<ErrName> <count>" lines): the value of
// the `totalKey` line, or the sum of the counts when the kernel wrote no total;
// nullopt for an empty file or junk.
std::optional<long> parseAerTotal(std::string_view text, std::string_view totalKey);
// A PCIe link speed file: "16.0 GT/s PCIe" -> 16.0; nullopt for "Unknown" and junk.
std::optional<double> parseLinkSpeed(std::string_view text);

// Splits a sysfs device link target into the device path under /sys/devices:
// "../../../devices/pci0000:64/0000:64:00.0/0000:65:00.0" ->
// {"pci0000:64", "0000:64:00.0", "0000:65:00.0"}. Fails when the target does not
// lead into a devices/ directory.
Result<std::vector<std::string>> devicePathComponents(std::string_view linkTarget);

} // namespace kvgpu
