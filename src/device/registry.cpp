#include "device/registry.h"

#include "device/sysfs_parse.h"

namespace kvgpu {

DeviceRegistry::DeviceRegistry(SysfsTree sysfs, DevTree dev, PciNameSource &names)
    : sysfs_(std::move(sysfs)), dev_(std::move(dev)), names_(names)
{
}

void DeviceRegistry::rescan()
{
    node_ = scanNode(sysfs_, dev_);
    dirty_ = true;
}

void DeviceRegistry::reconcilePciFunction(const std::string &address)
{
    node_.apply(observePciFunction(sysfs_, address), address);
    // mdevs live under their parent: when the parent changes they may have
    // appeared or gone without an event of their own reaching us yet.
    std::vector<std::string> children;
    for (const auto &[uuid, mdev] : node_.mdevs)
        if (mdev.parentAddress == address)
            children.push_back(uuid);
    if (Result<std::vector<std::string>> entries = sysfs_.listDir("bus/pci/devices/" + address)) {
        for (const std::string &name : *entries)
            if (isUuid(name))
                children.push_back(name);
    }
    for (const std::string &uuid : children)
        node_.apply(observeMdev(sysfs_, uuid), uuid);
    dirty_ = true;
}

void DeviceRegistry::reconcileMdev(const std::string &uuid)
{
    node_.apply(observeMdev(sysfs_, uuid), uuid);
    dirty_ = true;
}

void DeviceRegistry::reconcileDevNodes()
{
    node_.vfioGroupNodes = observeVfioGroupNodes(dev_);
    node_.iommufd = dev_.hasIommufd();
    dirty_ = true;
}

void DeviceRegistry::reconcileVfioNode(int group)
{
    if (dev_.hasVfioGroupNode(group))
        node_.vfioGroupNodes.insert(group);
    else
        node_.vfioGroupNodes.erase(group);
    dirty_ = true;
}

const Inventory &DeviceRegistry::inventory()
{
    if (dirty_) {
        inventory_ = deriveInventory(node_, names_);
        dirty_ = false;
    }
    return inventory_;
}

} // namespace kvgpu
