// The CDI spec a prepared claim leaves for the container runtime, and how it
// is put in place: whole or not at all, and gone at unprepare.
#include "dra/cdi.h"
#include "dra/json_text.h"

#include "temp_tree.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <sys/stat.h>

using namespace kvgpu;
using namespace kvgpu::dra;
using nlohmann::json;

namespace {

const std::string kDriver = "gpu-vm.example.com";
const std::string kClaimUid = "0b6a0c43-4a6f-4b8e-9c61-2f4d3c1a9e77";

std::vector<std::string> entries(const std::string &dir)
{
    std::vector<std::string> names;
    for (const auto &entry : std::filesystem::directory_iterator(dir))
        names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

std::string slurp(const std::string &path)
{
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

} // namespace

TEST_CASE("a claim's spec lists each device's nodes at their host paths")
{
    std::vector<DeviceNodes> devices = {
        {cdiDeviceName(kClaimUid, "pci-0000-65-00-0"), {"/dev/vfio/vfio", "/dev/vfio/12", "/dev/iommu"}},
        {cdiDeviceName(kClaimUid, "mdev-aa618089-8b16-4d01-a136-25a0f3c73123"),
         {"/dev/vfio/vfio", "/dev/vfio/devices/vfio3"}},
    };
    json expected = json::parse(R"({
      "cdiVersion": "0.5.0",
      "kind": "gpu-vm.example.com/vm-gpu",
      "devices": [
        {"name": "0b6a0c43-4a6f-4b8e-9c61-2f4d3c1a9e77-pci-0000-65-00-0",
         "containerEdits": {"deviceNodes": [
           {"path": "/dev/vfio/vfio", "hostPath": "/dev/vfio/vfio"},
           {"path": "/dev/vfio/12", "hostPath": "/dev/vfio/12"},
           {"path": "/dev/iommu", "hostPath": "/dev/iommu"}]}},
        {"name": "0b6a0c43-4a6f-4b8e-9c61-2f4d3c1a9e77-mdev-aa618089-8b16-4d01-a136-25a0f3c73123",
         "containerEdits": {"deviceNodes": [
           {"path": "/dev/vfio/vfio", "hostPath": "/dev/vfio/vfio"},
           {"path": "/dev/vfio/devices/vfio3", "hostPath": "/dev/vfio/devices/vfio3"}]}}
      ]})");
    CHECK(claimSpec(kDriver, kClaimUid, devices) == expected);
    CHECK(claimSpec(kDriver, kClaimUid, {}) ==
          json{{"cdiVersion", "0.5.0"}, {"kind", "gpu-vm.example.com/vm-gpu"}, {"devices", json::array()}});
}

TEST_CASE("CDI ids and file names follow the CDI conventions")
{
    CHECK(cdiKind(kDriver) == "gpu-vm.example.com/vm-gpu");
    CHECK(cdiId(cdiKind(kDriver), cdiDeviceName(kClaimUid, "pci-0000-65-00-0")) ==
          "gpu-vm.example.com/vm-gpu=0b6a0c43-4a6f-4b8e-9c61-2f4d3c1a9e77-pci-0000-65-00-0");
    CHECK(claimSpecFileName(kDriver, kClaimUid) == "gpu-vm.example.com-vm-gpu_0b6a0c43-4a6f-4b8e-9c61-2f4d3c1a9e77.json");
}

TEST_CASE("a spec is written whole, replaces the old one and leaves no temporary file")
{
    test::TempTree tree;
    const std::string file = claimSpecFileName(kDriver, kClaimUid);
    json first = claimSpec(kDriver, kClaimUid, {{cdiDeviceName(kClaimUid, "pci-0000-65-00-0"), {"/dev/vfio/12"}}});
    REQUIRE(writeSpecAtomically(tree.root(), file, first).ok());
    CHECK(json::parse(slurp(tree.path(file))) == first);

    json second = claimSpec(kDriver, kClaimUid, {{cdiDeviceName(kClaimUid, "pci-0000-66-00-0"), {"/dev/vfio/13"}}});
    REQUIRE(writeSpecAtomically(tree.root(), file, second).ok());
    CHECK(json::parse(slurp(tree.path(file))) == second);
    CHECK(entries(tree.root()) == std::vector<std::string>{file});

    struct stat st;
    REQUIRE(::stat(tree.path(file).c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0644);
}

TEST_CASE("a spec that cannot be written is an error naming it, and the old one stays")
{
    test::TempTree tree;
    const std::string file = claimSpecFileName(kDriver, kClaimUid);
    Result<void> missingDir = writeSpecAtomically(tree.path("absent"), file, json::object());
    REQUIRE_FALSE(missingDir.ok());
    CHECK_MESSAGE(missingDir.error().find(tree.path("absent") + "/" + file) != std::string::npos, missingDir.error());

    // The target is a non-empty directory: rename fails, nothing else changes.
    tree.write(file + "/keep", "x");
    Result<void> blocked = writeSpecAtomically(tree.root(), file, json::object());
    REQUIRE_FALSE(blocked.ok());
    CHECK_MESSAGE(blocked.error().find(file) != std::string::npos, blocked.error());
    CHECK(entries(tree.root()) == std::vector<std::string>{file});
}

TEST_CASE("removing a spec removes it; one already gone is fine")
{
    test::TempTree tree;
    const std::string file = claimSpecFileName(kDriver, kClaimUid);
    REQUIRE(writeSpecAtomically(tree.root(), file, json::object()).ok());
    CHECK(removeSpec(tree.root(), file).ok());
    CHECK(entries(tree.root()).empty());
    CHECK(removeSpec(tree.root(), file).ok());
}

TEST_CASE("a value with bytes that are not UTF-8 is still written, never thrown about")
{
    json odd = {{"name", std::string("bad\xff")}};
    CHECK(dumpJson(odd).find("bad") != std::string::npos);
    test::TempTree tree;
    CHECK(writeSpecAtomically(tree.root(), "odd.json", odd).ok());
}
