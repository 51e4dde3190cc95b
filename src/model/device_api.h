// Which Kubernetes API offers a device: the kubelet's device plugin API (the
// default, what the original plugin did) or Dynamic Resource Allocation
// (ResourceSlices and a DRA kubelet plugin, src/dra). The admin chooses per
// rule of the resource configuration (`api: dra`), per node entry and for the
// whole file; a device is offered by exactly one of them.
//
// Pure values and functions; thread-safe.
#pragma once

#include <optional>
#include <string_view>

namespace kvgpu {

enum class DeviceApi { DevicePlugin, Dra };

// "device-plugin", "dra": the configuration's `api` values, and what `list`
// and check-config print.
const char *deviceApiWord(DeviceApi api);
// The API a word names; nullopt for any other word (case matters).
std::optional<DeviceApi> deviceApiOfWord(std::string_view word);

} // namespace kvgpu
