// Allocate and GetPreferredAllocation as values in, values out. The gRPC
// service (device_plugin_service.h) translates to and from protobuf; this file
// holds the rules, so they are unit-tested without sockets or threads.
//
// Thread safety: pure functions, except readAllocatableDevice which reads sysfs
// (reentrant).
#pragma once

#include "base/result.h"
#include "sysfs/egm.h"
#include "index/resource.h"
#include "sysfs/node_reader.h"
#include "sysfs/sysfs.h"

#include <map>
#include <string>
#include <vector>

namespace kvgpu {

// A device as it is right now, re-read from sysfs at Allocate time.
struct AllocatableDevice {
    std::string id;
    int iommuGroup = -1;
    std::string vfioDevice; // "vfio3" when the iommufd cdev exists
};

struct DeviceNode {
    std::string containerPath;
    std::string hostPath;
    std::string permissions;

    bool operator==(const DeviceNode &) const = default;
};

struct ContainerAllocation {
    std::map<std::string, std::string> envs;
    std::vector<DeviceNode> devices;
};

// Why Allocate refuses a container request; the service maps the code to the
// gRPC status and sends the message, which a cluster admin can act on.
struct AllocationError {
    enum class Code {
        InvalidArgument,    // the kubelet asked for something we never offered (or twice)
        FailedPrecondition, // the device is no longer fit to hand to a VM
    };
    Code code;
    std::string message;
};

// Re-reads one requested device and checks it can still be handed to a VM.
// The error is FailedPrecondition with a message a cluster admin can act on.
Result<AllocatableDevice, AllocationError> readAllocatableDevice(const SysfsTree &sysfs, const Resource &resource,
                                                                  const std::string &id);

// The response for one container: the VFIO container node, each device's group
// node, with iommufd also /dev/iommu and each /dev/vfio/devices/vfioN; the
// KubeVirt env var listing the ids in request order. Host and container paths
// are both /dev/...: the kubelet resolves host paths on the host, whatever
// directory (--dev-root) the plugin itself reads the nodes from.
// De-duplicated, in request order.
ContainerAllocation buildContainerAllocation(const Resource &resource,
                                             const std::vector<AllocatableDevice> &devices, bool iommufd);

// Grace EGM: appends /dev/egmN for every region whose GPUs are all among
// `ids` (and whose node exists), once each. Returns the regions the request
// holds whole but whose node is missing (they get no node; the caller logs).
std::vector<std::string> addEgmNodes(ContainerAllocation &allocation, const std::vector<EgmRegion> &regions,
                                     const std::vector<std::string> &ids);

// The whole per-container Allocate. InvalidArgument: an empty request, an id
// the resource does not list, an id asked for twice (virt-launcher counts the
// ids in the env var against the VM's request). FailedPrecondition: a device
// that cannot be allocated now, or whose /dev/vfio/<group> node (or the
// /dev/vfio/vfio container node) is missing, which would leave the container
// spec pointing at nothing.
Result<ContainerAllocation, AllocationError> allocateContainer(const Resource &resource,
                                                               const std::vector<std::string> &ids,
                                                               const SysfsTree &sysfs, const DevTree &dev);

// GetPreferredAllocation for one container: every must-include id first, then,
// from the rest of `available`, the devices that span the fewest NUMA nodes,
// keeping devices under the same PCIe switch and in the same IOMMU group
// together. Deterministic; answers only available (or must-include) ids of this
// resource; exactly `size` ids when there are enough.
Result<std::vector<std::string>> preferredAllocation(const Resource &resource,
                                                     const std::vector<std::string> &available,
                                                     const std::vector<std::string> &mustInclude,
                                                     int size);

} // namespace kvgpu
