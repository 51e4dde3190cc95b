// The prepared-claims checkpoint: what is saved is what a restarted plugin
// loads, a first start finds nothing, and a damaged file is refused by name
// rather than read as a smaller truth.
#include "dra/checkpoint.h"

#include "temp_tree.h"

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <filesystem>

using namespace kvgpu;
using namespace kvgpu::dra;
using nlohmann::json;

namespace {

Checkpoint twoClaims()
{
    Checkpoint checkpoint;
    PreparedClaim vm1{.uid = "0b6a0c43-4a6f-4b8e-9c61-2f4d3c1a9e77", .ns = "vms", .name = "vm1-gpu-claim-8pq4n"};
    vm1.devices = {{"vgpu", "node-a", "mdev-aa618089-8b16-4d01-a136-25a0f3c73123",
                    {"gpu-vm.example.com/vm-gpu=0b6a0c43-4a6f-4b8e-9c61-2f4d3c1a9e77-mdev-aa618089-8b16-4d01-a136-"
                     "25a0f3c73123",
                     "gpu-vm.example.com/metadata=0b6a0c43-4a6f-4b8e-9c61-2f4d3c1a9e77_vgpu"}}};
    vm1.files = {"/var/run/cdi/gpu-vm.example.com-vm-gpu_0b6a0c43-4a6f-4b8e-9c61-2f4d3c1a9e77.json",
                 "/var/run/cdi/gpu-vm.example.com_metadata_0b6a0c43-4a6f-4b8e-9c61-2f4d3c1a9e77_vgpu.json"};
    PreparedClaim vm2{.uid = "5d0c7c1e-1111-4222-8333-444455556666", .ns = "vms", .name = "gpus"};
    vm2.devices = {{"passthrough/t4", "node-a", "pci-0000-65-00-0", {"a=b"}},
                   {"passthrough/t4", "node-a", "pci-0000-66-00-0", {}}};
    checkpoint.claims.emplace(vm1.uid, vm1);
    checkpoint.claims.emplace(vm2.uid, vm2);
    return checkpoint;
}

void requireError(const Result<Checkpoint> &result, const std::string &part)
{
    REQUIRE_FALSE(result.ok());
    CHECK_MESSAGE(result.error().find(part) != std::string::npos, result.error());
}

} // namespace

TEST_CASE("a saved checkpoint loads back the same claims, and saving again replaces it")
{
    test::TempTree tree;
    const std::string path = tree.path("checkpoint.json");
    REQUIRE(saveCheckpoint(path, twoClaims()).ok());
    Result<Checkpoint> loaded = loadCheckpoint(path);
    REQUIRE_MESSAGE(loaded.ok(), loaded.error());
    CHECK(*loaded == twoClaims());

    Checkpoint fewer = twoClaims();
    fewer.claims.erase("5d0c7c1e-1111-4222-8333-444455556666");
    REQUIRE(saveCheckpoint(path, fewer).ok());
    loaded = loadCheckpoint(path);
    REQUIRE_MESSAGE(loaded.ok(), loaded.error());
    CHECK(*loaded == fewer);
    std::vector<std::string> files;
    for (const auto &entry : std::filesystem::directory_iterator(tree.root()))
        files.push_back(entry.path().filename().string());
    CHECK(files == std::vector<std::string>{"checkpoint.json"});
}

TEST_CASE("the file is versioned and checksummed JSON")
{
    json file = json::parse(checkpointText(twoClaims()));
    CHECK(file["version"] == 1);
    CHECK(file["checksum"].get<std::string>().size() == 16);
    CHECK(file["claims"].size() == 2);
    CHECK(file["claims"]["5d0c7c1e-1111-4222-8333-444455556666"]["devices"][0]["device"] == "pci-0000-65-00-0");
    CHECK(parseCheckpoint(checkpointText(Checkpoint{}), "x").value() == Checkpoint{});
}

TEST_CASE("no checkpoint file is an empty checkpoint: the first start")
{
    test::TempTree tree;
    Result<Checkpoint> loaded = loadCheckpoint(tree.path("checkpoint.json"));
    REQUIRE_MESSAGE(loaded.ok(), loaded.error());
    CHECK(loaded->claims.empty());
}

TEST_CASE("a damaged checkpoint is an error naming the file")
{
    test::TempTree tree;
    const std::string path = tree.path("checkpoint.json");
    const std::string good = checkpointText(twoClaims());

    tree.write("checkpoint.json", good.substr(0, good.size() / 2));
    requireError(loadCheckpoint(path), "checkpoint " + path + " is corrupt: not valid JSON");

    tree.write("checkpoint.json", "");
    requireError(loadCheckpoint(path), "checkpoint " + path + " is corrupt");

    // Valid JSON whose content was changed by hand: the checksum tells.
    json edited = json::parse(good);
    edited["claims"]["5d0c7c1e-1111-4222-8333-444455556666"]["name"] = "other";
    tree.write("checkpoint.json", edited.dump());
    requireError(loadCheckpoint(path), "the checksum does not match");

    tree.write("checkpoint.json", "[]");
    requireError(loadCheckpoint(path), "is corrupt: not a JSON object");

    json newer = json::parse(good);
    newer["version"] = 2;
    tree.write("checkpoint.json", newer.dump());
    requireError(loadCheckpoint(path), "has version 2; this plugin reads version 1");

    tree.mkdir("dir.json");
    requireError(loadCheckpoint(tree.path("dir.json")), tree.path("dir.json"));
}

TEST_CASE("a checkpoint with a good checksum but the wrong shape is corrupt, not half-read")
{
    // The file format restated: the checksum is FNV-1a 64 of the claims' compact JSON.
    auto fileWithClaims = [](const json &claims) {
        std::uint64_t hash = 14695981039346656037ull;
        for (char c : claims.dump()) {
            hash ^= static_cast<unsigned char>(c);
            hash *= 1099511628211ull;
        }
        return json{{"version", 1}, {"checksum", fmt::format("{:016x}", hash)}, {"claims", claims}}.dump();
    };
    const json good = json::parse(checkpointText(twoClaims()))["claims"];
    const std::string vm1 = "0b6a0c43-4a6f-4b8e-9c61-2f4d3c1a9e77";
    CHECK(parseCheckpoint(fileWithClaims(good), "checkpoint /x").value() == twoClaims());

    json claims = good;
    claims[vm1]["uid"] = "5d0c7c1e-1111-4222-8333-444455556666";
    requireError(parseCheckpoint(fileWithClaims(claims), "checkpoint /x"),
                 "checkpoint /x is corrupt: claims[" + vm1 + "] holds the claim 5d0c7c1e-1111-4222-8333-444455556666");

    claims = good;
    claims[vm1]["devices"][0]["cdiIds"][1] = 7;
    requireError(parseCheckpoint(fileWithClaims(claims), "checkpoint /x"),
                 "claims[" + vm1 + "].devices[0].cdiIds holds 7, not a string");

    claims = good;
    claims[vm1]["devices"] = json::object();
    requireError(parseCheckpoint(fileWithClaims(claims), "checkpoint /x"), "claims[" + vm1 + "].devices is not an array");

    claims = good;
    claims[vm1].erase("namespace");
    requireError(parseCheckpoint(fileWithClaims(claims), "checkpoint /x"), "claims[" + vm1 + "].namespace is not a string");

    claims = good;
    claims[vm1] = "prepared";
    requireError(parseCheckpoint(fileWithClaims(claims), "checkpoint /x"), "claims[" + vm1 + "] is not an object");
}
