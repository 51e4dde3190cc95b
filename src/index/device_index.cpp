#include "index/device_index.h"

#include <algorithm>

#include <fmt/format.h>

namespace kvgpu {

namespace {

bool rowOrder(const DeviceRow &a, const DeviceRow &b)
{
    // PCI functions first, by address; then mdevs, by UUID.
    return std::make_pair(a.kind == "mdev", a.id) < std::make_pair(b.kind == "mdev", b.id);
}

} // namespace

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
                                              deviceKindName(it->second.kind));
            derived->row.resource.clear();
            derived->row.health.clear();
            derived->resource.clear();
        }
    }
    const std::string afterResource = derived ? derived->resource : std::string();

    // Changes are worked out before the old entry goes away.
    if (before && afterResource != beforeResource) {
        changes_.push_back(Change{Change::Kind::Withdrawn, id, beforeResource});
        healthOf_.erase(id);
    }
    if (!afterResource.empty()) {
        const AdvertisedDevice &now = derived->device;
        if (!before || afterResource != beforeResource) {
            Change change{Change::Kind::Advertised, id, afterResource, now.healthy, now.healthReason};
            if (!derived->repair.empty() && repairs_.emplace(afterResource, derived->repair).second)
                change.repair = derived->repair;
            healthOf_[id] = changes_.size();
            changes_.push_back(std::move(change));
        } else if (before->healthy != now.healthy || before->healthReason != now.healthReason) {
            // A device read twice in one batch (an add, then its group node)
            // is reported once, as it is at the end of the batch.
            if (auto pending = healthOf_.find(id); pending != healthOf_.end()) {
                changes_[pending->second].healthy = now.healthy;
                changes_[pending->second].reason = now.healthReason;
            } else {
                healthOf_[id] = changes_.size();
                changes_.push_back(Change{Change::Kind::HealthChanged, id, afterResource, now.healthy, now.healthReason});
            }
        }
        bool sameWarnings = old != devices_.end() && old->second.row.warnings == derived->row.warnings;
        if (!derived->row.warnings.empty() && !sameWarnings) {
            Change change{Change::Kind::Warnings, id, afterResource, now.healthy, now.healthReason};
            change.warnings = derived->row.warnings;
            changes_.push_back(std::move(change));
        }
    }

    if (before) {
        bool unchanged = afterResource == beforeResource && *before == derived->device;
        if (!unchanged)
            touched_[beforeResource].insert(id);
        groups_[before->iommuGroup].erase(id);
        eraseAdvertised(beforeResource, id);
    }
    if (!afterResource.empty()) {
        insertAdvertised(afterResource, derived->device);
        groups_[derived->device.iommuGroup].insert(id);
        if (!before || afterResource != beforeResource)
            touched_[afterResource].insert(id);
    }
    if (derived && derived->profilePolled)
        profilePolled_.insert(id);
    else
        profilePolled_.erase(id);
    if (derived)
        devices_[id] = std::move(*derived);
    else if (old != devices_.end())
        devices_.erase(old);
}

void DeviceIndex::insertAdvertised(const std::string &resource, const AdvertisedDevice &device)
{
    ResourceState &state = resources_.at(resource);
    state.unhealthy += device.healthy ? 0 : 1;
    state.devices.insert_or_assign(device.id, device);
}

void DeviceIndex::eraseAdvertised(const std::string &resource, const std::string &id)
{
    ResourceState &state = resources_.at(resource);
    auto it = state.devices.find(id);
    state.unhealthy -= it->second.healthy ? 0 : 1;
    state.devices.erase(it);
}

Resource DeviceIndex::resource(const std::string &name) const
{
    const ResourceState &state = resources_.at(name);
    return toResource(name, state.kind, state.devices);
}

IndexChanges DeviceIndex::takeChanges()
{
    IndexChanges out;
    out.devices.swap(changes_);
    healthOf_.clear();
    for (const auto &[name, ids] : touched_) {
        const ResourceState &state = resources_.at(name);
        ResourceDelta &delta = out.resources[name];
        delta.kind = state.kind;
        for (const std::string &id : ids) {
            if (auto it = state.devices.find(id); it != state.devices.end())
                delta.set.push_back(it->second);
            else
                delta.removed.push_back(id);
        }
        delta.unhealthy = state.unhealthy;
        delta.healthy = state.devices.size() - state.unhealthy;
    }
    touched_.clear();
    out.profilePolledVfs = profilePolled_.size();
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

Inventory deriveInventory(const NodeObservation &node, const HealthHistories &histories, PciNameSource &names,
                          const NodeRules *rules)
{
    DeviceIndex index;
    for (const auto &[address, f] : node.functions)
        index.set(address, deriveFunction(f, node, histories, names, rules));
    for (const auto &[address, unreadable] : node.unreadableFunctions)
        index.set(address, deriveUnreadableFunction(unreadable));
    for (const auto &[uuid, m] : node.mdevs)
        index.set(uuid, deriveMdev(m, node, histories, names, rules));
    for (const auto &[uuid, problem] : node.unreadableMdevs)
        index.set(uuid, deriveUnreadableMdev(uuid, problem));
    return index.inventory();
}

Inventory deriveInventory(const NodeObservation &node, PciNameSource &names, const NodeRules *rules)
{
    return deriveInventory(node, HealthHistories::firstReading(node), names, rules);
}

} // namespace kvgpu
