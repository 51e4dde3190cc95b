#include "naming/pci_names.h"

#include "base/log.h"
#include "base/regular_file.h"
#include "base/strings.h"

namespace kvgpu {

namespace {

// pci.ids is about 1.3 MB today; anything far larger is not a pci.ids.
constexpr std::size_t kMaxDatabaseBytes = 64u << 20;

bool isHexDigit(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// "1eb8  TU104GL [Tesla T4]" -> {0x1eb8, "TU104GL [Tesla T4]"}: four hex digits,
// at least one blank, a non-empty name.
std::optional<std::pair<std::uint16_t, std::string_view>> idAndName(std::string_view line)
{
    if (line.size() < 6 || !isHexDigit(line[0]) || !isHexDigit(line[1]) || !isHexDigit(line[2]) ||
        !isHexDigit(line[3]) || (line[4] != ' ' && line[4] != '\t'))
        return std::nullopt;
    std::optional<std::uint64_t> id = parseHex(line.substr(0, 4));
    std::string_view name = trim(line.substr(4));
    if (!id || name.empty())
        return std::nullopt;
    return std::make_pair(static_cast<std::uint16_t>(*id), name);
}

} // namespace

PciIdsNames parsePciIds(std::string_view text, const std::set<std::uint16_t> &vendors)
{
    PciIdsNames out;
    // The vendor whose device lines follow: -1 outside a vendor block or
    // inside one we do not want. (A plain int: GCC's -O2 flow analysis takes an
    // optional here for uninitialised.)
    long vendor = -1;
    bool inVendorBlock = false;
    while (!text.empty()) {
        size_t end = text.find('\n');
        std::string_view line = text.substr(0, end);
        text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
        if (!line.empty() && line.back() == '\r')
            line.remove_suffix(1);
        if (trim(line).empty() || line.front() == '#')
            continue;
        if (line.front() != '\t') {
            // A vendor line, or the start of the class section ("C 03  Display
            // controller") or another top-level list, which ends the devices.
            vendor = -1;
            inVendorBlock = false;
            if (auto entry = idAndName(line)) {
                inVendorBlock = true;
                if (vendors.contains(entry->first))
                    vendor = entry->first;
            } else if (line.size() < 2 || line[1] != ' ') {
                ++out.malformedLines;
            }
            continue;
        }
        if (line.size() > 1 && line[1] == '\t')
            continue; // a subsystem line: "\t\t10de 12a2  T4 16GB"
        if (!inVendorBlock)
            continue; // a subclass line of the class section
        auto entry = idAndName(line.substr(1));
        if (!entry) {
            ++out.malformedLines;
            continue;
        }
        if (vendor >= 0)
            out.names.emplace((static_cast<std::uint32_t>(vendor) << 16) | entry->first, std::string(entry->second));
    }
    return out;
}

PciIdsDatabase::PciIdsDatabase(const std::string &path, const std::set<std::uint16_t> &vendors)
{
    Result<std::string> text = readRegularFile(path, kMaxDatabaseBytes, LastLink::Follow);
    if (!text) {
        unusable_ = text.error();
        log::warn("pci.ids database not usable; passthrough resources are named by device id",
                  {{"path", path}, {"reason", text.error()}});
        return;
    }
    PciIdsNames parsed = parsePciIds(*text, vendors);
    names_ = std::move(parsed.names);
    if (parsed.malformedLines)
        log::warn("pci.ids has lines that are not pci.ids entries; they were skipped",
                  {{"path", path}, {"lines", std::to_string(parsed.malformedLines)}});
    if (names_.empty())
        log::warn("pci.ids names no device of the vendors looked up; passthrough resources are named by device id",
                  {{"path", path}});
}

std::optional<std::string> PciIdsDatabase::deviceName(std::uint16_t vendor, std::uint16_t device)
{
    auto it = names_.find((static_cast<std::uint32_t>(vendor) << 16) | device);
    if (it == names_.end())
        return std::nullopt;
    return it->second;
}

} // namespace kvgpu
