#include "index/derivation.h"

#include "base/strings.h"
#include "health/health.h"
#include "sysfs/pci_class.h"
#include "sysfs/vfio_drivers.h"
#include "naming/vgpu_names.h"

#include <map>

#include <fmt/format.h>

namespace kvgpu {

namespace {

std::string pciIds(std::uint16_t vendor, std::uint16_t device)
{
    return fmt::format("{:04x}:{:04x}", vendor, device);
}

} // namespace

NamedResource passthroughResourceName(const PciFunction &f, PciNameSource &names)
{
    std::string part;
    if (std::optional<std::string> model = names.deviceName(f.vendor, f.device))
        part = sanitizePciDeviceName(*model);
    std::string fallback = hexDeviceIdName(f.device);
    if (part.empty())
        part = fallback;
    NamePart fixed = repairResourceNamePart(part, fallback);
    return {resourceName(fixed.name), fixed.repair};
}

NamedResource vgpuResourceName(const Mdev &m)
{
    std::string part = m.typeName.empty() ? m.typeId : sanitizeVgpuTypeName(m.typeName);
    NamePart fixed = repairResourceNamePart(part, m.typeId);
    return {resourceName(fixed.name), fixed.repair};
}

NamedResource sriovVgpuResourceName(const std::string &profileName, std::uint32_t typeId)
{
    NamePart fixed = repairResourceNamePart(sanitizeVgpuTypeName(profileName), std::to_string(typeId));
    return {resourceName(fixed.name), fixed.repair};
}

namespace {

void advertise(DerivedDevice &out, const NamedResource &name, DeviceKind kind, AdvertisedDevice device,
               const Verdict &verdict)
{
    device.healthy = verdict.healthy;
    device.healthReason = verdict.reason;
    device.api = out.api;
    out.row.api = deviceApiWord(out.api);
    out.kind = kind;
    out.resource = name.name;
    out.repair = name.repair;
    out.row.resource = name.name;
    out.row.health = device.healthy ? kHealthy : kUnhealthy;
    out.row.reason = device.healthReason;
    out.device = std::move(device);
}


// Applies the rule that decided the device, if one did: false when it
// excluded the device, else `name` is the resource to advertise it under.
bool applyRule(DerivedDevice &out, const RuleDecision &decision, NamedResource &name)
{
    out.row.rule = decision.rule;
    out.api = decision.api;
    if (decision.excluded) {
        out.row.reason = "excluded by rule " + decision.rule;
        return false;
    }
    if (decision.moving) {
        out.row.reason = fmt::format("moving from {} to {}: withheld until {} has withdrawn it",
                                     deviceApiWord(decision.from), deviceApiWord(decision.api),
                                     deviceApiWord(decision.from));
        return false;
    }
    if (!decision.resource.empty())
        name = NamedResource{decision.resource, {}}; // validated when the configuration was read
    return true;
}

} // namespace

namespace {

// A PF that carries SR-IOV vGPU VFs: never advertised; `list` shows its VFs.
std::string sriovParentNote(const PciFunction &pf, const NodeObservation &node)
{
    int vfs = 0, configured = 0;
    for (const auto &[address, f] : node.functions) {
        if (f.physfn != pf.address)
            continue;
        ++vfs;
        configured += f.currentVgpuType && *f.currentVgpuType != 0 ? 1 : 0;
    }
    return fmt::format(" (SR-IOV vGPU parent: {} of {} VFs, {} with a profile)", vfs, pf.sriovTotalVfs, configured);
}

void deriveSriovVf(DerivedDevice &out, const PciFunction &f, const NodeObservation &node,
                   const HealthHistories &histories, const NodeRules *rules)
{
    DeviceRow &row = out.row;
    out.kind = DeviceKind::SriovVgpu;
    if (f.driver != kSriovVgpuDriver) {
        row.reason = f.driver.empty() ? fmt::format("SR-IOV VF of {} not bound to any driver", f.physfn)
                                      : fmt::format("SR-IOV VF of {} bound to {}, not nvidia", f.physfn, f.driver);
        return;
    }
    if (!f.vgpuTypeProblem.empty()) {
        row.reason = f.vgpuTypeProblem;
        return;
    }
    if (!f.currentVgpuType) {
        row.reason = "SR-IOV VF without nvidia/current_vgpu_type";
        return;
    }
    if (*f.currentVgpuType == 0) {
        row.reason = "SR-IOV VF without a vGPU profile (current_vgpu_type 0)";
        return;
    }
    const std::uint32_t id = *f.currentVgpuType;
    row.ids = fmt::format("{:04x}:{:04x} vgpu {}", f.vendor, f.device, id);
    if (f.iommuGroup < 0) {
        row.reason = fmt::format("cannot read iommu_group: {}", f.iommuGroupProblem);
        return;
    }
    VgpuNameLookup lookup = resolveVgpuTypeName(node, f, id);
    if (!lookup.name) {
        row.reason =
            fmt::format("vGPU type {} on {}: name unknown (tried: {})", id, f.address, join(lookup.tried, "; "));
        return;
    }
    const std::string product = row.model; // the VF's pci.ids name, before the profile replaces it
    row.model = *lookup.name;
    NamedResource name = sriovVgpuResourceName(*lookup.name, id);
    if (!applyRule(out, decideByRules(rules, factsOfSriovVf(f, *lookup.name)), name))
        return;
    advertise(out, name, DeviceKind::SriovVgpu,
              AdvertisedDevice{.id = f.address, .numaNode = f.numaNode, .iommuGroup = f.iommuGroup,
                               .pciePath = f.pciePath, .vgpuTypeId = id, .vendorId = f.vendor,
                               .deviceId = f.device, .product = product,
                               .profile = *lookup.name, .parent = f.physfn},
              judgeSriovVf(f, node, histories));
}

} // namespace

DerivedDevice deriveFunction(const PciFunction &f, const NodeObservation &node, const HealthHistories &histories,
                             PciNameSource &names, const NodeRules *rules)
{
    DerivedDevice out;
    DeviceRow &row = out.row;
    row = DeviceRow{
        .id = f.address,
        .kind = "pci",
        .ids = pciIds(f.vendor, f.device),
        .model = names.deviceName(f.vendor, f.device).value_or(""),
        .driver = f.driver,
        .deviceClass = classLabel(f.classCode),
        .iommuGroup = f.iommuGroup,
        .numaNode = f.numaNode,
    };
    out.profilePolled = !f.physfn.empty() && f.driver == kSriovVgpuDriver;
    if (!f.physfn.empty() && isAdvertisedClass(f.classCode)) {
        deriveSriovVf(out, f, node, histories, rules);
    } else if (!isPassthroughDriver(f.driver)) {
        row.reason = f.driver.empty() ? std::string("not bound to any driver")
                                      : fmt::format("bound to {}, not vfio-pci", f.driver);
        if (!f.mdevTypes.empty())
            row.reason += fmt::format(" (vGPU parent: {} types)", f.mdevTypes.size());
        else if (f.sriovTotalVfs > 0 && f.driver == kSriovVgpuDriver)
            row.reason += sriovParentNote(f, node);
    } else if (!isAdvertisedClass(f.classCode)) {
        row.reason = f.iommuGroup >= 0
                         ? fmt::format("{} function: travels with IOMMU group {}", row.deviceClass, f.iommuGroup)
                         : fmt::format("{} function: {}", row.deviceClass, f.iommuGroupProblem);
    } else if (f.iommuGroup < 0) {
        row.reason = fmt::format("cannot read iommu_group: {}", f.iommuGroupProblem);
    } else if (NamedResource name = passthroughResourceName(f, names);
               applyRule(out, decideByRules(rules, factsOfFunction(f, names)), name)) {
        advertise(out, name, DeviceKind::Passthrough,
                  AdvertisedDevice{.id = f.address, .numaNode = f.numaNode, .iommuGroup = f.iommuGroup,
                                   .pciePath = f.pciePath, .vendorId = f.vendor, .deviceId = f.device,
                                   .product = row.model},
                  judgePassthrough(f, node, histories));
        row.warnings = passthroughWarnings(f);
    }
    return out;
}

DerivedDevice deriveUnreadableFunction(const UnreadableFunction &unreadable)
{
    const PciFunction &f = unreadable.function;
    DerivedDevice out;
    out.row = DeviceRow{
        .id = f.address,
        .kind = "pci",
        .ids = f.device ? pciIds(f.vendor, f.device) : std::string(),
        .deviceClass = f.classCode ? classLabel(f.classCode) : std::string(),
        .reason = unreadable.problem,
    };
    return out;
}

DerivedDevice deriveMdev(const Mdev &m, const NodeObservation &node, const HealthHistories &histories,
                         PciNameSource &names, const NodeRules *rules)
{
    DerivedDevice out;
    out.kind = DeviceKind::Vgpu;
    DeviceRow &row = out.row;
    row = DeviceRow{
        .id = m.uuid,
        .kind = "mdev",
        .ids = m.typeId,
        .model = m.typeName,
        .driver = m.driver,
        .deviceClass = "vgpu",
        .iommuGroup = m.iommuGroup,
        .numaNode = m.numaNode,
    };
    if (m.parentVendor != kNvidiaVendorId) {
        row.reason = fmt::format("parent {} is not an NVIDIA device (vendor {:04x})", m.parentAddress, m.parentVendor);
    } else if (m.driver.empty()) {
        row.reason = "not bound to a vGPU driver yet";
    } else if (NamedResource name = vgpuResourceName(m); name.name == resourceName("")) {
        // Neither the type's name nor its id has a character a resource name may hold.
        row.reason = fmt::format("vGPU type {} has no name usable as a resource name", quoteIfNeeded(m.typeId));
    } else if (DeviceFacts facts = factsOfMdev(m, node); applyRule(out, decideByRules(rules, facts), name)) {
        const std::string parentProduct =
            facts.pciId.device ? names.deviceName(facts.pciId.vendor, facts.pciId.device).value_or("") : "";
        advertise(out, name, DeviceKind::Vgpu,
                  AdvertisedDevice{.id = m.uuid, .numaNode = m.numaNode, .iommuGroup = m.iommuGroup,
                                   .pciePath = m.pciePath, .vgpuType = m.typeId,
                                   .vendorId = facts.pciId.vendor, .deviceId = facts.pciId.device,
                                   .product = parentProduct, .profile = row.model, .parent = m.parentAddress},
                  judgeVgpu(m, node, histories));
    }
    return out;
}

DerivedDevice deriveUnreadableMdev(const std::string &uuid, const std::string &problem)
{
    DerivedDevice out;
    out.kind = DeviceKind::Vgpu;
    out.row = DeviceRow{.id = uuid, .kind = "mdev", .deviceClass = "vgpu", .reason = problem};
    return out;
}

std::optional<DerivedDevice> deriveDevice(const NodeObservation &node, const HealthHistories &histories,
                                          const std::string &id, PciNameSource &names, const NodeRules *rules)
{
    if (auto f = node.functions.find(id); f != node.functions.end())
        return deriveFunction(f->second, node, histories, names, rules);
    if (auto m = node.mdevs.find(id); m != node.mdevs.end())
        return deriveMdev(m->second, node, histories, names, rules);
    if (auto u = node.unreadableFunctions.find(id); u != node.unreadableFunctions.end())
        return deriveUnreadableFunction(u->second);
    if (auto u = node.unreadableMdevs.find(id); u != node.unreadableMdevs.end())
        return deriveUnreadableMdev(id, u->second);
    return std::nullopt;
}

Result<void> checkKinds(const NodeObservation &node, const HealthHistories &histories, PciNameSource &names,
                        const NodeRules &rules)
{
    struct Holder {
        DeviceKind kind;
        DeviceApi api;
        std::string id;
        std::string rule;
    };
    std::map<std::string, Holder> holders;
    auto describe = [](const Holder &h) {
        return fmt::format("{} {} ({})", deviceKindName(h.kind), h.id,
                           h.rule.empty() ? std::string("its default name") : "rule " + h.rule);
    };
    auto claim = [&](const DerivedDevice &derived) -> std::optional<std::string> {
        if (derived.resource.empty())
            return std::nullopt;
        Holder mine{derived.kind, derived.api, derived.row.id, derived.row.rule};
        auto [it, fresh] = holders.emplace(derived.resource, mine);
        if (fresh)
            return std::nullopt;
        if (it->second.kind != derived.kind)
            return fmt::format("resource {} would hold both {} and {}; KubeVirt needs one kind of device per resource",
                               derived.resource, describe(it->second), describe(mine));
        if (it->second.api != derived.api)
            return fmt::format("resource {} would be offered both through {} ({}) and through {} ({}); a resource "
                               "is offered by one API",
                               derived.resource, deviceApiWord(it->second.api), describe(it->second),
                               deviceApiWord(derived.api), describe(mine));
        return std::nullopt;
    };
    for (const auto &[address, f] : node.functions)
        if (auto conflict = claim(deriveFunction(f, node, histories, names, &rules)))
            return Error{*conflict};
    for (const auto &[uuid, m] : node.mdevs)
        if (auto conflict = claim(deriveMdev(m, node, histories, names, &rules)))
            return Error{*conflict};
    return {};
}

} // namespace kvgpu
