#include "index/index_changes.h"

#include <algorithm>

namespace kvgpu {

void applyDelta(DeviceMap &devices, const ResourceDelta &delta)
{
    for (const std::string &id : delta.removed)
        devices.erase(id);
    for (const AdvertisedDevice &device : delta.set)
        devices.insert_or_assign(device.id, device);
}

bool allOfferedBy(const ResourceDelta &delta, DeviceApi api)
{
    return std::all_of(delta.set.begin(), delta.set.end(), [api](const AdvertisedDevice &d) { return d.api == api; });
}

ResourceDelta restrictTo(ResourceDelta delta, DeviceApi api)
{
    auto other = std::stable_partition(delta.set.begin(), delta.set.end(),
                                       [api](const AdvertisedDevice &d) { return d.api == api; });
    if (other == delta.set.end())
        return delta;
    for (auto it = other; it != delta.set.end(); ++it)
        delta.removed.push_back(it->id);
    delta.set.erase(other, delta.set.end());
    std::sort(delta.removed.begin(), delta.removed.end());
    return delta;
}

Resource toResource(const std::string &name, DeviceKind kind, const DeviceMap &devices)
{
    Resource out{name, kind, {}};
    out.devices.reserve(devices.size());
    for (const auto &[id, device] : devices)
        out.devices.push_back(device);
    return out;
}

} // namespace kvgpu
