#include "device/registry.h"

#include "device/sysfs_parse.h"

#include <set>

namespace kvgpu {

DeviceRegistry::DeviceRegistry(SysfsTree sysfs, DevTree dev, PciNameSource &names)
    : sysfs_(std::move(sysfs)), dev_(std::move(dev)), names_(names)
{
}

void DeviceRegistry::rederive(const std::string &id)
{
    index_.set(id, deriveDevice(node_, id, names_));
}

void DeviceRegistry::rescan()
{
    node_ = scanNode(sysfs_, dev_);
    std::vector<std::string> known = index_.ids();
    std::set<std::string> ids(known.begin(), known.end());
    for (const auto &[id, f] : node_.functions)
        ids.insert(id);
    for (const auto &[id, m] : node_.mdevs)
        ids.insert(id);
    for (const auto &[id, problem] : node_.problems)
        ids.insert(id);
    for (const std::string &id : ids)
        rederive(id);
}

void DeviceRegistry::reconcilePciFunction(const std::string &address)
{
    node_.apply(observePciFunction(sysfs_, address), address);
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

void DeviceRegistry::reconcileVfioNode(int group)
{
    if (dev_.hasVfioGroupNode(group))
        node_.vfioGroupNodes.insert(group);
    else
        node_.vfioGroupNodes.erase(group);
    for (const std::string &id : index_.idsInGroup(group))
        rederive(id);
}

} // namespace kvgpu
