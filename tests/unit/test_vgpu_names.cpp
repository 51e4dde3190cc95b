// SR-IOV vGPU VFs: which functions are advertised, under which profile name,
// and where the name comes from when the VF's own catalog no longer lists it.
#include "index/derivation.h"
#include "index/device_index.h"
#include "naming/vgpu_name_book.h"
#include "naming/vgpu_names.h"
#include "fake_names.h"
#include "temp_tree.h"

#include <doctest/doctest.h>

#include <fstream>

using namespace kvgpu;

namespace {

const VgpuType k18C{1414, "NVIDIA H200X-1-18C"};
const VgpuType k141C{1428, "NVIDIA H200X-141C"};

// A node built by hand: H200 cards (PFs on nvidia) and their VFs.
struct Cards {
    NodeObservation node;

    PciFunction &card(const std::string &pf, std::uint16_t device = 0x2335, int numa = 0)
    {
        PciFunction &f = node.functions[pf];
        f = PciFunction{.address = pf, .vendor = 0x10de, .device = device, .classCode = 0x030200, .driver = "nvidia",
                        .iommuGroup = 70, .numaNode = numa};
        f.sriovTotalVfs = 16;
        return f;
    }
    PciFunction &vf(const std::string &address, const std::string &pf, std::optional<std::uint32_t> profile,
                    std::vector<VgpuType> creatable = {}, int group = 71)
    {
        PciFunction &f = node.functions[address];
        f = PciFunction{.address = address, .vendor = 0x10de, .device = node.functions[pf].device,
                        .classCode = 0x030200, .driver = "nvidia", .iommuGroup = group,
                        .numaNode = node.functions[pf].numaNode};
        f.physfn = pf;
        f.currentVgpuType = profile;
        f.creatableVgpuTypes = std::move(creatable);
        node.vfioGroupNodes.insert(group);
        return f;
    }
    DerivedDevice derive(const std::string &address)
    {
        test::FakeNames names;
        return deriveFunction(node.functions.at(address), node, HealthHistories::firstReading(node), names);
    }
};

// NVML as a test double: answers from a table and counts the questions.
class FakeNvml final : public VgpuTypeOracle {
public:
    std::map<std::pair<std::string, std::uint32_t>, std::string> names;
    int questions = 0;
    std::optional<std::string> typeName(const std::string &pf, std::uint32_t id) override
    {
        ++questions;
        auto found = names.find({pf, id});
        return found == names.end() ? std::nullopt : std::optional(found->second);
    }
    std::string describe() const override { return "NVML (fake)"; }
};

} // namespace

TEST_CASE("a VF on nvidia with a profile is advertised under the profile's name, by address, on its NUMA node")
{
    Cards c;
    c.card("0000:41:00.0");
    c.vf("0000:41:00.4", "0000:41:00.0", 1414, {k18C});
    DerivedDevice d = c.derive("0000:41:00.4");
    CHECK(d.resource == "nvidia.com/NVIDIA_H200X-1-18C");
    CHECK(d.kind == DeviceKind::SriovVgpu);
    CHECK(d.device.id == "0000:41:00.4");
    CHECK(d.device.numaNode == 0);
    CHECK(d.device.vgpuTypeId == 1414);
    CHECK(d.row.model == "NVIDIA H200X-1-18C");
    CHECK(envKey(d.kind, d.resource) == "PCI_RESOURCE_NVIDIA_COM_NVIDIA_H200X-1-18C");
}

TEST_CASE("VFs without a profile, off nvidia, or with a malformed profile are not advertised and say why")
{
    Cards c;
    c.card("0000:41:00.0");
    c.vf("0000:41:00.4", "0000:41:00.0", 0, {k18C});
    c.vf("0000:41:00.5", "0000:41:00.0", std::nullopt);
    c.vf("0000:41:00.6", "0000:41:00.0", 1414, {k18C}).driver = "vfio-pci";
    c.vf("0000:41:00.7", "0000:41:00.0", std::nullopt).vgpuTypeProblem =
        "x/current_vgpu_type: malformed vGPU type id q";
    CHECK(c.derive("0000:41:00.4").row.reason == "SR-IOV VF without a vGPU profile (current_vgpu_type 0)");
    CHECK(c.derive("0000:41:00.5").row.reason == "SR-IOV VF without nvidia/current_vgpu_type");
    CHECK(c.derive("0000:41:00.6").row.reason == "SR-IOV VF of 0000:41:00.0 bound to vfio-pci, not nvidia");
    CHECK(c.derive("0000:41:00.7").row.reason == "x/current_vgpu_type: malformed vGPU type id q");
    for (const char *vf : {"0000:41:00.4", "0000:41:00.5", "0000:41:00.6", "0000:41:00.7"})
        CHECK(c.derive(vf).resource.empty());
}

