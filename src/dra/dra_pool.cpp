#include "dra/dra_pool.h"

#include "dra/device_names.h"

namespace kvgpu::dra {

bool DraPool::apply(const IndexChanges &changes)
{
    bool changed = false;
    for (const auto &[resource, everyApi] : changes.resources) {
        // The common case without DRA: nothing of this delta is ours, and
        // nothing it removes was.
        if (devices_.empty() && allOfferedBy(everyApi, DeviceApi::DevicePlugin))
            continue;
        const ResourceDelta delta = restrictTo(everyApi, DeviceApi::Dra);
        for (const std::string &id : delta.removed) {
            auto name = nameOfId_.find(id);
            if (name == nameOfId_.end())
                continue;
            // A device that moved to another resource in the same publish is
            // set again below under its new resource.
            auto device = devices_.find(name->second);
            if (device != devices_.end() && device->second.resource == resource) {
                devices_.erase(device);
                nameOfId_.erase(name);
                changed = true;
            }
        }
        for (const AdvertisedDevice &advertised : delta.set) {
            DraDevice device{resource, delta.kind, advertised};
            std::string name = draDeviceName(device);
            auto [it, added] = devices_.try_emplace(name, device);
            if (!added) {
                if (it->second == device)
                    continue;
                it->second = std::move(device);
            }
            nameOfId_[advertised.id] = std::move(name);
            changed = true;
        }
    }
    return changed;
}

} // namespace kvgpu::dra
