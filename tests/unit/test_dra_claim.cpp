// A ResourceClaim body as the API server sends it: what the plugin takes
// from it, and the errors an admin reads when it is not what prepare needs.
#include "dra/claim.h"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

using namespace kvgpu;
using namespace kvgpu::dra;
using nlohmann::json;

namespace {

const std::string kDriver = "gpu-vm.example.com";

// A claim generated from a template for VM vm1, allocated one vGPU of ours
// and one NIC of another driver, shaped as `kubectl get -o json` prints it.
json templateClaim()
{
    return json::parse(R"({
  "apiVersion": "resource.k8s.io/v1",
  "kind": "ResourceClaim",
  "metadata": {
    "name": "virt-launcher-vm1-x7k2q-gpu-claim-8pq4n",
    "namespace": "vms",
    "uid": "0b6a0c43-4a6f-4b8e-9c61-2f4d3c1a9e77",
    "generation": 1,
    "resourceVersion": "48121",
    "creationTimestamp": "2026-11-30T10:00:00Z",
    "annotations": {"resource.kubernetes.io/pod-claim-name": "gpu-claim"},
    "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "virt-launcher-vm1-x7k2q",
                         "uid": "a1b2", "controller": true, "blockOwnerDeletion": true}]
  },
  "spec": {"devices": {"requests": [
    {"name": "vgpu", "firstAvailable": [{"name": "t4", "deviceClassName": "t4-1q.gpu-vm.example.com"}]},
    {"name": "nic", "exactly": {"deviceClassName": "sriov-nic", "allocationMode": "ExactCount", "count": 1}}]}},
  "status": {
    "allocation": {
      "devices": {
        "results": [
          {"request": "nic", "driver": "sriov.example.org", "pool": "node-a", "device": "vf-3"},
          {"request": "vgpu/t4", "driver": "gpu-vm.example.com", "pool": "node-a",
           "device": "mdev-aa618089-8b16-4d01-a136-25a0f3c73123", "adminAccess": null}
        ],
        "config": [{"source": "FromClass", "requests": ["vgpu"],
                    "opaque": {"driver": "gpu-vm.example.com", "parameters": {"x": 1}}}]
      },
      "nodeSelector": {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In",
                                                                 "values": ["node-a"]}]}]}
    },
    "reservedFor": [{"resource": "pods", "name": "virt-launcher-vm1-x7k2q", "uid": "a1b2"}]
  }
})");
}

Result<AllocatedClaim> parse(const json &claim) { return parseClaim(claim.dump(), kDriver); }

void requireError(const Result<AllocatedClaim> &result, const std::string &part)
{
    REQUIRE_FALSE(result.ok());
    CHECK_MESSAGE(result.error().find(part) != std::string::npos, result.error());
}

} // namespace

TEST_CASE("a template claim gives its identity, pod-local name and only this driver's devices")
{
    Result<AllocatedClaim> claim = parse(templateClaim());
    REQUIRE_MESSAGE(claim.ok(), claim.error());
    CHECK(claim->uid == "0b6a0c43-4a6f-4b8e-9c61-2f4d3c1a9e77");
    CHECK(claim->name == "virt-launcher-vm1-x7k2q-gpu-claim-8pq4n");
    CHECK(claim->ns == "vms");
    CHECK(claim->generation == 1);
    CHECK(claim->podClaimName == "gpu-claim");
    REQUIRE(claim->results.size() == 1);
    CHECK(claim->results[0] == AllocationResult{"vgpu/t4", "vgpu", "node-a",
                                                "mdev-aa618089-8b16-4d01-a136-25a0f3c73123", false});
}

TEST_CASE("a directly named claim has no pod-local name; admin access is read")
{
    json body = templateClaim();
    body["metadata"].erase("annotations");
    body["metadata"].erase("generation");
    body["status"]["allocation"]["devices"]["results"][1]["adminAccess"] = true;
    body["status"]["allocation"]["devices"]["results"][1]["request"] = "vgpu";
    Result<AllocatedClaim> claim = parse(body);
    REQUIRE_MESSAGE(claim.ok(), claim.error());
    CHECK_FALSE(claim->podClaimName.has_value());
    CHECK_FALSE(claim->generation.has_value());
    REQUIRE(claim->results.size() == 1);
    CHECK(claim->results[0].request == "vgpu");
    CHECK(claim->results[0].baseRequest == "vgpu");
    CHECK(claim->results[0].adminAccess);
}

TEST_CASE("results of other drivers are skipped whatever their shape; an allocation with none of ours is empty")
{
    json body = templateClaim();
    auto &results = body["status"]["allocation"]["devices"]["results"];
    results[0] = {{"driver", "other.example.org"}, {"pool", 7}};
    results.erase(1);
    Result<AllocatedClaim> claim = parse(body);
    REQUIRE_MESSAGE(claim.ok(), claim.error());
    CHECK(claim->results.empty());
}