TEST_CASE("the PF is never advertised; its row counts its VFs and those with a profile")
{
    Cards c;
    c.card("0000:41:00.0");
    c.vf("0000:41:00.4", "0000:41:00.0", 1414, {});
    c.vf("0000:41:00.5", "0000:41:00.0", 0, {k18C});
    DerivedDevice pf = c.derive("0000:41:00.0");
    CHECK(pf.resource.empty());
    CHECK(pf.row.reason == "bound to nvidia, not vfio-pci (SR-IOV vGPU parent: 2 of 16 VFs, 1 with a profile)");
}

TEST_CASE("the card's catalog is the PF's and all its VFs' lists merged, the first name of an id winning")
{
    Cards c;
    c.card("0000:41:00.0").creatableVgpuTypes = {k141C};
    c.vf("0000:41:00.4", "0000:41:00.0", 1414, {});
    c.vf("0000:41:00.5", "0000:41:00.0", 0, {k18C, {1428, "renamed"}});
    c.vf("0000:41:00.6", "0000:41:00.0", 0, {{1414, "NVIDIA other name"}});
    std::map<std::uint32_t, std::string> catalog = cardCatalog(c.node, "0000:41:00.0");
    CHECK(catalog == std::map<std::uint32_t, std::string>{{1414, "NVIDIA H200X-1-18C"}, {1428, "NVIDIA H200X-141C"}});
    VgpuNameLookup lookup = resolveVgpuTypeName(c.node, c.node.functions.at("0000:41:00.4"), 1414);
    CHECK(lookup.name == "NVIDIA H200X-1-18C");
    CHECK(lookup.source == "catalog of card 0000:41:00.0");
}

TEST_CASE("a fully used card is named from a card of the same model, never from another model")
{
    Cards c;
    c.card("0000:41:00.0");
    c.vf("0000:41:00.4", "0000:41:00.0", 1414, {});
    c.card("0000:81:00.0", 0x26b9); // an L40S: same id, another model
    c.vf("0000:81:00.4", "0000:81:00.0", 0, {{1414, "NVIDIA L40S-48Q"}});
    VgpuNameLookup lookup = resolveVgpuTypeName(c.node, c.node.functions.at("0000:41:00.4"), 1414);
    CHECK_FALSE(lookup.name);
    CHECK(lookup.tried ==
          std::vector<std::string>{"catalog of card 0000:41:00.0", "catalogs of other 10de:2335 cards"});

    c.card("0000:c1:00.0");
    c.vf("0000:c1:00.5", "0000:c1:00.0", 0, {k18C});
    lookup = resolveVgpuTypeName(c.node, c.node.functions.at("0000:41:00.4"), 1414);
    CHECK(lookup.name == "NVIDIA H200X-1-18C");
    CHECK(lookup.source == "catalog of card 0000:c1:00.0 (same model 10de:2335)");
}

TEST_CASE("an unresolvable id is not advertised and says which sources were tried")
{
    Cards c;
    c.card("0000:41:00.0");
    c.vf("0000:41:00.4", "0000:41:00.0", 1414, {});
    VgpuNameBook book({}, std::make_unique<FakeNvml>());
    book.recallInto(c.node);
    DerivedDevice d = c.derive("0000:41:00.4");
    CHECK(d.resource.empty());
    CHECK(d.row.reason == "vGPU type 1414 on 0000:41:00.4: name unknown (tried: catalog of card 0000:41:00.0; "
                          "catalogs of other 10de:2335 cards; names learned earlier (memory only: no --state-dir); "
                          "NVML (fake))");
}

