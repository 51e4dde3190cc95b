// KEP-5304 device metadata: the file that tells KubeVirt's virt-launcher
// which host device a claim's request got. Per claim and base request: a
// host file under the plugin's data directory, mounted read-only by a CDI
// spec of its own at the path virt-launcher globs; the mount's CDI id goes
// with the first device of that request.
//
//   host:      <pluginDataDir>/dra-device-metadata/<ns>_<claimName>/<baseRequest>/metadata.json
//   container: /var/run/kubernetes.io/dra-device-attributes/resourceclaims/<claimName>/<baseRequest>/<driver>-metadata.json
//              .../resourceclaimtemplates/<podClaimName>/<baseRequest>/<driver>-metadata.json (template claims)
//   CDI spec:  <driver>_metadata_<claimUid>_<baseRequest>.json, kind <driver>/metadata,
//              device <claimUid>_<baseRequest>, one mount [ro, bind]
//
// The file holds one DeviceMetadata object per API version, newest first,
// one per line; today only metadata.resource.k8s.io/v1alpha1. A device's
// attributes are exactly what KubeVirt reads: `mdevUUID` for an mdev,
// `resource.kubernetes.io/pciBusID` for a PCI function (passthrough or
// SR-IOV VF), never both (virt-launcher would take a VF for an mdev).
//
// Pure functions; thread-safe.
#pragma once

#include "base/result.h"
#include "dra/claim.h"
#include "dra/dra_device.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kvgpu::dra {

inline constexpr const char *kMetadataApiVersion = "metadata.resource.k8s.io/v1alpha1";
inline constexpr const char *kMetadataContainerBase = "/var/run/kubernetes.io/dra-device-attributes";

// <pluginDataDir>/dra-device-metadata/<ns>_<claimName>: everything of one
// claim, removed as a whole at unprepare.
std::string metadataClaimDir(const std::string &pluginDataDir, const std::string &ns, const std::string &claimName);
// <metadataClaimDir>/<baseRequest>/metadata.json.
std::string metadataHostPath(const std::string &pluginDataDir, const std::string &ns, const std::string &claimName,
                             const std::string &baseRequest);
// Where virt-launcher finds the file: under resourceclaimtemplates/<podClaimName>
// when the claim came from a template, resourceclaims/<claimName> otherwise.
std::string metadataContainerPath(const std::string &driver, const AllocatedClaim &claim,
                                  const std::string &baseRequest);

// The metadata attributes of a device: {"mdevUUID": {"string": uuid}} or
// {"resource.kubernetes.io/pciBusID": {"string": bdf}}, lowercase.
nlohmann::json metadataAttributes(const DraDevice &device);

// One allocated device of a request, with its attributes.
struct MetadataDevice {
    std::string request; // as allocated, may be "req/sub"
    std::string pool;
    std::string device;
    nlohmann::json attributes;
};

// The metadata.json text for the devices of one base request of `claim`:
// one line per version, each ending in '\n'. requests[] has one entry per
// allocated request name, in the order first seen.
std::string metadataFileContent(const std::string &driver, const AllocatedClaim &claim,
                                const std::vector<MetadataDevice> &devices);

// "<claimUid>_<baseRequest>", "<driver>/metadata", its CDI id and file name.
std::string metadataCdiDeviceName(const std::string &claimUid, const std::string &baseRequest);
std::string metadataCdiKind(const std::string &driver);
std::string metadataCdiId(const std::string &driver, const std::string &claimUid, const std::string &baseRequest);
std::string metadataSpecFileName(const std::string &driver, const std::string &claimUid,
                                 const std::string &baseRequest);
// The CDI spec mounting `hostPath` read-only at `containerPath`.
nlohmann::json metadataSpec(const std::string &driver, const std::string &claimUid, const std::string &baseRequest,
                            const std::string &hostPath, const std::string &containerPath);

// Everything to write for one base request of a claim.
struct RequestMetadata {
    std::string baseRequest;
    std::string hostPath;      // write `content` here
    std::string containerPath;
    std::string content;
    std::string specFileName;  // write `spec` under this name in the CDI directory
    nlohmann::json spec;
    std::string cdiId;         // add to the first device of the request
};

// The metadata of every base request of `claim`'s results (this driver's),
// in the order the requests first appear. `devices` maps DRA device names
// (draDeviceName) to the devices of this node; a result naming a device
// that is not there is an error naming it.
Result<std::vector<RequestMetadata>> claimMetadata(const std::string &driver, const std::string &pluginDataDir,
                                                   const AllocatedClaim &claim,
                                                   const std::map<std::string, DraDevice> &devices);

} // namespace kvgpu::dra
