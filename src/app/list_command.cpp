#include "app/list_command.h"

#include "app/options.h"
#include "base/strings.h"
#include "config/config_parser.h"
#include "naming/pci_names.h"
#include "index/registry.h"
#include "naming/vgpu_name_book.h"
#include "model/device_kind.h"
#include "model/resource_name.h"

#include <algorithm>
#include <cstdio>

#include <fmt/format.h>

namespace kvgpu {

namespace {

std::string orDash(const std::string &s) { return s.empty() ? "-" : s; }
std::string number(int n) { return n < 0 ? "-" : std::to_string(n); }

std::string status(const DeviceRow &row)
{
    if (row.resource.empty())
        return "not advertised: " + row.reason;
    std::string s = row.resource + " " + row.health;
    // The device plugin API is the default and stays unsaid, as it always was.
    if (row.api == deviceApiWord(DeviceApi::Dra))
        s += " via DRA";
    if (!row.reason.empty())
        s += " (" + row.reason + ")";
    for (const std::string &warning : row.warnings)
        s += "; warning: " + warning;
    if (!row.rule.empty())
        s += "; named by rule " + row.rule;
    return s;
}

std::string jsonString(const std::string &value)
{
    std::string out = "\"";
    for (char c : value) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\t': out += "\\t"; break;
        default:
            if (static_cast<unsigned char>(c) < 0x20)
                out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
            else
                out += c;
        }
    }
    return out + "\"";
}

std::string jsonList(const std::vector<std::string> &values)
{
    std::string out;
    for (size_t i = 0; i < values.size(); ++i)
        out += (i ? ", " : "") + jsonString(values[i]);
    return out;
}

} // namespace

std::string formatDeviceTable(const Inventory &inventory)
{
    const std::vector<std::string> header = {"DEVICE", "IDS", "MODEL", "DRIVER", "CLASS", "IOMMU", "NUMA", "STATUS"};
    std::vector<std::vector<std::string>> rows;
    for (const DeviceRow &row : inventory.rows)
        rows.push_back({row.id, orDash(row.ids), orDash(row.model), orDash(row.driver), orDash(row.deviceClass),
                        number(row.iommuGroup), number(row.numaNode), status(row)});

    std::vector<size_t> widths(header.size());
    for (size_t i = 0; i < header.size(); ++i) {
        widths[i] = header[i].size();
        for (const auto &r : rows)
            widths[i] = std::max(widths[i], r[i].size());
    }
    auto line = [&](const std::vector<std::string> &cells) {
        std::string out;
        for (size_t i = 0; i < cells.size(); ++i) {
            if (i + 1 == cells.size())
                out += cells[i];
            else
                out += fmt::format("{:<{}}  ", cells[i], widths[i]);
        }
        return out + "\n";
    };
    std::string out = line(header);
    for (const auto &r : rows)
        out += line(r);
    if (inventory.rows.empty())
        out += "(no NVIDIA PCI functions or mediated devices found)\n";
    return out;
}

std::string formatDeviceJson(const Inventory &inventory, const std::vector<EgmRegion> &egmRegions)
{
    std::string out = "{\n  \"devices\": [";
    for (size_t i = 0; i < inventory.rows.size(); ++i) {
        const DeviceRow &r = inventory.rows[i];
        out += i ? ",\n    {" : "\n    {";
        out += fmt::format("\"id\": {}, \"kind\": {}, \"ids\": {}, \"model\": {}, \"driver\": {}, \"class\": {}, "
                           "\"iommuGroup\": {}, \"numaNode\": {}, \"resource\": {}, \"health\": {}, \"reason\": {}, "
                           "\"warnings\": [{}], \"rule\": {}, \"api\": {}}}",
                           jsonString(r.id), jsonString(r.kind), jsonString(r.ids), jsonString(r.model),
                           jsonString(r.driver), jsonString(r.deviceClass),
                           r.iommuGroup < 0 ? "null" : std::to_string(r.iommuGroup),
                           r.numaNode < 0 ? "null" : std::to_string(r.numaNode),
                           r.resource.empty() ? "null" : jsonString(r.resource),
                           r.health.empty() ? "null" : jsonString(r.health), jsonString(r.reason),
                           jsonList(r.warnings), r.rule.empty() ? "null" : jsonString(r.rule),
                           r.api.empty() ? "null" : jsonString(r.api));
    }
    out += inventory.rows.empty() ? "],\n" : "\n  ],\n";
    out += "  \"resources\": [";
    size_t i = 0;
    for (const auto &[name, resource] : inventory.resources) {
        out += i++ ? ",\n    {" : "\n    {";
        out += fmt::format("\"name\": {}, \"kind\": {}, \"envKey\": {}, \"devices\": {}}}", jsonString(name),
                           jsonString(deviceKindWord(resource.kind)),
                           jsonString(envKey(resource.kind, name)), resource.devices.size());
    }
    out += inventory.resources.empty() ? "],\n" : "\n  ],\n";
    out += "  \"egmRegions\": [";
    for (size_t r = 0; r < egmRegions.size(); ++r) {
        const EgmRegion &region = egmRegions[r];
        out += r ? ",\n    {" : "\n    {";
        out += fmt::format("\"name\": {}, \"gpus\": [{}], \"node\": {}, \"problem\": {}}}", jsonString(region.name),
                           jsonList(region.gpus), region.hasNode ? jsonString("/dev/" + region.name) : "null",
                           region.problem.empty() ? "null" : jsonString(region.problem));
    }
    out += egmRegions.empty() ? "]\n}\n" : "\n  ]\n}\n";
    return out;
}

