#include "model/device_api.h"

namespace kvgpu {

const char *deviceApiWord(DeviceApi api) { return api == DeviceApi::Dra ? "dra" : "device-plugin"; }

std::optional<DeviceApi> deviceApiOfWord(std::string_view word)
{
    if (word == "dra")
        return DeviceApi::Dra;
    if (word == "device-plugin")
        return DeviceApi::DevicePlugin;
    return std::nullopt;
}

} // namespace kvgpu
