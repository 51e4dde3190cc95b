#include "dra/cdi.h"

#include "dra/atomic_file.h"
#include "dra/json_text.h"

namespace kvgpu::dra {

using nlohmann::json;

std::string cdiKind(const std::string &driver) { return driver + "/" + kCdiClass; }

std::string cdiDeviceName(const std::string &claimUid, const std::string &draDeviceName)
{
    return claimUid + "-" + draDeviceName;
}

std::string cdiId(const std::string &kind, const std::string &name) { return kind + "=" + name; }

std::string claimSpecFileName(const std::string &driver, const std::string &claimUid)
{
    return driver + "-" + kCdiClass + "_" + claimUid + ".json";
}

json claimSpec(const std::string &driver, const std::string &claimUid, const std::vector<DeviceNodes> &devices)
{
    (void)claimUid; // the device names carry it; kept so that callers state whose spec this is
    json entries = json::array();
    for (const DeviceNodes &device : devices) {
        json nodes = json::array();
        for (const std::string &path : device.paths)
            nodes.push_back(json{{"path", path}, {"hostPath", path}});
        entries.push_back(json{{"name", device.deviceName}, {"containerEdits", {{"deviceNodes", nodes}}}});
    }
    return json{{"cdiVersion", kCdiVersion}, {"kind", cdiKind(driver)}, {"devices", entries}};
}

Result<void> writeSpecAtomically(const std::string &dir, const std::string &fileName, const json &spec)
{
    return writeFileAtomically(dir, fileName, dumpJson(spec, 2) + "\n");
}

Result<void> removeSpec(const std::string &dir, const std::string &fileName) { return removeFile(dir, fileName); }

} // namespace kvgpu::dra
