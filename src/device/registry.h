// The in-memory device registry: what has been observed on the node, kept up
// to date one device at a time, and the inventory derived from it.
//
// Every event names what it touches and the registry re-reads exactly that
// (a PCI function with its mdev children, an mdev, a VFIO node). Re-reading is
// idempotent, so add, change, bind, unbind and remove all take the same path:
// observations in, advertised state out.
//
// Threading contract: bound to the loop thread. Other threads receive copies
// of resources (see PluginManager), never a reference into the registry.
#pragma once

#include "device/inventory.h"
#include "device/node_reader.h"
#include "device/pci_names.h"

#include <string>

namespace kvgpu {

class DeviceRegistry {
public:
    DeviceRegistry(SysfsTree sysfs, DevTree dev, PciNameSource &names);

    void rescan();
    // Re-reads the function and every mdev observed or present under it.
    void reconcilePciFunction(const std::string &address);
    void reconcileMdev(const std::string &uuid);
    // Re-reads the VFIO group nodes and whether /dev/iommu exists.
    void reconcileDevNodes();
    void reconcileVfioNode(int group);

    const NodeObservation &observation() const { return node_; }
    // Derived on demand after any change.
    const Inventory &inventory();
    // Whether anything was re-read since inventory() last derived.
    bool changed() const { return dirty_; }

    const SysfsTree &sysfs() const { return sysfs_; }
    const DevTree &dev() const { return dev_; }

private:
    SysfsTree sysfs_;
    DevTree dev_;
    PciNameSource &names_;
    NodeObservation node_;
    Inventory inventory_;
    bool dirty_ = true;
};

} // namespace kvgpu
