#include "device/inventory.h"

#include "base/strings.h"
#include "device/health.h"
#include "device/node_reader.h"

#include <algorithm>

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

namespace {

const char *kindName(DeviceKind kind) { return kind == DeviceKind::Vgpu ? "vGPU" : "passthrough"; }

void advertise(DerivedDevice &out, const NamedResource &name, DeviceKind kind, AdvertisedDevice device,
               const Verdict &verdict)
{
    device.healthy = verdict.healthy;
    device.healthReason = verdict.reason;
    out.kind = kind;
    out.resource = name.name;
    out.repair = name.repair;
    out.row.resource = name.name;
    out.row.health = device.healthy ? kHealthy : kUnhealthy;
    out.row.reason = device.healthReason;
    out.device = std::move(device);
}

bool rowOrder(const DeviceRow &a, const DeviceRow &b)
{
    // PCI functions first, by address; then mdevs, by UUID.
    return std::make_pair(a.kind == "mdev", a.id) < std::make_pair(b.kind == "mdev", b.id);
}

} // namespace

DerivedDevice deriveFunction(const PciFunction &f, const NodeObservation &node, PciNameSource &names)
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
    if (!isVfioDriver(f.driver)) {
        row.reason = f.driver.empty() ? std::string("not bound to any driver")
                                      : fmt::format("bound to {}, not vfio-pci", f.driver);
        if (!f.mdevTypes.empty())
            row.reason += fmt::format(" (vGPU parent: {} types)", f.mdevTypes.size());
    } else if (!isAdvertisedClass(f.classCode)) {
        row.reason = f.iommuGroup >= 0
                         ? fmt::format("{} function: travels with IOMMU group {}", row.deviceClass, f.iommuGroup)
                         : fmt::format("{} function: {}", row.deviceClass, f.iommuGroupProblem);
    } else if (f.iommuGroup < 0) {
        row.reason = fmt::format("cannot read iommu_group: {}", f.iommuGroupProblem);
    } else {
        advertise(out, passthroughResourceName(f, names), DeviceKind::Passthrough,
                  AdvertisedDevice{.id = f.address, .numaNode = f.numaNode, .iommuGroup = f.iommuGroup,
                                   .pciePath = f.pciePath},
                  judgePassthrough(f, node));
        row.warnings = passthroughWarnings(f);
    }
    return out;
}

DerivedDevice deriveUnreadableFunction(const PciFunction &f, const std::string &problem)
{
    DerivedDevice out;
    out.row = DeviceRow{
        .id = f.address,
        .kind = "pci",
        .ids = f.device ? pciIds(f.vendor, f.device) : std::string(),
        .deviceClass = f.classCode ? classLabel(f.classCode) : std::string(),
        .reason = problem,
    };
    return out;
}

