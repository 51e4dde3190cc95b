// Shared pieces of the fuzz targets: a quiet log, a failed-property abort that
// libFuzzer reports as a crash, bounded strings from the fuzz input, and the
// invariants every derived inventory must hold whatever the input was.
#pragma once

#include "base/log.h"
#include "base/strings.h"
#include "index/device_row.h"
#include "sysfs/observation.h"
#include "naming/pci_names.h"
#include "naming/resource_naming.h"

#include <fuzzer/FuzzedDataProvider.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include <unistd.h>

namespace kvgpu::fuzz {

// A broken property is a finding: print what broke and abort, so that libFuzzer
// saves the input as a crash.
[[noreturn]] inline void fail(const char *file, int line, const char *what, const std::string &detail)
{
    std::fprintf(stderr, "%s:%d: property failed: %s\n%s\n", file, line, what, detail.c_str());
    std::abort();
}

#define FUZZ_CHECK(condition, detail)                                                                  \
    do {                                                                                               \
        if (!(condition))                                                                              \
            ::kvgpu::fuzz::fail(__FILE__, __LINE__, #condition, (detail));                             \
    } while (0)

// Logging is part of the code under test (formatLine runs on every input that
// reaches a log call), but millions of warn lines would drown libFuzzer's own output.
inline void quietLogs() { log::setLevel(log::Level::Error); }

// Where a target writes the files it rebuilds for every input: /dev/shm when
// there is one (tmpfs: ten times the executions per second of a disk), else
// the temporary directory.
inline std::string scratchDir(const std::string &name)
{
    std::string base = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : std::filesystem::temp_directory_path().string();
    return base + "/" + name + "-" + std::to_string(::getpid());
}

// A string that can be a directory entry name: not empty, no '/' or NUL, not
// "." or "..". `max` bounds the length (NAME_MAX is 255).
inline std::string entryName(FuzzedDataProvider &data, size_t max = 64)
{
    std::string name = data.ConsumeRandomLengthString(max);
    std::string out;
    for (char c : name)
        if (c != '/' && c != '\0')
            out += c;
    if (out.empty() || out == "." || out == "..")
        out = "x" + out;
    return out;
}

// The one-line log record of a value never spans lines, whatever the value
// (a sysfs name or file content must not be able to forge log lines).
inline void checkLogLine(std::string_view key, const std::string &value)
{
    std::string line = log::formatLine(log::Level::Warn, "fuzz", {{key, value}});
    FUZZ_CHECK(line.find('\n') == line.size() - 1, line);
}

// "nvidia.com/<part>" with a part the kubelet accepts.
inline void checkResourceName(const std::string &name)
{
    std::string prefix = std::string(kResourceDomain) + "/";
    FUZZ_CHECK(name.rfind(prefix, 0) == 0, name);
    std::string part = name.substr(prefix.size());
    FUZZ_CHECK(isValidResourceNamePart(part), quoteIfNeeded(name));
    FUZZ_CHECK(socketFileName(name) == "kvgpu-" + part + ".sock", name);
}

// What every inventory holds, whatever the node looked like: valid resource
// names, devices sorted and unique across resources, each advertised device
// observed as present, one row per device seen (present or unreadable).
inline void checkInventory(const NodeObservation &node, const Inventory &inventory)
{
    std::set<std::string> advertised;
    for (const auto &[name, resource] : inventory.resources) {
        FUZZ_CHECK(name == resource.name, name);
        checkResourceName(name);
        FUZZ_CHECK(!resource.devices.empty(), name);
        for (size_t i = 0; i < resource.devices.size(); ++i) {
            const AdvertisedDevice &d = resource.devices[i];
            FUZZ_CHECK(i == 0 || resource.devices[i - 1].id < d.id, d.id);
            FUZZ_CHECK(advertised.insert(d.id).second, "advertised twice: " + d.id);
            bool observed = resource.kind == DeviceKind::Vgpu ? node.mdevs.contains(d.id)
                                                              : node.functions.contains(d.id);
            FUZZ_CHECK(observed, d.id);
            FUZZ_CHECK(d.iommuGroup >= 0, d.id);
            FUZZ_CHECK(d.healthy == d.healthReason.empty(), d.id);
            // Without its group node a device is never healthy (more reasons exist).
            if (!node.vfioGroupNodes.contains(d.iommuGroup))
                FUZZ_CHECK(!d.healthy, d.id);
        }
    }
    auto checkProblem = [&](const std::string &id, const std::string &problem) {
        FUZZ_CHECK(!problem.empty(), id);
        FUZZ_CHECK(!node.functions.contains(id) && !node.mdevs.contains(id), id);
        checkLogLine("problem", problem);
    };
    for (const auto &[address, unreadable] : node.unreadableFunctions)
        checkProblem(address, unreadable.problem);
    for (const auto &[uuid, problem] : node.unreadableMdevs) {
        FUZZ_CHECK(!node.unreadableFunctions.contains(uuid), uuid);
        checkProblem(uuid, problem);
    }
    size_t expectedRows = node.functions.size() + node.unreadableFunctions.size() + node.mdevs.size() +
                          node.unreadableMdevs.size();
    FUZZ_CHECK(inventory.rows.size() == expectedRows,
               std::to_string(inventory.rows.size()) + " rows for " + std::to_string(expectedRows) + " devices");
    size_t rowsAdvertised = 0;
    for (const DeviceRow &row : inventory.rows) {
        if (!row.resource.empty()) {
            ++rowsAdvertised;
            FUZZ_CHECK(inventory.resources.contains(row.resource), row.id);
            FUZZ_CHECK(row.health == kHealthy || row.health == kUnhealthy, row.id);
        } else {
            // Not advertised: the row must say why.
            FUZZ_CHECK(!row.reason.empty(), row.id);
        }
    }
    FUZZ_CHECK(rowsAdvertised == advertised.size(), "rows and resources disagree");
    for (const auto &[name, repair] : inventory.nameRepairs)
        FUZZ_CHECK(inventory.resources.contains(name) && !repair.empty(), name);
}

// A name source that answers from the fuzz input, so that the names of
// passthrough resources take every shape pci.ids could give them.
class FuzzedNames final : public PciNameSource {
public:
    explicit FuzzedNames(std::optional<std::string> name) : name_(std::move(name)) {}
    std::optional<std::string> deviceName(std::uint16_t, std::uint16_t) override { return name_; }

private:
    std::optional<std::string> name_;
};

} // namespace kvgpu::fuzz
