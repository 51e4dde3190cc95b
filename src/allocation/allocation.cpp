#include "allocation/allocation.h"

#include "base/log.h"
#include "base/strings.h"
#include "index/derivation.h"
#include "sysfs/vfio_drivers.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>

namespace kvgpu {

namespace {

const AdvertisedDevice *findDevice(const Resource &resource, const std::string &id)
{
    auto it = std::lower_bound(resource.devices.begin(), resource.devices.end(), id,
                               [](const AdvertisedDevice &d, const std::string &key) { return d.id < key; });
    return it != resource.devices.end() && it->id == id ? &*it : nullptr;
}

AllocationError failed(std::string message)
{
    return {AllocationError::Code::FailedPrecondition, std::move(message)};
}

AllocationError invalid(std::string message)
{
    return {AllocationError::Code::InvalidArgument, std::move(message)};
}

Result<AllocatableDevice, AllocationError> readPassthrough(const SysfsTree &sysfs, const std::string &id)
{
    PciObservation seen = observePciFunction(sysfs, id);
    switch (seen.state) {
    case PciObservation::State::Absent:
    case PciObservation::State::NotNvidia:
        return failed(fmt::format("device {} is no longer present on this node", id));
    case PciObservation::State::Unreadable:
        return failed(fmt::format("device {} cannot be read: {}", id, seen.problem));
    case PciObservation::State::Present:
        break;
    }
    const PciFunction &f = seen.function;
    if (!isPassthroughDriver(f.driver))
        return failed(fmt::format("device {} is not bound to vfio-pci (driver: {})", id,
                                  f.driver.empty() ? "none" : f.driver));
    if (f.iommuGroup < 0)
        return failed(fmt::format("device {} has no usable IOMMU group: {}", id, f.iommuGroupProblem));
    return AllocatableDevice{id, f.iommuGroup, f.vfioDevice};
}

Result<AllocatableDevice, AllocationError> readVgpu(const SysfsTree &sysfs, const Resource &resource, const std::string &id)
{
    MdevObservation seen = observeMdev(sysfs, id);
    switch (seen.state) {
    case MdevObservation::State::Absent:
        return failed(fmt::format("vGPU {} no longer exists on this node", id));
    case MdevObservation::State::Unreadable:
        return failed(fmt::format("vGPU {} cannot be read: {}", id, seen.problem));
    case MdevObservation::State::Present:
        break;
    }
    // The type, not the resource name: a configured rule may have named the
    // resource anything. A UUID re-created with another type is another device.
    auto advertised = std::find_if(resource.devices.begin(), resource.devices.end(),
                                   [&](const AdvertisedDevice &d) { return d.id == id; });
    std::string was = advertised == resource.devices.end() ? std::string() : advertised->vgpuType;
    if (seen.mdev.typeId != was)
        return failed(fmt::format("vGPU {} is now of type {} ({}), not {} as advertised in {}", id, seen.mdev.typeId,
                                  seen.mdev.typeName.empty() ? "no name" : seen.mdev.typeName,
                                  was.empty() ? "unknown" : was, resource.name));
    return AllocatableDevice{id, seen.mdev.iommuGroup, seen.mdev.vfioDevice};
}

// An SR-IOV vGPU VF must still be on nvidia and carry the profile it was
// advertised with: QEMU cannot open a VF without one, and a VF whose profile
// changed belongs to another resource.
Result<AllocatableDevice, AllocationError> readSriovVf(const SysfsTree &sysfs, const Resource &resource,
                                                       const std::string &id)
{
    PciObservation seen = observePciFunction(sysfs, id);
    switch (seen.state) {
    case PciObservation::State::Absent:
    case PciObservation::State::NotNvidia:
        return failed(fmt::format("VF {} is no longer present on this node", id));
    case PciObservation::State::Unreadable:
        return failed(fmt::format("VF {} cannot be read: {}", id, seen.problem));
    case PciObservation::State::Present:
        break;
    }
    const PciFunction &f = seen.function;
    if (f.driver != kSriovVgpuDriver)
        return failed(
            fmt::format("VF {} is not bound to nvidia (driver: {})", id, f.driver.empty() ? "none" : f.driver));
    if (!f.vgpuTypeProblem.empty())
        return failed(fmt::format("VF {}: {}", id, f.vgpuTypeProblem));
    const AdvertisedDevice *advertised = findDevice(resource, id);
    const std::uint32_t expected = advertised ? advertised->vgpuTypeId : 0;
    if (!f.currentVgpuType || *f.currentVgpuType == 0)
        return failed(fmt::format("VF {} no longer carries a vGPU profile (current_vgpu_type 0), {} expected",
                                  id, resource.name));
    if (*f.currentVgpuType != expected)
        return failed(fmt::format("VF {} now carries vGPU type {}, not type {} of {}", id, *f.currentVgpuType,
                                  expected, resource.name));
    if (f.iommuGroup < 0)
        return failed(fmt::format("VF {} has no usable IOMMU group: {}", id, f.iommuGroupProblem));
    return AllocatableDevice{id, f.iommuGroup, f.vfioDevice};
}

} // namespace

Result<AllocatableDevice, AllocationError> readAllocatableDevice(const SysfsTree &sysfs, const Resource &resource, const std::string &id)
{
    switch (resource.kind) {
    case DeviceKind::Vgpu: return readVgpu(sysfs, resource, id);
    case DeviceKind::SriovVgpu: return readSriovVf(sysfs, resource, id);
    case DeviceKind::Passthrough: break;
    }
    return readPassthrough(sysfs, id);
}

std::vector<std::string> addEgmNodes(ContainerAllocation &allocation, const std::vector<EgmRegion> &regions,
                                     const std::vector<std::string> &ids)
{
    std::vector<std::string> missing;
    std::set<std::string> held;
    for (const std::string &id : ids)
        held.insert(toLowerAscii(id));
    for (const EgmRegion &region : regions) {
        bool all = !region.gpus.empty() && std::all_of(region.gpus.begin(), region.gpus.end(),
                                                       [&](const std::string &gpu) { return held.contains(gpu); });
        if (all && !region.hasNode)
            missing.push_back(region.name);
    }
    for (const std::string &name : egmRegionsHeldBy(regions, ids)) {
        DeviceNode node{"/dev/" + name, "/dev/" + name, "mrw"};
        if (std::find(allocation.devices.begin(), allocation.devices.end(), node) == allocation.devices.end())
            allocation.devices.push_back(std::move(node));
    }
    return missing;
}

ContainerAllocation buildContainerAllocation(const Resource &resource,
                                             const std::vector<AllocatableDevice> &devices,
                                             bool iommufd)
{
    ContainerAllocation out;
    std::set<std::string> seen;
    auto add = [&](const std::string &relative) {
        if (!seen.insert(relative).second)
            return;
        out.devices.push_back(DeviceNode{"/dev/" + relative, "/dev/" + relative, "mrw"});
    };

    add("vfio/vfio");
    for (const AllocatableDevice &d : devices)
        add(fmt::format("vfio/{}", d.iommuGroup));
    if (iommufd) {
        add("iommu");
        for (const AllocatableDevice &d : devices)
            if (!d.vfioDevice.empty())
                add("vfio/devices/" + d.vfioDevice);
    }

    std::vector<std::string> ids;
    for (const AllocatableDevice &d : devices)
        ids.push_back(d.id);
    out.envs[envKey(resource.kind, resource.name)] = join(ids, ",");
    return out;
}

Result<ContainerAllocation, AllocationError> allocateContainer(const Resource &resource,
                                                               const std::vector<std::string> &ids,
                                                               const SysfsTree &sysfs, const DevTree &dev)
{
    if (ids.empty())
        return invalid(fmt::format("empty container request for resource {}", resource.name));
    std::set<std::string> requested;
    for (const std::string &id : ids) {
        if (!findDevice(resource, id))
            return invalid(fmt::format("unknown device id {} for resource {}", quoteIfNeeded(id), resource.name));
        if (!requested.insert(id).second)
            return invalid(fmt::format("device id {} is requested twice for resource {}", quoteIfNeeded(id),
                                       resource.name));
    }
    if (!dev.exists("vfio/vfio"))
        return failed(fmt::format("{} does not exist: the vfio module is not loaded on this node, or --dev-root is "
                                  "not the host's /dev",
                                  dev.path("vfio/vfio")));
    std::vector<AllocatableDevice> devices;
    for (const std::string &id : ids) {
        Result<AllocatableDevice, AllocationError> device = readAllocatableDevice(sysfs, resource, id);
        if (!device)
            return device.failure();
        // The kernel creates the group node when a VFIO driver binds; without
        // it the container would be given a path to nothing and fail to start
        // with an obscure runtime error.
        if (!dev.hasVfioGroupNode(device->iommuGroup))
            return failed(fmt::format("{} of device {} does not exist: the IOMMU group has no VFIO node "
                                      "(is the device still bound to a VFIO driver?)",
                                      dev.path(fmt::format("vfio/{}", device->iommuGroup)), id));
        devices.push_back(std::move(device).value());
    }
    ContainerAllocation allocation = buildContainerAllocation(resource, devices, dev.hasIommufd());
    // Grace EGM: re-read now, since a region can gain a GPU without an event.
    if (resource.kind != DeviceKind::Vgpu) {
        for (const std::string &region : addEgmNodes(allocation, readEgmRegions(sysfs, dev), ids))
            log::warn("EGM region held by the request has no device node; allocating without it",
                      {{"region", region}, {"missing", dev.path(region)}, {"resource", resource.name}});
    }
    return allocation;
}

namespace {

size_t commonPrefix(const std::vector<std::string> &a, const std::vector<std::string> &b)
{
    size_t n = 0;
    while (n < a.size() && n < b.size() && a[n] == b[n])
        ++n;
    return n;
}

} // namespace

Result<std::vector<std::string>> preferredAllocation(const Resource &resource,
                                                     const std::vector<std::string> &available,
                                                     const std::vector<std::string> &mustInclude,
                                                     int size)
{
    if (size < 0)
        return Error{fmt::format("allocation size {} is negative", size)};
    std::vector<std::string> chosen;
    std::set<std::string> taken;
    for (const std::string &id : mustInclude)
        if (taken.insert(id).second)
            chosen.push_back(id);
    if (chosen.size() > static_cast<size_t>(size))
        return Error{fmt::format("{} devices must be included but the allocation size is {}", chosen.size(), size)};

    // Candidates: available devices of this resource not already chosen.
    std::vector<const AdvertisedDevice *> candidates;
    std::set<std::string> seenCandidates;
    for (const std::string &id : available) {
        const AdvertisedDevice *d = findDevice(resource, id);
        if (d && !taken.contains(id) && seenCandidates.insert(id).second)
            candidates.push_back(d);
    }
    std::vector<const AdvertisedDevice *> picked;
    for (const std::string &id : chosen)
        if (const AdvertisedDevice *d = findDevice(resource, id))
            picked.push_back(d);

    size_t need = static_cast<size_t>(size) - chosen.size();
    if (need == 0 || candidates.empty())
        return chosen;

    // NUMA nodes in preference order: nodes the must-include devices already
    // use (they cost nothing), then the nodes with the most candidates (fewest
    // nodes to cover the rest), then the lower node id; unknown (-1) last.
    std::map<int, size_t> perNode;
    for (const AdvertisedDevice *d : candidates)
        ++perNode[d->numaNode];
    std::set<int> usedNodes;
    for (const AdvertisedDevice *d : picked)
        usedNodes.insert(d->numaNode);
    std::vector<int> nodeOrder;
    for (const auto &[node, count] : perNode)
        nodeOrder.push_back(node);
    std::sort(nodeOrder.begin(), nodeOrder.end(), [&](int a, int b) {
        // A node that can take the rest alone is preferred, the tightest fit first
        // so larger nodes stay free for larger requests.
        auto rank = [&](int n) {
            bool fits = perNode[n] >= need;
            long count = static_cast<long>(perNode[n]);
            return std::make_tuple(!usedNodes.contains(n), n < 0, !fits, fits ? count : -count, n);
        };
        return rank(a) < rank(b);
    });

    // Within the chosen nodes, grow the set one device at a time, always taking
    // the candidate closest in the PCIe tree to what is already picked (same
    // IOMMU group first, then the longest shared path); ties go to the lowest id.
    for (int node : nodeOrder) {
        std::vector<const AdvertisedDevice *> pool;
        for (const AdvertisedDevice *d : candidates)
            if (d->numaNode == node)
                pool.push_back(d);
        // Devices whose paths agree up to the last hop sit under the same switch.
        auto switchOf = [](const AdvertisedDevice *d) {
            return d->pciePath.empty() ? std::string()
                                       : join({d->pciePath.begin(), d->pciePath.end() - 1}, "/");
        };
        std::map<std::string, size_t> perSwitch;
        for (const AdvertisedDevice *d : pool)
            ++perSwitch[switchOf(d)];
        while (need > 0 && !pool.empty()) {
            auto closeness = [&](const AdvertisedDevice *d) {
                size_t sameGroup = 0, shared = 0;
                for (const AdvertisedDevice *p : picked) {
                    sameGroup = std::max<size_t>(sameGroup, p->iommuGroup == d->iommuGroup ? 1 : 0);
                    shared = std::max(shared, commonPrefix(p->pciePath, d->pciePath));
                }
                // With nothing picked yet, start where the most candidates share a switch.
                size_t neighbours = picked.empty() ? perSwitch[switchOf(d)] : 0;
                return std::make_tuple(sameGroup, shared, neighbours);
            };
            auto best = pool.begin();
            for (auto it = pool.begin() + 1; it != pool.end(); ++it) {
                auto a = closeness(*it), b = closeness(*best);
                if (a > b || (a == b && (*it)->id < (*best)->id))
                    best = it;
            }
            picked.push_back(*best);
            chosen.push_back((*best)->id);
            pool.erase(best);
            --need;
        }
        if (need == 0)
            break;
    }
    return chosen;
}

} // namespace kvgpu
