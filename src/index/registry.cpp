#include "index/registry.h"

#include "sysfs/pci_class.h"
#include "naming/nvml_vgpu_types.h"
#include "sysfs/sysfs_parse.h"
#include "naming/vgpu_names.h"

#include <set>

namespace kvgpu {

DeviceRegistry::DeviceRegistry(SysfsTree sysfs, DevTree dev, PciNameSource &names)
    : sysfs_(std::move(sysfs)), dev_(std::move(dev)), names_(names),
      vgpuNames_({}, std::make_unique<NvmlVgpuTypes>())
{
}

void DeviceRegistry::keepVgpuNamesIn(const std::string &path)
{
    vgpuNames_ = VgpuNameBook(path, std::make_unique<NvmlVgpuTypes>());
}

// A card's PF and VFs depend on each other: the PF's row counts the VFs and
// their profiles, a VF's health follows the PF, and any VF's catalog may name
// a sibling's profile.
void DeviceRegistry::rederiveCard(const std::string &card)
{
    std::vector<std::string> members;
    if (node_.functions.contains(card))
        members.push_back(card);
    for (const auto &[address, f] : node_.functions)
        if (f.physfn == card)
            members.push_back(address);
    for (const std::string &id : members)
        rederive(id);
}

const EgmRegion *DeviceRegistry::reconcileEgmRegion(const std::string &name)
{
    egm_ = readEgmRegions(sysfs_, dev_);
    for (const EgmRegion &region : egm_)
        if (region.name == name)
            return &region;
    return nullptr;
}

size_t DeviceRegistry::refreshVgpuProfiles()
{
    std::vector<std::string> changed;
    for (const std::string &address : index_.profilePolledVfs()) {
        auto found = node_.functions.find(address);
        if (found == node_.functions.end())
            continue;
        const PciFunction &f = found->second;
        std::optional<std::uint32_t> now;
        std::string problem;
        Result<std::string> text = sysfs_.readFile("bus/pci/devices/" + address + "/nvidia/current_vgpu_type");
        if (text) {
            Result<std::uint32_t> id = parseCurrentVgpuType(*text);
            if (id)
                now = *id;
            else
                problem = id.error();
        }
        if (now != f.currentVgpuType || problem.empty() != f.vgpuTypeProblem.empty())
            changed.push_back(address);
    }
    for (const std::string &address : changed)
        reconcilePciFunction(address);
    return changed.size();
}

void DeviceRegistry::rederive(const std::string &id)
{
    index_.set(id, deriveDevice(node_, history_, id, names_, rules_.get()));
}

void DeviceRegistry::setRules(std::shared_ptr<const NodeRules> rules)
{
    rules_ = std::move(rules);
    for (const std::string &id : index_.ids())
        rederive(id);
}

Result<void> DeviceRegistry::checkRules(const NodeRules &rules)
{
    return checkKinds(node_, history_, names_, rules);
}

void DeviceRegistry::rescan()
{
    std::vector<std::string> known = index_.ids();
    rescanInto(node_, sysfs_, dev_);
    history_.followAll(node_);
    vgpuNames_.recallInto(node_);
    egm_ = readEgmRegions(sysfs_, dev_);
    std::set<std::string> ids(known.begin(), known.end());
    for (const auto &[id, f] : node_.functions)
        ids.insert(id);
    for (const auto &[id, m] : node_.mdevs)
        ids.insert(id);
    for (const auto &[id, unreadable] : node_.unreadableFunctions)
        ids.insert(id);
    for (const auto &[id, problem] : node_.unreadableMdevs)
        ids.insert(id);
    for (const std::string &id : ids)
        rederive(id);
}

void DeviceRegistry::rederiveGroup(int group)
{
    for (const std::string &id : index_.idsInGroup(group))
        rederive(id);
}

void DeviceRegistry::refreshGroup(int group)
{
    std::vector<GroupMember> members = readGroupMembers(sysfs_, group);
    if (members.empty())
        node_.groups.erase(group);
    else
        node_.groups[group] = std::move(members);
}

void DeviceRegistry::reconcilePciFunction(const std::string &address, const std::string &errorEvent, bool rebound)
{
    if (rebound)
        history_.forget(address);
    // The groups this function was a member of, and is now.
    std::set<int> groups;
    for (const auto &[group, members] : node_.groups)
        for (const GroupMember &m : members)
            if (m.address == address)
                groups.insert(group);
    if (std::optional<int> group = readIommuGroup(sysfs_, address))
        groups.insert(*group);
    std::set<std::string> cards;
    auto noteCard = [&] {
        if (auto f = node_.functions.find(address); f != node_.functions.end())
            if (!f->second.physfn.empty() || f->second.sriovTotalVfs > 0)
                cards.insert(cardOf(f->second));
    };
    noteCard(); // the card it was part of

    node_.apply(observePciFunction(sysfs_, address), address);
    noteCard(); // and is now
    for (const std::string &card : cards)
        vgpuNames_.recallInto(node_, card);
    history_.follow(node_, address);
    // After the new reading, so that a successful recovery takes the counters as they are now.
    if (!errorEvent.empty())
        history_.recordErrorEvent(node_, address, errorEvent);
    rederive(address);
    // mdevs live under their parent: when the parent changes they may have
    // appeared or gone without an event of their own reaching us yet.
    std::set<std::string> children;
    for (const auto &[uuid, mdev] : node_.mdevs)
        if (mdev.parentAddress == address)
            children.insert(uuid);
    if (Result<std::vector<std::string>> entries = sysfs_.listDir("bus/pci/devices/" + address)) {
        for (const std::string &name : *entries)
            if (isUuid(name))
                children.insert(name);
    }
    for (const std::string &uuid : children) {
        node_.apply(observeMdev(sysfs_, uuid), uuid);
        rederive(uuid);
    }
    // A member bound or unbound changes whether its whole group is viable.
    for (int group : groups) {
        refreshGroup(group);
        rederiveGroup(group);
    }
    for (const std::string &card : cards)
        rederiveCard(card);
}

std::vector<std::string> DeviceRegistry::polledHealthTargets() const
{
    std::vector<std::string> targets;
    for (const auto &[address, f] : node_.functions)
        if (isAdvertisedClass(f.classCode))
            targets.push_back(address);
    return targets;
}

void DeviceRegistry::refreshPolledHealth(const std::string &address)
{
    if (!node_.functions.contains(address))
        return; // removed (or become unreadable) since the pass began
    node_.applyPolled(address, readPolledHealth(sysfs_, address));
    history_.followPolled(node_, address);
    rederive(address);
    // vGPUs follow their parent's health, and so do SR-IOV VFs.
    for (const auto &[uuid, mdev] : node_.mdevs)
        if (mdev.parentAddress == address)
            rederive(uuid);
    for (const auto &[vf, f] : node_.functions)
        if (f.physfn == address)
            rederive(vf);
}

void DeviceRegistry::reconcileMdev(const std::string &uuid)
{
    node_.apply(observeMdev(sysfs_, uuid), uuid);
    rederive(uuid);
}

void DeviceRegistry::reconcileDevNodes()
{
    node_.vfioGroupNodes = observeVfioGroupNodes(dev_);
    node_.iommufd = dev_.hasIommufd();
    for (const std::string &id : index_.ids())
        rederive(id);
}

void DeviceRegistry::reconcileVfioDeviceNode(const std::string &name)
{
    std::set<int> groups;
    for (const auto &[address, f] : node_.functions)
        if (f.vfioDevice == name)
            groups.insert(f.iommuGroup);
    for (const auto &[uuid, m] : node_.mdevs)
        if (m.vfioDevice == name)
            groups.insert(m.iommuGroup);
    for (int group : groups)
        rederiveGroup(group);
}

void DeviceRegistry::reconcileVfioNode(int group)
{
    if (dev_.hasVfioGroupNode(group))
        node_.vfioGroupNodes.insert(group);
    else
        node_.vfioGroupNodes.erase(group);
    rederiveGroup(group);
}

} // namespace kvgpu