std::string formatEgmRegions(const std::vector<EgmRegion> &regions)
{
    if (regions.empty())
        return {};
    std::string out = "\nEGM REGION  GPUS (a request holding all of them gets the node)  NODE\n";
    for (const EgmRegion &region : regions) {
        out += fmt::format("{:<11} {:<49} {}", region.name, region.gpus.empty() ? "-" : join(region.gpus, " "),
                           region.hasNode ? "/dev/" + region.name : "missing");
        if (!region.problem.empty())
            out += " (" + region.problem + ")";
        out += "\n";
    }
    return out;
}

// What Allocate can hand out from the device tree the plugin reads: in a pod
// this shows whether the DaemonSet's mounts let it see the host's nodes.
std::string formatDevNodes(const DevTree &dev)
{
    size_t cdevs = 0;
    if (Result<std::vector<std::string>> entries = SysfsTree(dev.root()).listDir("vfio/devices"))
        cdevs = entries->size();
    return fmt::format("\nDEVICE NODES under {}: vfio/vfio {}, iommu {} ({} vfio/devices cdevs)\n", dev.root(),
                       dev.exists("vfio/vfio") ? "present" : "missing", dev.hasIommufd() ? "present" : "missing",
                       cdevs);
}

Result<std::unique_ptr<DeviceRegistry>> scanNodeOnce(const CommonOptions &options, PciNameSource &names,
                                                     std::shared_ptr<const NodeRules> rules)
{
    SysfsTree sysfs(options.sysfsRoot);
    if (!sysfs.exists("bus/pci/devices"))
        return Error{fmt::format("{} is not a sysfs tree (no bus/pci/devices)", options.sysfsRoot)};
    auto registry = std::make_unique<DeviceRegistry>(std::move(sysfs), DevTree(options.devRoot), names);
    registry->keepVgpuNamesIn(vgpuNameFileIn(options.stateDir));
    registry->setRules(std::move(rules));
    registry->rescan();
    return registry;
}

int runListCommand(const CommonOptions &options, bool json)
{
    std::shared_ptr<const NodeRules> rules;
    if (!options.configPath.empty()) {
        Result<ResourceConfig, ConfigError> config = loadResourceConfig(options.configPath);
        if (!config) {
            std::fprintf(stderr, "error: %s\n", config.error().c_str());
            return 1;
        }
        rules = std::make_shared<const NodeRules>(rulesForNode(*config, options.nodeName));
    }
    PciIdsDatabase names(options.pciIds);
    Result<std::unique_ptr<DeviceRegistry>> registry = scanNodeOnce(options, names, std::move(rules));
    if (!registry) {
        std::fprintf(stderr, "error: %s\n", registry.error().c_str());
        return 1;
    }
    const DeviceRegistry &node = **registry;
    std::string text = json ? formatDeviceJson(node.inventory(), node.egmRegions())
                            : formatDeviceTable(node.inventory()) + formatEgmRegions(node.egmRegions()) +
                                  formatDevNodes(DevTree(options.devRoot));
    std::fwrite(text.data(), 1, text.size(), stdout);
    return 0;
}

} // namespace kvgpu