TEST_CASE("several results keep the claim's order, each with its base request")
{
    json body = templateClaim();
    auto &results = body["status"]["allocation"]["devices"]["results"];
    results.push_back({{"request", "gpus/a100"}, {"driver", kDriver}, {"pool", "node-a"}, {"device", "pci-0000-65-00-0"}});
    results.push_back({{"request", "gpus/a100"}, {"driver", kDriver}, {"pool", "node-a"}, {"device", "pci-0000-66-00-0"}});
    Result<AllocatedClaim> claim = parse(body);
    REQUIRE_MESSAGE(claim.ok(), claim.error());
    REQUIRE(claim->results.size() == 3);
    CHECK(claim->results[1].baseRequest == "gpus");
    CHECK(claim->results[2].device == "pci-0000-66-00-0");
    CHECK(baseRequestOf("a/b/c") == "a");
    CHECK(baseRequestOf("plain") == "plain");
}

TEST_CASE("a claim without status.allocation is not allocated, and says which claim")
{
    json body = templateClaim();
    body["status"].erase("allocation");
    requireError(parse(body), "ResourceClaim vms/virt-launcher-vm1-x7k2q-gpu-claim-8pq4n is not allocated");
    body.erase("status");
    requireError(parse(body), "is not allocated");
    body["status"] = {{"allocation", nullptr}};
    requireError(parse(body), "is not allocated");
}

TEST_CASE("a body that is no ResourceClaim is refused as such")
{
    requireError(parseClaim("", kDriver), "not valid JSON");
    requireError(parseClaim("{\"kind\":", kDriver), "not valid JSON");
    requireError(parseClaim("\xff\xfe garbage", kDriver), "not valid JSON");
    requireError(parseClaim("[1,2,3]", kDriver), "is an array in JSON, not an object");
    requireError(parseClaim("null", kDriver), "not an object");
    json body = templateClaim();
    body["kind"] = "Pod";
    requireError(parse(body), "not a ResourceClaim: kind is Pod");
    body.erase("kind");
    requireError(parse(body), "not a ResourceClaim: kind is missing");
    // A Status object, as the API server answers a GET of a deleted claim.
    requireError(parseClaim(R"({"kind":"Status","status":"Failure","reason":"NotFound"})", kDriver),
                 "kind is Status");
}

TEST_CASE("missing or mistyped fields are named")
{
    json body = templateClaim();
    body["metadata"].erase("uid");
    requireError(parse(body), "ResourceClaim metadata.uid is missing");

    body = templateClaim();
    body["metadata"]["namespace"] = 42;
    requireError(parse(body), "metadata.namespace is a number, not a string");

    body = templateClaim();
    body["metadata"]["name"] = "";
    requireError(parse(body), "metadata.name is empty");

    body = templateClaim();
    body["metadata"] = "x";
    requireError(parse(body), "no metadata object");

    body = templateClaim();
    body["metadata"]["annotations"] = json::array();
    requireError(parse(body), "metadata.annotations is an array, not an object");

    body = templateClaim();
    body["metadata"]["annotations"]["resource.kubernetes.io/pod-claim-name"] = false;
    requireError(parse(body), "annotation resource.kubernetes.io/pod-claim-name is not a non-empty string");

    body = templateClaim();
    body["metadata"]["generation"] = "1";
    requireError(parse(body), "metadata.generation is a string, not an integer");

    body = templateClaim();
    body["status"]["allocation"]["devices"]["results"] = json::object();
    requireError(parse(body), "status.allocation.devices.results is an object, not an array");

    body = templateClaim();
    body["status"]["allocation"] = 3;
    requireError(parse(body), "status.allocation is a number, not an object");
}

TEST_CASE("a result of this driver without pool, device or a usable request is an error naming its index")
{
    auto withOurs = [](const char *key, json value) {
        json body = templateClaim();
        json &ours = body["status"]["allocation"]["devices"]["results"][1];
        if (value.is_null())
            ours.erase(key);
        else
            ours[key] = value;
        return parse(body);
    };
    requireError(withOurs("pool", nullptr), "status.allocation.devices.results[1].pool is missing");
    requireError(withOurs("device", ""), "results[1].device is empty");
    requireError(withOurs("device", json::array()), "results[1].device is an array, not a string");
    requireError(withOurs("request", "/sub"), "results[1].request /sub has no request name before '/'");
    requireError(withOurs("adminAccess", "yes"), "results[1].adminAccess is a string, not a boolean");

    json body = templateClaim();
    body["status"]["allocation"]["devices"]["results"][1].erase("driver");
    requireError(parse(body), "results[1] has no driver");
    body["status"]["allocation"]["devices"]["results"][1] = 5;
    requireError(parse(body), "results[1] has no driver");
}
