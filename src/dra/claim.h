// A ResourceClaim as the kubelet plugin needs it at NodePrepareResources:
// who it is (uid, namespace, name, the pod-local name of a template claim)
// and which of its allocated devices are this driver's. Parsed from the API
// server's JSON body (resource.k8s.io/v1; v1beta2 has the same fields here).
//
// Every failure is an error message a cluster admin can act on ("ResourceClaim
// vms/vm1-gpu is not allocated"); nothing in the input can make the parser
// throw or crash (the JSON parser does not throw, and every field's type is
// checked before it is read).
//
// Pure functions; thread-safe.
#pragma once

#include "base/result.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kvgpu::dra {

// The annotation a claim made from a ResourceClaimTemplate carries: the
// pod-local claim name.
inline constexpr const char *kPodClaimNameAnnotation = "resource.kubernetes.io/pod-claim-name";

// One entry of status.allocation.devices.results.
struct AllocationResult {
    std::string request;     // as allocated: "gpu" or, for a FirstAvailable subrequest, "gpu/t4"
    std::string baseRequest; // the request of the claim's spec: "gpu"; never holds '/'
    std::string pool;
    std::string device;
    bool adminAccess = false;

    bool operator==(const AllocationResult &) const = default;
};

struct AllocatedClaim {
    std::string uid, name, ns;
    std::optional<std::int64_t> generation;  // metadata.generation, when present
    std::optional<std::string> podClaimName; // the kPodClaimNameAnnotation, for template claims
    std::vector<AllocationResult> results;   // this driver's only, in the claim's order; may be empty

    bool operator==(const AllocatedClaim &) const = default;
};

// The base request of an allocated request name: the part before the first '/'.
std::string_view baseRequestOf(std::string_view request);

// Parses a ResourceClaim body. Errors: not JSON, not a ResourceClaim, a
// missing or mistyped metadata field, no status.allocation ("not
// allocated"), a result of this driver with a missing or mistyped field.
// Results of other drivers are skipped, whatever their shape.
Result<AllocatedClaim> parseClaim(std::string_view json, std::string_view driver);

} // namespace kvgpu::dra
