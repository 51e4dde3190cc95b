#include "naming/rule_decision.h"

namespace kvgpu {

DeviceFacts factsOfFunction(const PciFunction &f, PciNameSource &names)
{
    return DeviceFacts{.kind = DeviceKind::Passthrough,
                       .pciId = {f.vendor, f.device},
                       .model = names.deviceName(f.vendor, f.device).value_or(""),
                       .address = f.address,
                       .numaNode = f.numaNode};
}

DeviceFacts factsOfMdev(const Mdev &m, const NodeObservation &node)
{
    DeviceFacts facts{.kind = DeviceKind::Vgpu,
                      .model = m.typeName.empty() ? m.typeId : m.typeName,
                      .address = m.uuid,
                      .parentAddress = m.parentAddress,
                      .numaNode = m.numaNode};
    if (auto parent = node.functions.find(m.parentAddress); parent != node.functions.end())
        facts.pciId = {parent->second.vendor, parent->second.device};
    else
        facts.pciId = {m.parentVendor, 0};
    return facts;
}

DeviceFacts factsOfSriovVf(const PciFunction &vf, const std::string &profileName)
{
    return DeviceFacts{.kind = DeviceKind::SriovVgpu,
                       .pciId = {vf.vendor, vf.device},
                       .model = profileName,
                       .address = vf.address,
                       .parentAddress = vf.physfn,
                       .numaNode = vf.numaNode};
}

namespace {

RuleDecision decideOnce(const NodeRules *rules, const DeviceFacts &device)
{
    if (!rules)
        return {};
    const ResourceRule *rule = firstMatchingRule(*rules, device);
    if (!rule)
        return RuleDecision{.api = rules->api};
    return RuleDecision{.excluded = rule->exclude,
                        .resource = rule->name,
                        .rule = rule->describe(),
                        .api = rule->api.value_or(rules->api)};
}

} // namespace

RuleDecision decideByRules(const NodeRules *rules, const DeviceFacts &device)
{
    RuleDecision decision = decideOnce(rules, device);
    if (rules && rules->previous && !decision.excluded) {
        RuleDecision before = decideOnce(rules->previous.get(), device);
        if (!before.excluded && before.api != decision.api) {
            decision.moving = true;
            decision.from = before.api;
        }
    }
    return decision;
}

} // namespace kvgpu
