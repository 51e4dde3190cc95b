#include "app/uevent_dispatch.h"

#include "base/log.h"
#include "device/sysfs_parse.h"

namespace kvgpu {

void applyUevent(DeviceRegistry &registry, const Uevent &event)
{
    if (event.subsystem == "pci") {
        std::string errorEvent;
        if (auto it = event.properties.find("ERROR_EVENT"); it != event.properties.end())
            errorEvent = it->second;
        if (!errorEvent.empty())
            log::warn("PCIe error recovery event", {{"device", event.sysname}, {"event", errorEvent}});
        bool rebound = event.action == "add" || event.action == "remove" || event.action == "bind" ||
                       event.action == "unbind";
        registry.reconcilePciFunction(event.sysname, errorEvent, rebound);
    } else if (event.subsystem == "mdev") {
        registry.reconcileMdev(event.sysname);
    } else if (event.subsystem == "vfio") {
        // /dev/vfio/<N> for a group; anything else (the container node,
        // iommufd cdevs) is re-read as a whole.
        if (std::optional<int> group = parseGroupNumber(event.sysname))
            registry.reconcileVfioNode(*group);
        else
            registry.reconcileDevNodes();
    }
}

} // namespace kvgpu