DerivedDevice deriveMdev(const Mdev &m, const NodeObservation &node)
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
    } else {
        advertise(out, name, DeviceKind::Vgpu,
                  AdvertisedDevice{.id = m.uuid, .numaNode = m.numaNode, .iommuGroup = m.iommuGroup,
                                   .pciePath = m.pciePath},
                  judgeVgpu(m, node));
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

std::optional<DerivedDevice> deriveDevice(const NodeObservation &node, const std::string &id, PciNameSource &names)
{
    if (auto f = node.functions.find(id); f != node.functions.end())
        return deriveFunction(f->second, node, names);
    if (auto m = node.mdevs.find(id); m != node.mdevs.end())
        return deriveMdev(m->second, node);
    if (auto p = node.problems.find(id); p != node.problems.end()) {
        if (auto u = node.unreadableFunctions.find(id); u != node.unreadableFunctions.end())
            return deriveUnreadableFunction(u->second, p->second);
        return deriveUnreadableMdev(id, p->second);
    }
    return std::nullopt;
}

void DeviceIndex::set(const std::string &id, std::optional<DerivedDevice> derived)
{
    const AdvertisedDevice *before = nullptr;
    std::string beforeResource;
    auto old = devices_.find(id);
    if (old != devices_.end() && !old->second.resource.empty()) {
        beforeResource = old->second.resource;
        before = &resources_.at(beforeResource).devices.at(id);
    }

    if (derived && !derived->resource.empty()) {
        auto [it, inserted] = resources_.try_emplace(derived->resource, ResourceState{derived->kind, {}});
        if (it->second.kind != derived->kind) {
            // Resource names are unique per kind; the first kind to claim one keeps it.
            derived->row.reason = fmt::format("resource name {} is already used by {} devices", derived->resource,
                                              kindName(it->second.kind));
            derived->row.resource.clear();
            derived->row.health.clear();
            derived->resource.clear();
        }
    }
    const std::string afterResource = derived ? derived->resource : std::string();

    // Changes are worked out before the old entry goes away.
    if (before && afterResource != beforeResource) {
        changes_.push_back(Change{Change::Kind::Withdrawn, id, beforeResource});
    }
    if (!afterResource.empty()) {
        const AdvertisedDevice &now = derived->device;
        if (!before || afterResource != beforeResource) {
            Change change{Change::Kind::Advertised, id, afterResource, now.healthy, now.healthReason};
            if (!derived->repair.empty() && repairs_.emplace(afterResource, derived->repair).second)
                change.repair = derived->repair;
            changes_.push_back(std::move(change));
        } else if (before->healthy != now.healthy || before->healthReason != now.healthReason) {
            changes_.push_back(Change{Change::Kind::HealthChanged, id, afterResource, now.healthy, now.healthReason});
        }
        bool sameWarnings = old != devices_.end() && old->second.row.warnings == derived->row.warnings;
        if (!derived->row.warnings.empty() && !sameWarnings) {
            Change change{Change::Kind::Warnings, id, afterResource, now.healthy, now.healthReason};
            change.warnings = derived->row.warnings;
            changes_.push_back(std::move(change));
        }
    }

    if (before) {
        if (!(afterResource == beforeResource && *before == derived->device))
            touched_.insert(beforeResource);
        groups_[before->iommuGroup].erase(id);
        resources_.at(beforeResource).devices.erase(id);
    }
    if (!afterResource.empty()) {
        resources_.at(afterResource).devices[id] = derived->device;
        groups_[derived->device.iommuGroup].insert(id);
        if (!before || afterResource != beforeResource)
            touched_.insert(afterResource);
    }
    if (derived)
        devices_[id] = std::move(*derived);
    else if (old != devices_.end())
        devices_.erase(old);
}

Resource DeviceIndex::resource(const std::string &name) const
{
    const ResourceState &state = resources_.at(name);
    Resource out{name, state.kind, {}};
    out.devices.reserve(state.devices.size());
    for (const auto &[id, device] : state.devices)
        out.devices.push_back(device);
    return out;
}

std::map<std::string, Resource> DeviceIndex::takeChangedResources()
{
    std::map<std::string, Resource> out;
    for (const std::string &name : touched_)
        out.emplace(name, resource(name));
    touched_.clear();
    return out;
}

std::vector<DeviceIndex::Change> DeviceIndex::takeChanges()
{
    std::vector<Change> out;
    out.swap(changes_);
    return out;
}

std::vector<std::string> DeviceIndex::idsInGroup(int group) const
{
    auto it = groups_.find(group);
    return it == groups_.end() ? std::vector<std::string>{} : std::vector<std::string>(it->second.begin(), it->second.end());
}

std::vector<std::string> DeviceIndex::ids() const
{
    std::vector<std::string> out;
    for (const auto &[id, device] : devices_)
        out.push_back(id);
    return out;
}

Inventory DeviceIndex::inventory() const
{
    Inventory out;
    for (const auto &[name, state] : resources_)
        if (!state.devices.empty())
            out.resources.emplace(name, resource(name));
    for (const auto &[id, derived] : devices_)
        out.rows.push_back(derived.row);
    std::sort(out.rows.begin(), out.rows.end(), rowOrder);
    for (const auto &[name, repair] : repairs_)
        if (out.resources.contains(name))
            out.nameRepairs.emplace(name, repair);
    return out;
}

std::string classLabel(std::uint32_t classCode)
{
    std::uint32_t base = classCode >> 16;
    std::uint32_t sub = (classCode >> 8) & 0xff;
    if (base == 0x03)
        return sub == 0x02 ? "3D controller" : "display";
    if (base == 0x04 && sub == 0x03)
        return "audio";
    if (base == 0x0c && sub == 0x03)
        return "USB";
    if (base == 0x0c && sub == 0x80)
        return "serial bus";
    if (base == 0x06 && sub == 0x80)
        return "bridge (NVSwitch)";
    return fmt::format("class 0x{:04x}", classCode >> 8);
}

bool isAdvertisedClass(std::uint32_t classCode)
{
    return (classCode >> 16) == 0x03 || (classCode >> 8) == 0x0680;
}

Inventory deriveInventory(const NodeObservation &node, PciNameSource &names)
{
    DeviceIndex index;
    for (const auto &[address, f] : node.functions)
        index.set(address, deriveFunction(f, node, names));
    for (const auto &[address, f] : node.unreadableFunctions)
        index.set(address, deriveUnreadableFunction(f, node.problems.at(address)));
    for (const auto &[uuid, m] : node.mdevs)
        index.set(uuid, deriveMdev(m, node));
    for (const auto &[id, problem] : node.problems)
        if (!node.unreadableFunctions.contains(id))
            index.set(id, deriveUnreadableMdev(id, problem));
    return index.inventory();
}

} // namespace kvgpu
