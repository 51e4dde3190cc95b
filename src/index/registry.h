// The in-memory device registry: what has been observed on the node, kept up
// to date one device at a time, and what is advertised, derived from it.
//
// Every event names what it touches and the registry re-reads exactly that
// (a PCI function with its mdev children, an mdev, a VFIO node) and re-derives
// exactly the devices whose verdict can depend on it. Re-reading is
// idempotent, so add, change, bind, unbind and remove all take the same path:
// observations in, advertised state out.
//
// Threading contract: bound to the loop thread. Other threads receive copies
// of resources (see PluginManager), never a reference into the registry.
#pragma once

#include "index/device_index.h"
#include "sysfs/egm.h"
#include "health/health_history.h"
#include "sysfs/node_reader.h"
#include "naming/pci_names.h"
#include "naming/vgpu_name_book.h"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kvgpu {

class DeviceRegistry {
public:
    DeviceRegistry(SysfsTree sysfs, DevTree dev, PciNameSource &names);

    // Reads everything again; only what differs from before is reported.
    void rescan();
    // Re-reads the function, every mdev observed or present under it, and the
    // IOMMU groups it left or joined (whose viability it may have changed).
    // `errorEvent` is the ERROR_EVENT of an AER/DPC recovery uevent, if any.
    // `rebound` says the event itself was an add, remove, bind or unbind: the
    // function's health history starts afresh even if, by the time it is
    // read, the driver is the same as before (an unbind and bind read late).
    void reconcilePciFunction(const std::string &address, const std::string &errorEvent = {}, bool rebound = false);
    void reconcileMdev(const std::string &uuid);
    // Re-reads every VFIO group node and whether /dev/iommu exists.
    void reconcileDevNodes();
    void reconcileVfioNode(int group);
    // An entry of /dev/vfio/devices (an iommufd cdev, "vfio3") came or went:
    // re-derives the groups of the devices it belongs to, and nothing else.
    void reconcileVfioDeviceNode(const std::string &name);
    // Makes `rules` (null: none) the configured rules and re-derives every
    // device with them; devices that change resource leave the old list and
    // join the new one in the same takeChangedResources().
    void setRules(std::shared_ptr<const NodeRules> rules);
    // Whether `rules` can apply to the devices on the node now (not when one
    // resource name would hold two kinds of device).
    Result<void> checkRules(const NodeRules &rules);

    // The functions whose signals change without an event (power state,
    // config space liveness, AER counters): every NVIDIA GPU and NVSwitch.
    std::vector<std::string> polledHealthTargets() const;
    // Re-reads those signals of one of them and re-derives it and its vGPUs;
    // nothing when it is no longer present. One device per call, so that a
    // pass over many slow devices can yield to events in between (see
    // app/health_pass.h).
    void refreshPolledHealth(const std::string &address);

    // SR-IOV vGPU: where learned profile names are kept across restarts
    // (empty: memory only). Call before the first rescan.
    void keepVgpuNamesIn(const std::string &path);
    // Reads nvidia/current_vgpu_type of every nvidia-bound VF (one small read
    // each; the index keeps which they are) and re-reads every VF whose value
    // changed; returns how many did.
    size_t refreshVgpuProfiles();

    // Grace EGM regions as last read (rescan, egm uevents). Re-reads them and
    // returns the one named, or nullptr when it is gone.
    const EgmRegion *reconcileEgmRegion(const std::string &name);
    const std::vector<EgmRegion> &egmRegions() const { return egm_; }

    // What changed since the last call (device_index.h).
    IndexChanges takeChanges() { return index_.takeChanges(); }

    const NodeObservation &observation() const { return node_; }
    const HealthHistories &healthHistory() const { return history_; }
    Inventory inventory() const { return index_.inventory(); }

private:
    void rederive(const std::string &id);
    void rederiveGroup(int group);
    void refreshGroup(int group);
    void rederiveCard(const std::string &card);

    SysfsTree sysfs_;
    DevTree dev_;
    PciNameSource &names_;
    VgpuNameBook vgpuNames_;
    std::vector<EgmRegion> egm_;
    std::shared_ptr<const NodeRules> rules_;
    NodeObservation node_;
    HealthHistories history_; // follows node_: updated right after each observation is applied
    DeviceIndex index_;
};

} // namespace kvgpu
