// NodePrepareResources and NodeUnprepareResources: what the kubelet plugin
// (kubelet_plugin.h) asks of this driver for each claim.
//
// Prepare reads the claim from the API server, checks that it is the claim
// the kubelet means (its UID), takes this driver's allocated devices, and
// checks each as Allocate does on the device plugin side (offered by this
// node, healthy, still bound as advertised, profile unchanged, its /dev nodes
// there; allocation/allocation.h). Then it writes, each atomically, the
// claim's CDI spec (the device nodes a VM needs), the KEP-5304 metadata file
// of every request with its CDI mount (what KubeVirt's virt-launcher reads),
// and the checkpoint, and answers with the CDI ids. A claim already in the
// checkpoint gets the same answer again without reading anything, so prepare
// is idempotent across restarts of the plugin and of the kubelet. Unprepare
// removes what prepare wrote; a claim it does not know is success.
//
// A claim that cannot be served gets its own error, in words an admin can act
// on ("device pci-0000-65-00-0 is unhealthy: ..."); others in the same call
// are not affected.
//
// Thread safety: prepare() and unprepare() are called one at a time (the
// kubelet plugin serializes them) on a thread that may block; the device
// snapshot comes from the loop through `devices`, which is thread-safe.
#pragma once

#include "dra/checkpoint.h"
#include "dra/dra_pool.h"
#include "dra/kubelet_plugin.h"
#include "kube/client.h"
#include "metrics/metrics.h"
#include "sysfs/node_reader.h"
#include "sysfs/sysfs.h"

#include <functional>
#include <memory>
#include <string>

namespace kvgpu::dra {

struct ClaimPreparerOptions {
    std::string driver;
    std::string nodeName;      // the pool's name
    std::string pluginDataDir; // /var/lib/kubelet/plugins/<driver>: checkpoint and metadata files
    std::string cdiDir;        // /var/run/cdi
    SysfsTree sysfs;
    DevTree dev;
    Metrics *metrics = nullptr;
};

class ClaimPreparer : public ClaimHandler {
public:
    using DeviceSnapshot = std::function<std::shared_ptr<const DevicesByName>()>;

    // Reads the checkpoint; a corrupt one is an error (the caller decides
    // whether to start empty).
    static Result<std::unique_ptr<ClaimPreparer>> create(kube::Client &client, ClaimPreparerOptions options,
                                                         DeviceSnapshot devices);

    std::map<std::string, ClaimOutcome> prepare(const std::vector<ClaimRef> &claims) override;
    std::map<std::string, std::string> unprepare(const std::vector<ClaimRef> &claims) override;

    // The checkpoint's file.
    static std::string checkpointPath(const std::string &pluginDataDir);

private:
    ClaimPreparer(kube::Client &client, ClaimPreparerOptions options, DeviceSnapshot devices, Checkpoint checkpoint);
    Result<PreparedClaim> prepareClaim(const ClaimRef &ref, const DevicesByName &devices);
    Result<void> unprepareClaim(const PreparedClaim &claim);

    kube::Client &client_;
    const ClaimPreparerOptions options_;
    DeviceSnapshot devices_;
    Checkpoint checkpoint_;
};

} // namespace kvgpu::dra
