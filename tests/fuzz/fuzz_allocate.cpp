// Allocate as the kubelet can call it, against a fixed node: any resource the
// node advertises (or one the plugin no longer agrees with), any list of ids.
// Never crashes; an empty request, an id the resource does not have or an id
// asked for twice is InvalidArgument; what the node advertises can be
// allocated while the node is unchanged, unless its /dev/vfio group node is
// missing; a success lists exactly the requested ids and every device node
// they need, once each.
#include "allocation/allocation.h"
#include "fuzz_node.h"
#include "fuzz_support.h"

#include <algorithm>
#include <set>

using namespace kvgpu;

namespace {

fuzz::FixedNode *g_node = nullptr;
std::vector<Resource> *g_resources = nullptr;

std::string requestedId(FuzzedDataProvider &data)
{
    switch (data.ConsumeIntegralInRange(0, 7)) {
    case 0: return data.ConsumeRandomLengthString(64);
    case 1: return "../" + g_node->addresses[data.ConsumeIntegralInRange<size_t>(0, g_node->addresses.size() - 1)];
    case 2: case 3: return g_node->uuids[data.ConsumeIntegralInRange<size_t>(0, g_node->uuids.size() - 1)];
    default: return g_node->addresses[data.ConsumeIntegralInRange<size_t>(0, g_node->addresses.size() - 1)];
    }
}

void checkSuccess(const Resource &resource, const std::vector<std::string> &ids, const ContainerAllocation &allocation,
                  bool iommufd)
{
    FUZZ_CHECK(allocation.envs.size() == 1, resource.name);
    auto env = allocation.envs.find(envKey(resource.kind, resource.name));
    FUZZ_CHECK(env != allocation.envs.end() && env->second == join(ids, ","), resource.name);
    FUZZ_CHECK(!allocation.devices.empty() && allocation.devices.front().containerPath == "/dev/vfio/vfio", resource.name);
    std::set<std::string> paths;
    for (const DeviceNode &node : allocation.devices) {
        FUZZ_CHECK(paths.insert(node.containerPath).second, "twice: " + node.containerPath);
        FUZZ_CHECK(node.containerPath.rfind("/dev/", 0) == 0, node.containerPath);
        // The host's path: the kubelet resolves it on the host, not under --dev-root.
        FUZZ_CHECK(node.hostPath == node.containerPath, node.hostPath);
        FUZZ_CHECK(node.permissions == "mrw", node.permissions);
    }
    // The group node of each device as sysfs shows it now (the snapshot may be stale).
    for (const std::string &id : ids) {
        Result<AllocatableDevice, AllocationError> now = readAllocatableDevice(g_node->sysfs(), resource, id);
        FUZZ_CHECK(now && paths.contains("/dev/vfio/" + std::to_string(now->iommuGroup)), id);
    }
    FUZZ_CHECK(paths.contains("/dev/iommu") == iommufd, resource.name);
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***)
{
    fuzz::quietLogs();
    g_node = new fuzz::FixedNode;
    fuzz::FuzzedNames names(std::nullopt);
    Inventory inventory = deriveInventory(scanNode(g_node->sysfs(), g_node->devTree()), names);
    g_resources = new std::vector<Resource>;
    for (const auto &[name, resource] : inventory.resources)
        g_resources->push_back(resource);
    std::atexit([] {
        delete g_resources;
        delete g_node;
    });
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *bytes, size_t size)
{
    FuzzedDataProvider data(bytes, size);
    const SysfsTree sysfs = g_node->sysfs();
    const DevTree dev = g_node->devTree();

    // One of the node's resources as advertised, or a resource whose devices
    // and kind the plugin's snapshot has wrong (the node changed since).
    Resource resource = (*g_resources)[data.ConsumeIntegralInRange<size_t>(0, g_resources->size() - 1)];
    bool advertised = data.ConsumeIntegralInRange(0, 3) != 0;
    if (!advertised) {
        resource.kind = data.ConsumeBool() ? DeviceKind::Vgpu : DeviceKind::Passthrough;
        if (data.ConsumeBool())
            resource.name = "nvidia.com/" + data.ConsumeRandomLengthString(32);
        for (int i = data.ConsumeIntegralInRange(0, 3); i > 0; --i) {
            std::string id = requestedId(data);
            if (std::none_of(resource.devices.begin(), resource.devices.end(),
                             [&](const AdvertisedDevice &d) { return d.id == id; }))
                resource.devices.push_back(AdvertisedDevice{.id = id, .iommuGroup = data.ConsumeIntegralInRange(0, 200)});
        }
        std::sort(resource.devices.begin(), resource.devices.end(),
                  [](const AdvertisedDevice &a, const AdvertisedDevice &b) { return a.id < b.id; });
    }

    std::vector<std::string> ids;
    for (int i = data.ConsumeIntegralInRange(0, 6); i > 0; --i) {
        if (data.ConsumeBool() && !resource.devices.empty())
            ids.push_back(resource.devices[data.ConsumeIntegralInRange<size_t>(0, resource.devices.size() - 1)].id);
        else
            ids.push_back(requestedId(data));
    }

    Result<ContainerAllocation, AllocationError> result = allocateContainer(resource, ids, sysfs, dev);

    bool allKnown = std::all_of(ids.begin(), ids.end(), [&](const std::string &id) {
        return std::any_of(resource.devices.begin(), resource.devices.end(),
                           [&](const AdvertisedDevice &d) { return d.id == id; });
    });
    bool repeated = std::set<std::string>(ids.begin(), ids.end()).size() != ids.size();
    if (ids.empty() || !allKnown || repeated) {
        FUZZ_CHECK(!result && result.failure().code == AllocationError::Code::InvalidArgument,
                   "accepted " + join(ids, ","));
        fuzz::checkLogLine("reason", result.error());
        return 0;
    }
    bool nodesPresent = std::all_of(ids.begin(), ids.end(), [&](const std::string &id) {
        auto d = std::find_if(resource.devices.begin(), resource.devices.end(),
                              [&](const AdvertisedDevice &a) { return a.id == id; });
        return dev.hasVfioGroupNode(d->iommuGroup);
    });
    if (advertised && nodesPresent)
        FUZZ_CHECK(result.ok(), resource.name + ": " + result.error());
    if (!result) {
        FUZZ_CHECK(result.failure().code == AllocationError::Code::FailedPrecondition, result.error());
        FUZZ_CHECK(!result.error().empty(), join(ids, ","));
        fuzz::checkLogLine("reason", result.error());
        return 0;
    }
    checkSuccess(resource, ids, *result, dev.hasIommufd());
    return 0;
}
