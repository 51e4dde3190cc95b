#include "index/index_changes.h"

namespace kvgpu {

void applyDelta(DeviceMap &devices, const ResourceDelta &delta)
{
    for (const std::string &id : delta.removed)
        devices.erase(id);
    for (const AdvertisedDevice &device : delta.set)
        devices.insert_or_assign(device.id, device);
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
