#include "dra/device_metadata.h"

#include "base/strings.h"
#include "dra/cdi.h"
#include "dra/json_text.h"

#include <algorithm>

#include <fmt/format.h>

namespace kvgpu::dra {

using nlohmann::json;

std::string metadataClaimDir(const std::string &pluginDataDir, const std::string &ns, const std::string &claimName)
{
    return fmt::format("{}/dra-device-metadata/{}_{}", pluginDataDir, ns, claimName);
}

std::string metadataHostPath(const std::string &pluginDataDir, const std::string &ns, const std::string &claimName,
                             const std::string &baseRequest)
{
    return fmt::format("{}/{}/metadata.json", metadataClaimDir(pluginDataDir, ns, claimName), baseRequest);
}

std::string metadataContainerPath(const std::string &driver, const AllocatedClaim &claim,
                                  const std::string &baseRequest)
{
    if (claim.podClaimName)
        return fmt::format("{}/resourceclaimtemplates/{}/{}/{}-metadata.json", kMetadataContainerBase,
                           *claim.podClaimName, baseRequest, driver);
    return fmt::format("{}/resourceclaims/{}/{}/{}-metadata.json", kMetadataContainerBase, claim.name, baseRequest,
                       driver);
}

json metadataAttributes(const DraDevice &device)
{
    const std::string id = toLowerAscii(device.device.id);
    if (device.kind == DeviceKind::Vgpu)
        return json{{"mdevUUID", {{"string", id}}}};
    return json{{"resource.kubernetes.io/pciBusID", {{"string", id}}}};
}

std::string metadataFileContent(const std::string &driver, const AllocatedClaim &claim,
                                const std::vector<MetadataDevice> &devices)
{
    json requests = json::array();
    for (const MetadataDevice &device : devices) {
        auto same = [&](const json &r) { return r["name"] == device.request; };
        auto request = std::find_if(requests.begin(), requests.end(), same);
        if (request == requests.end()) {
            requests.push_back(json{{"name", device.request}, {"devices", json::array()}});
            request = requests.end() - 1;
        }
        (*request)["devices"].push_back(json{{"driver", driver},
                                             {"pool", device.pool},
                                             {"name", device.device},
                                             {"attributes", device.attributes}});
    }
    json metadata = {{"name", claim.name}, {"namespace", claim.ns}, {"uid", claim.uid}};
    if (claim.generation)
        metadata["generation"] = *claim.generation;
    json object = {{"apiVersion", kMetadataApiVersion}, {"kind", "DeviceMetadata"}, {"metadata", metadata},
                   {"requests", requests}};
    if (claim.podClaimName)
        object["podClaimName"] = *claim.podClaimName;
    // Newest version first; v1alpha1 is the only one so far.
    return dumpJson(object) + "\n";
}

std::string metadataCdiDeviceName(const std::string &claimUid, const std::string &baseRequest)
{
    return claimUid + "_" + baseRequest;
}

std::string metadataCdiKind(const std::string &driver) { return driver + "/metadata"; }

std::string metadataCdiId(const std::string &driver, const std::string &claimUid, const std::string &baseRequest)
{
    return cdiId(metadataCdiKind(driver), metadataCdiDeviceName(claimUid, baseRequest));
}

std::string metadataSpecFileName(const std::string &driver, const std::string &claimUid,
                                 const std::string &baseRequest)
{
    return fmt::format("{}_metadata_{}_{}.json", driver, claimUid, baseRequest);
}

json metadataSpec(const std::string &driver, const std::string &claimUid, const std::string &baseRequest,
                  const std::string &hostPath, const std::string &containerPath)
{
    json mount = {{"hostPath", hostPath}, {"containerPath", containerPath}, {"options", json::array({"ro", "bind"})}};
    json device = {{"name", metadataCdiDeviceName(claimUid, baseRequest)},
                   {"containerEdits", {{"mounts", json::array({mount})}}}};
    return json{{"cdiVersion", kCdiVersion}, {"kind", metadataCdiKind(driver)}, {"devices", json::array({device})}};
}

Result<std::vector<RequestMetadata>> claimMetadata(const std::string &driver, const std::string &pluginDataDir,
                                                   const AllocatedClaim &claim,
                                                   const std::map<std::string, DraDevice> &devices)
{
    std::vector<std::string> order;
    std::map<std::string, std::vector<MetadataDevice>> byBase;
    for (const AllocationResult &result : claim.results) {
        auto device = devices.find(result.device);
        if (device == devices.end())
            return Error{fmt::format("ResourceClaim {}/{}: device {} of request {} is not on this node", claim.ns,
                                     claim.name, result.device, result.request)};
        auto [group, added] = byBase.try_emplace(result.baseRequest);
        if (added)
            order.push_back(result.baseRequest);
        group->second.push_back(
            MetadataDevice{result.request, result.pool, result.device, metadataAttributes(device->second)});
    }

    std::vector<RequestMetadata> out;
    for (const std::string &base : order) {
        RequestMetadata m;
        m.baseRequest = base;
        m.hostPath = metadataHostPath(pluginDataDir, claim.ns, claim.name, base);
        m.containerPath = metadataContainerPath(driver, claim, base);
        m.content = metadataFileContent(driver, claim, byBase[base]);
        m.specFileName = metadataSpecFileName(driver, claim.uid, base);
        m.spec = metadataSpec(driver, claim.uid, base, m.hostPath, m.containerPath);
        m.cdiId = metadataCdiId(driver, claim.uid, base);
        out.push_back(std::move(m));
    }
    return out;
}

} // namespace kvgpu::dra
