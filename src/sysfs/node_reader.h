// Reads the observations of src/device/observation.h from sysfs and the /dev
// tree: one device at a time (what a reconcile step needs) or the whole node.
// Problems are recorded on the device, never thrown: one bad device never stops
// a scan.
//
// Thread safety: reentrant; the readers only do I/O on the trees they are given.
#pragma once

#include "sysfs/observation.h"
#include "sysfs/sysfs.h"

#include <string>
#include <string_view>

namespace kvgpu {

// The /dev tree (`--dev-root`): VFIO group nodes live in <root>/vfio/<N>.
class DevTree {
public:
    explicit DevTree(std::string root) : root_(std::move(root)) {}
    const std::string &root() const { return root_; }
    std::string path(std::string_view relative) const;
    bool exists(std::string_view relative) const;
    bool hasVfioGroupNode(int group) const;
    bool hasIommufd() const { return exists("iommu"); }

private:
    std::string root_;
};

PciObservation observePciFunction(const SysfsTree &sysfs, std::string_view address);
MdevObservation observeMdev(const SysfsTree &sysfs, std::string_view uuid);

// The signals of a function's health that change without a uevent. config is
// not read while power_state is D3cold: a read must never wake a sleeping device.
PolledHealth readPolledHealth(const SysfsTree &sysfs, std::string_view address);

// Every member of an IOMMU group with its driver and class.
std::vector<GroupMember> readGroupMembers(const SysfsTree &sysfs, int group);
// The IOMMU group of any PCI function; nullopt without a readable link.
std::optional<int> readIommuGroup(const SysfsTree &sysfs, std::string_view address);

// Lists the group numbers of <dev-root>/vfio/<N> (the "vfio" container node and
// the "devices" directory are not groups).
std::set<int> observeVfioGroupNodes(const DevTree &dev);

// Reads every PCI function and mdev; devices that cannot be read end up in
// `unreadableFunctions` or `unreadableMdevs` with the reason.
NodeObservation scanNode(const SysfsTree &sysfs, const DevTree &dev);
// The same onto what is already known, re-reading every device known or
// listed; devices no longer present are dropped. (The health history then
// follows: HealthHistories::followAll.)
void rescanInto(NodeObservation &node, const SysfsTree &sysfs, const DevTree &dev);

} // namespace kvgpu
