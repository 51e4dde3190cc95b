#include "config/rule_match.h"

#include "base/strings.h"

#include <algorithm>

namespace kvgpu {

NodeRules rulesForNode(const ResourceConfig &config, std::string_view nodeName)
{
    NodeRules out;
    std::optional<DeviceApi> nodeApi;
    if (!nodeName.empty())
        for (const NodeSection &section : config.nodes)
            if (section.name.matches(nodeName)) {
                out.rules.insert(out.rules.end(), section.resources.begin(), section.resources.end());
                if (!nodeApi)
                    nodeApi = section.api;
            }
    out.rules.insert(out.rules.end(), config.resources.begin(), config.resources.end());
    out.api = nodeApi.value_or(config.api.value_or(DeviceApi::DevicePlugin));
    for (ResourceRule &rule : out.rules)
        if (!rule.api)
            rule.api = out.api;
    return out;
}

bool ruleMatches(const DeviceMatch &match, const DeviceFacts &device)
{
    auto contains = [](const auto &list, const auto &value) {
        return std::find(list.begin(), list.end(), value) != list.end();
    };
    if (match.kind && *match.kind != device.kind)
        return false;
    if (!match.deviceIds.empty() && !contains(match.deviceIds, device.pciId))
        return false;
    if (match.model && !match.model->matches(device.model))
        return false;
    if (!match.addresses.empty()) {
        bool own = contains(match.addresses, toLowerAscii(device.address));
        bool parent = !device.parentAddress.empty() && contains(match.addresses, toLowerAscii(device.parentAddress));
        if (!own && !parent)
            return false;
    }
    if (!match.numaNodes.empty() && !contains(match.numaNodes, device.numaNode < 0 ? -1 : device.numaNode))
        return false;
    return true;
}

const ResourceRule *firstMatchingRule(const NodeRules &rules, const DeviceFacts &device)
{
    for (const ResourceRule &rule : rules.rules)
        if (ruleMatches(rule.match, device))
            return &rule;
    return nullptr;
}

} // namespace kvgpu
