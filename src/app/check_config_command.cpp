#include "app/check_config_command.h"

#include "app/list_command.h"
#include "app/options.h"
#include "base/strings.h"
#include "config/config_parser.h"
#include "naming/pci_names.h"
#include "index/registry.h"
#include "model/device_kind.h"

#include <algorithm>
#include <cstdio>

#include <fmt/format.h>

namespace kvgpu {

namespace {

std::string describeMatch(const DeviceMatch &m)
{
    std::vector<std::string> keys;
    if (m.kind)
        keys.push_back(std::string("kind=") + deviceKindWord(*m.kind));
    if (!m.deviceIds.empty()) {
        std::vector<std::string> ids;
        for (const PciDeviceId &id : m.deviceIds)
            ids.push_back(fmt::format("{:04x}:{:04x}", id.vendor, id.device));
        keys.push_back("deviceIds=" + join(ids, ","));
    }
    if (m.model)
        keys.push_back("model=\"" + m.model->pattern() + "\"");
    if (!m.addresses.empty())
        keys.push_back("addresses=" + join(m.addresses, ","));
    if (!m.numaNodes.empty()) {
        std::vector<std::string> nodes;
        for (int n : m.numaNodes)
            nodes.push_back(std::to_string(n));
        keys.push_back("numaNodes=" + join(nodes, ","));
    }
    return keys.empty() ? "every device" : join(keys, " ");
}

std::string table(const std::vector<std::vector<std::string>> &rows)
{
    std::vector<size_t> widths;
    for (const auto &r : rows)
        for (size_t i = 0; i < r.size(); ++i) {
            widths.resize(std::max(widths.size(), r.size()));
            widths[i] = std::max(widths[i], r[i].size());
        }
    std::string out;
    for (const auto &r : rows) {
        for (size_t i = 0; i < r.size(); ++i)
            out += i + 1 == r.size() ? r[i] : fmt::format("{:<{}}  ", r[i], widths[i]);
        out += "\n";
    }
    return out;
}

} // namespace

std::string formatConfigCheck(const std::string &file, const std::string &hash, const std::string &nodeName,
                              const NodeRules &rules, const Inventory &inventory)
{
    std::string out = fmt::format("{}: valid (fingerprint {})\n", file, hash);
    out += fmt::format("node {}: {} rule{} in force, first match wins; offered through {} unless a rule says "
                       "otherwise\n",
                       nodeName.empty() ? "(no name: only the global rules)" : nodeName, rules.rules.size(),
                       rules.rules.size() == 1 ? "" : "s", deviceApiWord(rules.api));
    std::vector<std::vector<std::string>> ruleRows;
    for (const ResourceRule &rule : rules.rules)
        ruleRows.push_back({"  " + rule.describe(),
                            rule.exclude ? "exclude" : rule.name + " (" + deviceApiWord(rule.api.value_or(rules.api)) + ")",
                            describeMatch(rule.match)});
    out += table(ruleRows);
    out += "\n";
    std::vector<std::vector<std::string>> rows = {{"DEVICE", "IDS", "MODEL", "RESOURCE", "API", "DECIDED BY"}};
    for (const DeviceRow &row : inventory.rows) {
        std::string resource = row.resource.empty() ? "not advertised: " + row.reason : row.resource;
        std::string decided = !row.rule.empty() ? "rule " + row.rule : row.resource.empty() ? "-" : "default name";
        rows.push_back({row.id, row.ids.empty() ? "-" : row.ids, row.model.empty() ? "-" : row.model, resource,
                        row.api.empty() ? "-" : row.api, decided});
    }
    out += table(rows);
    if (inventory.rows.empty())
        out += "(no NVIDIA PCI functions or mediated devices found)\n";
    return out;
}

int runCheckConfigCommand(const CommonOptions &options, const std::string &file)
{
    std::string text;
    Result<ResourceConfig, ConfigError> config = loadResourceConfig(file, &text);
    if (!config) {
        std::fprintf(stderr, "error: %s\n", config.error().c_str());
        return 1;
    }
    auto rules = std::make_shared<const NodeRules>(rulesForNode(*config, options.nodeName));
    PciIdsDatabase names(options.pciIds);
    Result<std::unique_ptr<DeviceRegistry>> registry = scanNodeOnce(options, names, rules);
    if (!registry) {
        std::fprintf(stderr, "error: %s\n", registry.error().c_str());
        return 1;
    }
    // The check the daemon makes before it takes the file (ConfigReloader).
    if (Result<void> fits = (*registry)->checkRules(*rules); !fits) {
        std::fprintf(stderr, "error: %s: %s\n", file.c_str(), fits.error().c_str());
        return 1;
    }
    std::string out =
        formatConfigCheck(file, configHash(text), options.nodeName, *rules, (*registry)->inventory());
    std::fwrite(out.data(), 1, out.size(), stdout);
    return 0;
}

} // namespace kvgpu
