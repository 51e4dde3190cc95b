// The devices this node offers through DRA, kept from the device index's
// changes: only the devices whose API is DRA (model/device_api.h), by their
// DRA device name. The DRA side (dra_side.h) hands a copy to the slice
// publisher and to NodePrepareResources whenever it changes.
//
// Thread safety: thread-compatible; the DRA side keeps it on the loop thread.
#pragma once

#include "dra/dra_device.h"
#include "index/index_changes.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace kvgpu::dra {

// DRA devices by draDeviceName.
using DevicesByName = std::map<std::string, DraDevice>;

class DraPool {
public:
    // Applies one publish of the index; returns whether the pool changed
    // (a device added, removed or changed, its health included).
    bool apply(const IndexChanges &changes);

    const DevicesByName &devices() const { return devices_; }

private:
    DevicesByName devices_;
    std::map<std::string, std::string> nameOfId_; // index id -> DRA device name
};

} // namespace kvgpu::dra
