// The health rules: from observations (sysfs readings, /dev/vfio nodes, IOMMU
// group members) and the health history (recovery uevents, polled problems
// with their hysteresis) to a verdict with a reason an admin can act on.
// Pure functions; thread-safe.
//
// Unhealthy when, in this order of precedence:
//  - the device's /dev/vfio/<group> node is missing;
//  - a PCIe error recovery is in progress or has failed;
//  - the function fell off the bus (config space reads vendor 0xffff; never
//    read in D3cold), its power state is "error", or its fatal AER counter
//    rose since the function was bound (these polled signals need two good
//    reads in a row, or a recovery event, before the device is healthy again);
//  - its IOMMU group is not viable: a member other than a bridge is bound to a
//    driver that does not keep a group viable (vfio_drivers.h);
//  - for a vGPU, its parent GPU is gone, unbound, fell off the bus or failed
//    error recovery.
// Warnings (logged, shown by `list`, never unhealthy): no reset method, PCIe
// link trained below its capability, an optional file (health, link, reset,
// vfio-dev) that is there but cannot be read.
#pragma once

#include "health/health_history.h"
#include "sysfs/observation.h"

#include <string>
#include <vector>

namespace kvgpu {

struct Verdict {
    bool healthy = true;
    std::string reason; // empty when healthy
};

// Empty when every member allows the group to be opened; otherwise
// "iommu group 12 not viable: 0000:65:00.1 (audio) bound to snd_hda_intel".
std::string groupViabilityProblem(int group, const std::vector<GroupMember> &members);

Verdict judgePassthrough(const PciFunction &function, const NodeObservation &node, const HealthHistories &histories);
Verdict judgeVgpu(const Mdev &mdev, const NodeObservation &node, const HealthHistories &histories);
// An SR-IOV vGPU VF: the passthrough rules that apply (its group node,
// recovery, polled signals, the rest of its group; the VF itself stays on
// nvidia, which registers it with VFIO), then its PF's: gone, unbound, fell
// off the bus or failed recovery takes every VF with it.
Verdict judgeSriovVf(const PciFunction &vf, const NodeObservation &node, const HealthHistories &histories);

std::vector<std::string> passthroughWarnings(const PciFunction &function);

} // namespace kvgpu
