#include "allocation/allocation.h"

#include <doctest/doctest.h>

#include <algorithm>

using namespace kvgpu;

namespace {

struct Dev {
    std::string id;
    int numa;
    int group;
    std::vector<std::string> path;
};

Resource resourceOf(std::vector<Dev> devs)
{
    Resource r{"nvidia.com/X", DeviceKind::Passthrough, {}};
    for (auto &d : devs)
        r.devices.push_back(AdvertisedDevice{.id = d.id, .numaNode = d.numa, .iommuGroup = d.group, .pciePath = d.path});
    std::sort(r.devices.begin(), r.devices.end(), [](auto &a, auto &b) { return a.id < b.id; });
    return r;
}

// Two NUMA nodes; node 0 has two switches (sw1: a,b; sw2: c), node 1 has d,e,f under one switch.
Resource fourSwitchNode()
{
    return resourceOf({
        {"a", 0, 1, {"pci0000:00", "sw1", "p1"}},
        {"b", 0, 2, {"pci0000:00", "sw1", "p2"}},
        {"c", 0, 3, {"pci0000:00", "sw2", "p1"}},
        {"d", 1, 4, {"pci0000:80", "sw3", "p1"}},
        {"e", 1, 5, {"pci0000:80", "sw3", "p2"}},
        {"f", 1, 6, {"pci0000:80", "sw3", "p3"}},
    });
}

std::vector<std::string> all = {"a", "b", "c", "d", "e", "f"};

} // namespace

TEST_CASE("must-include devices come first; more than the size is an error")
{
    Resource r = fourSwitchNode();
    auto chosen = preferredAllocation(r, all, {"e"}, 2);
    REQUIRE(chosen.ok());
    CHECK(chosen->at(0) == "e");
    CHECK(chosen->size() == 2);
    auto tooMany = preferredAllocation(r, all, {"a", "b", "c"}, 2);
    REQUIRE_FALSE(tooMany.ok());
    CHECK(tooMany.error() == "3 devices must be included but the allocation size is 2");
    CHECK(*preferredAllocation(r, all, {"a", "a"}, 1) == std::vector<std::string>{"a"});
}

TEST_CASE("the rest stays on the must-include devices' NUMA node and switch")
{
    Resource r = fourSwitchNode();
    CHECK(*preferredAllocation(r, all, {"e"}, 3) == std::vector<std::string>{"e", "d", "f"});
    CHECK(*preferredAllocation(r, all, {"c"}, 2) == std::vector<std::string>{"c", "a"});
    CHECK(*preferredAllocation(r, all, {"a"}, 2) == std::vector<std::string>{"a", "b"});
}

TEST_CASE("the fewest NUMA nodes: a node that fits the request alone wins, tightest fit first")
{
    Resource r = fourSwitchNode();
    // Both nodes hold 3; ties go to the lower node, and within it the shared switch.
    CHECK(*preferredAllocation(r, all, {}, 2) == std::vector<std::string>{"a", "b"});
    // Only node 1's devices are available in number.
    CHECK(*preferredAllocation(r, {"a", "d", "e", "f"}, {}, 3) == std::vector<std::string>{"d", "e", "f"});
    // Four devices cannot fit one node: the larger first, then the next.
    auto four = *preferredAllocation(r, {"a", "b", "d", "e", "f"}, {}, 4);
    CHECK(four == std::vector<std::string>{"d", "e", "f", "a"});
}

TEST_CASE("only available ids of this resource are answered; short supply gives what there is")
{
    Resource r = fourSwitchNode();
    CHECK(*preferredAllocation(r, {"a", "zz"}, {}, 2) == std::vector<std::string>{"a"});
    CHECK(preferredAllocation(r, {}, {}, 2)->empty());
    CHECK(preferredAllocation(r, all, {}, 0)->empty());
    CHECK_FALSE(preferredAllocation(r, all, {}, -1).ok());
}

TEST_CASE("IOMMU-group siblings are kept together")
{
    Resource r = resourceOf({
        {"a", 0, 7, {"pci0000:00", "sw1", "p1"}},
        {"b", 0, 8, {"pci0000:00", "sw1", "p1"}},
        {"c", 0, 7, {"pci0000:00", "sw2", "p1"}},
    });
    CHECK(*preferredAllocation(r, {"a", "b", "c"}, {"a"}, 2) == std::vector<std::string>{"a", "c"});
}

TEST_CASE("unknown NUMA nodes are used last")
{
    Resource r = resourceOf({
        {"x", -1, 1, {"pci0000:00"}},
        {"y", -1, 2, {"pci0000:00"}},
        {"z", 0, 3, {"pci0000:00"}},
    });
    CHECK(*preferredAllocation(r, {"x", "y", "z"}, {}, 1) == std::vector<std::string>{"z"});
}

TEST_CASE("the answer is deterministic whatever the order of the available list")
{
    Resource r = fourSwitchNode();
    std::vector<std::string> reversed(all.rbegin(), all.rend());
    CHECK(*preferredAllocation(r, all, {}, 4) == *preferredAllocation(r, reversed, {}, 4));
}
