#include "dra/claim_preparer.h"

#include "allocation/allocation.h"
#include "base/log.h"
#include "dra/atomic_file.h"
#include "dra/cdi.h"
#include "dra/claim.h"
#include "dra/device_metadata.h"
#include "sysfs/egm.h"

#include <filesystem>
#include <set>

#include <fmt/format.h>

namespace kvgpu::dra {

namespace {

std::string describeClaim(const ClaimRef &ref) { return ref.ns + "/" + ref.name; }

// Writes `content` to `path` (its directory made first) atomically.
Result<void> writeFile(const std::string &path, std::string_view content)
{
    std::filesystem::path target(path);
    std::error_code ec;
    std::filesystem::create_directories(target.parent_path(), ec);
    if (ec)
        return Error{fmt::format("cannot create {}: {}", target.parent_path().string(), ec.message())};
    return writeFileAtomically(target.parent_path().string(), target.filename().string(), content);
}

Result<void> removePath(const std::string &path)
{
    std::filesystem::path target(path);
    return removeFile(target.parent_path().string(), target.filename().string());
}

ClaimOutcome outcomeOf(const PreparedClaim &claim)
{
    ClaimOutcome outcome;
    for (const CheckpointDevice &device : claim.devices)
        outcome.devices.push_back(PreparedDevice{.requestNames = {std::string(baseRequestOf(device.request))},
                                                 .pool = device.pool,
                                                 .device = device.device,
                                                 .cdiIds = device.cdiIds});
    return outcome;
}

std::vector<std::string> pathsOf(const ContainerAllocation &allocation)
{
    std::vector<std::string> paths;
    for (const DeviceNode &node : allocation.devices)
        paths.push_back(node.hostPath);
    return paths;
}

} // namespace

std::string ClaimPreparer::checkpointPath(const std::string &pluginDataDir)
{
    return pluginDataDir + "/checkpoint.json";
}

Result<std::unique_ptr<ClaimPreparer>> ClaimPreparer::create(kube::Client &client, ClaimPreparerOptions options,
                                                             DeviceSnapshot devices)
{
    Result<Checkpoint> checkpoint = loadCheckpoint(checkpointPath(options.pluginDataDir));
    if (!checkpoint)
        return Error{checkpoint.error()};
    if (!checkpoint->claims.empty())
        log::info("prepared claims from the checkpoint", {{"claims", std::to_string(checkpoint->claims.size())}});
    return std::unique_ptr<ClaimPreparer>(
        new ClaimPreparer(client, std::move(options), std::move(devices), std::move(checkpoint).value()));
}

ClaimPreparer::ClaimPreparer(kube::Client &client, ClaimPreparerOptions options, DeviceSnapshot devices,
                             Checkpoint checkpoint)
    : client_(client), options_(std::move(options)), devices_(std::move(devices)), checkpoint_(std::move(checkpoint))
{
}

std::map<std::string, ClaimOutcome> ClaimPreparer::prepare(const std::vector<ClaimRef> &claims)
{
    std::shared_ptr<const DevicesByName> devices = devices_();
    std::map<std::string, ClaimOutcome> out;
    for (const ClaimRef &ref : claims) {
        if (auto known = checkpoint_.claims.find(ref.uid); known != checkpoint_.claims.end()) {
            out[ref.uid] = outcomeOf(known->second);
            continue;
        }
        Result<PreparedClaim> prepared = prepareClaim(ref, *devices);
        if (!prepared) {
            log::warn("cannot prepare ResourceClaim", {{"claim", describeClaim(ref)}, {"uid", ref.uid},
                                                       {"error", prepared.error()}});
            if (options_.metrics)
                options_.metrics->draClaimCall("prepare", false);
            out[ref.uid] = ClaimOutcome{.error = prepared.error()};
            continue;
        }
        out[ref.uid] = outcomeOf(*prepared);
        log::info("prepared ResourceClaim", {{"claim", describeClaim(ref)}, {"uid", ref.uid},
                                             {"devices", std::to_string(prepared->devices.size())}});
        if (options_.metrics)
            options_.metrics->draClaimCall("prepare", true);
    }
    return out;
}

Result<PreparedClaim> ClaimPreparer::prepareClaim(const ClaimRef &ref, const DevicesByName &devices)
{
    const std::string what = "ResourceClaim " + describeClaim(ref);
    Result<kube::Response> got = client_.request(
        "GET", fmt::format("/apis/resource.k8s.io/v1/namespaces/{}/resourceclaims/{}", ref.ns, ref.name));
    if (!got)
        return Error{fmt::format("cannot read {}: {}", what, got.error())};
    if (got->status == 404)
        return Error{what + " does not exist (deleted before its pod started?)"};
    if (!got->succeeded())
        return Error{fmt::format("cannot read {}: HTTP {}: {}", what, got->status, kube::statusMessage(*got))};
    Result<AllocatedClaim> claim = parseClaim(got->body, options_.driver);
    if (!claim)
        return Error{claim.error()};
    if (claim->uid != ref.uid)
        return Error{fmt::format("{} got replaced: the API server has UID {}, the kubelet asked for {}", what,
                                 claim->uid, ref.uid)};

    // Every device must be this node's, offered now, fit for a VM, and no
    // other claim's.
    std::map<std::string, std::string> holder; // device -> claim that has it prepared
    for (const auto &[uid, prepared] : checkpoint_.claims)
        for (const CheckpointDevice &device : prepared.devices)
            holder[device.device] = prepared.ns + "/" + prepared.name + " (UID " + uid + ")";
    std::vector<DeviceNodes> nodes;
    std::vector<std::string> pciIds;
    for (const AllocationResult &result : claim->results) {
        if (result.pool != options_.nodeName)
            return Error{fmt::format("device {} of {} is in pool {}, not in this node's pool {}", result.device, what,
                                     result.pool, options_.nodeName)};
        auto found = devices.find(result.device);
        if (found == devices.end())
            return Error{fmt::format("device {} of {} is not offered by this node any more (removed, unbound, or "
                                     "moved to the device plugin API)",
                                     result.device, what)};
        const DraDevice &device = found->second;
        if (auto other = holder.find(result.device); other != holder.end() && !result.adminAccess)
            return Error{fmt::format("device {} of {} is already prepared for ResourceClaim {}; one device cannot "
                                     "go to two VMs",
                                     result.device, what, other->second)};
        if (!device.device.healthy)
            return Error{fmt::format("device {} ({}) of {} is unhealthy: {}", result.device, device.device.id, what,
                                     device.device.healthReason)};
        Resource resource{device.resource, device.kind, {device.device}};
        Result<ContainerAllocation, AllocationError> allocation =
            allocateContainer(resource, {device.device.id}, options_.sysfs, options_.dev);
        if (!allocation)
            return Error{fmt::format("device {} of {}: {}", result.device, what, allocation.failure().message)};
        nodes.push_back(DeviceNodes{cdiDeviceName(ref.uid, result.device), pathsOf(*allocation)});
        if (device.kind != DeviceKind::Vgpu)
            pciIds.push_back(device.device.id);
    }
    // Grace EGM: a region whose GPUs the claim holds all goes with its first
    // device (single-GPU regions came with their device already).
    if (pciIds.size() > 1) {
        ContainerAllocation egm;
        for (const std::string &region : addEgmNodes(egm, readEgmRegions(options_.sysfs, options_.dev), pciIds))
            log::warn("EGM region held by the claim has no device node; preparing without it",
                      {{"region", region}, {"claim", describeClaim(ref)}});
        std::set<std::string> have(nodes.front().paths.begin(), nodes.front().paths.end());
        for (const std::string &path : pathsOf(egm))
            if (have.insert(path).second)
                nodes.front().paths.push_back(path);
    }
    Result<std::vector<RequestMetadata>> metadata =
        claimMetadata(options_.driver, options_.pluginDataDir, *claim, devices);
    if (!metadata)
        return Error{metadata.error()};

    // Written before the answer, removed again if anything fails.
    PreparedClaim prepared{.uid = ref.uid, .ns = ref.ns, .name = ref.name};
    auto fail = [&](const std::string &error) -> Result<PreparedClaim> {
        (void)unprepareClaim(prepared);
        return Error{error};
    };
    if (!nodes.empty()) {
        const std::string file = claimSpecFileName(options_.driver, ref.uid);
        prepared.files.push_back(options_.cdiDir + "/" + file);
        if (Result<void> written =
                writeSpecAtomically(options_.cdiDir, file, claimSpec(options_.driver, ref.uid, nodes));
            !written)
            return fail(fmt::format("cannot write the CDI spec of {}: {}", what, written.error()));
    }
    std::map<std::string, std::string> metadataIdOf; // base request -> CDI id
    for (const RequestMetadata &request : *metadata) {
        prepared.files.push_back(request.hostPath);
        if (Result<void> written = writeFile(request.hostPath, request.content); !written)
            return fail(fmt::format("cannot write the device metadata of {}: {}", what, written.error()));
        prepared.files.push_back(options_.cdiDir + "/" + request.specFileName);
        if (Result<void> written = writeSpecAtomically(options_.cdiDir, request.specFileName, request.spec);
            !written)
            return fail(fmt::format("cannot write the metadata CDI spec of {}: {}", what, written.error()));
        metadataIdOf[request.baseRequest] = request.cdiId;
    }
    const std::string kind = cdiKind(options_.driver);
    for (const AllocationResult &result : claim->results) {
        CheckpointDevice device{.request = result.request, .pool = result.pool, .device = result.device,
                                .cdiIds = {cdiId(kind, cdiDeviceName(ref.uid, result.device))}};
        // The metadata mount goes with the first device of its request.
        if (auto id = metadataIdOf.find(result.baseRequest); id != metadataIdOf.end()) {
            device.cdiIds.push_back(id->second);
            metadataIdOf.erase(id);
        }
        prepared.devices.push_back(std::move(device));
    }
    checkpoint_.claims[ref.uid] = prepared;
    if (Result<void> saved = saveCheckpoint(checkpointPath(options_.pluginDataDir), checkpoint_); !saved) {
        checkpoint_.claims.erase(ref.uid);
        return fail(fmt::format("cannot save the checkpoint: {}", saved.error()));
    }
    return prepared;
}

std::map<std::string, std::string> ClaimPreparer::unprepare(const std::vector<ClaimRef> &claims)
{
    std::map<std::string, std::string> out;
    for (const ClaimRef &ref : claims) {
        out[ref.uid] = "";
        auto known = checkpoint_.claims.find(ref.uid);
        if (known == checkpoint_.claims.end())
            continue; // never prepared here, or unprepared before: nothing to undo
        if (Result<void> removed = unprepareClaim(known->second); !removed) {
            out[ref.uid] = removed.error();
            if (options_.metrics)
                options_.metrics->draClaimCall("unprepare", false);
            continue;
        }
        checkpoint_.claims.erase(known);
        if (Result<void> saved = saveCheckpoint(checkpointPath(options_.pluginDataDir), checkpoint_); !saved) {
            out[ref.uid] = fmt::format("cannot save the checkpoint: {}", saved.error());
            if (options_.metrics)
                options_.metrics->draClaimCall("unprepare", false);
            continue;
        }
        log::info("unprepared ResourceClaim", {{"claim", describeClaim(ref)}, {"uid", ref.uid}});
        if (options_.metrics)
            options_.metrics->draClaimCall("unprepare", true);
    }
    return out;
}

Result<void> ClaimPreparer::unprepareClaim(const PreparedClaim &claim)
{
    std::string errors;
    for (const std::string &file : claim.files)
        if (Result<void> removed = removePath(file); !removed)
            errors += (errors.empty() ? "" : "; ") + removed.error();
    // The metadata directories of the claim, now empty.
    std::error_code ec;
    std::filesystem::remove_all(metadataClaimDir(options_.pluginDataDir, claim.ns, claim.name), ec);
    if (!errors.empty())
        return Error{fmt::format("cannot remove the files of ResourceClaim {}/{}: {}", claim.ns, claim.name, errors)};
    return {};
}

} // namespace kvgpu::dra