TEST_CASE("names learned earlier serve the same card, then its model, and survive a restart in the state file")
{
    test::TempTree state;
    const std::string file = state.path("vgpu-type-names");
    {
        Cards before;
        before.card("0000:41:00.0");
        before.vf("0000:41:00.4", "0000:41:00.0", 0, {k18C, k141C});
        VgpuNameBook book(file);
        book.recallInto(before.node);
    }
    std::ifstream in(file);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK(text == "0000:41:00.0 2335 1414 NVIDIA H200X-1-18C\n0000:41:00.0 2335 1428 NVIDIA H200X-141C\n");

    // After the restart the card is full: no catalog names 1414.
    Cards after;
    after.card("0000:41:00.0");
    after.vf("0000:41:00.4", "0000:41:00.0", 1414, {});
    after.card("0000:c1:00.0");
    after.vf("0000:c1:00.4", "0000:c1:00.0", 1428, {});
    after.card("0000:81:00.0", 0x26b9);
    after.vf("0000:81:00.4", "0000:81:00.0", 1414, {});
    VgpuNameBook book(file);
    book.recallInto(after.node);
    CHECK(after.derive("0000:41:00.4").resource == "nvidia.com/NVIDIA_H200X-1-18C");
    CHECK(after.node.recalledVgpuNames.at({"0000:41:00.0", 1414}).source == "names learned earlier");
    CHECK(after.derive("0000:c1:00.4").resource == "nvidia.com/NVIDIA_H200X-141C");
    CHECK(after.node.recalledVgpuNames.at({"0000:c1:00.0", 1428}).source ==
          "names learned earlier on 0000:41:00.0 (same model)");
    CHECK(after.derive("0000:81:00.4").resource.empty()); // an L40S never takes an H200's name
}

TEST_CASE("NVML on the PF is the last resort, asked once per card and id")
{
    Cards c;
    c.card("0000:41:00.0");
    c.vf("0000:41:00.4", "0000:41:00.0", 1414, {});
    c.vf("0000:41:00.5", "0000:41:00.0", 1414, {});
    auto nvml = std::make_unique<FakeNvml>();
    nvml->names[{"0000:41:00.0", 1414}] = "NVIDIA H200X-1-18C";
    FakeNvml *asked = nvml.get();
    VgpuNameBook book({}, std::move(nvml));
    book.recallInto(c.node);
    book.recallInto(c.node);
    CHECK(c.derive("0000:41:00.5").resource == "nvidia.com/NVIDIA_H200X-1-18C");
    CHECK(c.node.recalledVgpuNames.at({"0000:41:00.0", 1414}).source == "NVML");
    CHECK(asked->questions == 1);
}

TEST_CASE("a malformed line of the state file is skipped, the rest is used")
{
    test::TempTree state;
    state.write("names", "garbage\n0000:41:00.0 2335 1414 NVIDIA H200X-1-18C\n0000:41:00.0 zz 1 x\n");
    VgpuNameBook book(state.path("names"));
    CHECK(book.recall("0000:41:00.0", 0x2335, 1414)->name == "NVIDIA H200X-1-18C");
    CHECK_FALSE(book.recall("0000:41:00.0", 0x2335, 1));
}

TEST_CASE("a VF's health follows its PF: gone, unbound, fallen off the bus")
{
    Cards c;
    c.card("0000:41:00.0");
    c.vf("0000:41:00.4", "0000:41:00.0", 1414, {k18C});
    CHECK(c.derive("0000:41:00.4").device.healthy);
    c.node.functions.at("0000:41:00.0").polled.configVendor = 0xffff;
    CHECK(c.derive("0000:41:00.4").device.healthReason ==
          "parent 0000:41:00.0 fell off the bus: config space reads vendor 0xffff");
    c.node.functions.at("0000:41:00.0").polled.configVendor = 0x10de;
    c.node.functions.at("0000:41:00.0").driver.clear();
    CHECK(c.derive("0000:41:00.4").device.healthReason == "parent 0000:41:00.0 is not bound to a driver");
    c.node.vfioGroupNodes.erase(71);
    CHECK(c.derive("0000:41:00.4").device.healthReason == "no /dev/vfio/71");
    c.node.vfioGroupNodes.insert(71);
    c.node.functions.erase("0000:41:00.0");
    CHECK(c.derive("0000:41:00.4").device.healthReason == "parent 0000:41:00.0 is gone");
}

TEST_CASE("a VF alone in its group on nvidia keeps the group viable; another member on a host driver does not")
{
    Cards c;
    c.card("0000:41:00.0");
    c.vf("0000:41:00.4", "0000:41:00.0", 1414, {k18C});
    c.node.groups[71] = {GroupMember{"0000:41:00.4", "nvidia", 0x030200}};
    CHECK(c.derive("0000:41:00.4").device.healthy);
    c.node.groups[71].push_back(GroupMember{"0000:41:00.1", "snd_hda_intel", 0x040300});
    CHECK(c.derive("0000:41:00.4").device.healthReason ==
          "iommu group 71 not viable: 0000:41:00.1 (audio) bound to snd_hda_intel");
}
