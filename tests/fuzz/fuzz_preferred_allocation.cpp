// GetPreferredAllocation as the kubelet can call it: any resource, any
// available and must-include lists (unknown ids, duplicates) and any size.
// The answer holds only offered ids, no duplicates, at most `size` of them,
// the must-include ones first, exactly `size` when there are enough, and does
// not depend on the order the kubelet listed the available devices in.
#include "allocation/allocation.h"
#include "fuzz_support.h"

#include <algorithm>

using namespace kvgpu;

namespace {

// Ids from a small pool, so that lists overlap; now and then one from the input.
std::string deviceId(FuzzedDataProvider &data)
{
    static const char *const pool[] = {
        "0000:3b:00.0", "0000:3c:00.0", "0000:65:00.0", "0000:66:00.0", "0000:b1:00.0", "0000:b2:00.0",
        "0000:b3:00.0", "0000:ca:00.0", "aa618089-8b16-4d01-a136-25a0f3c73123",
        "bb618089-8b16-4d01-a136-25a0f3c73123",
    };
    if (data.ConsumeIntegralInRange(0, 15) == 0)
        return data.ConsumeRandomLengthString(40);
    return pool[data.ConsumeIntegralInRange<size_t>(0, std::size(pool) - 1)];
}

std::vector<std::string> pathOf(FuzzedDataProvider &data)
{
    static const char *const roots[] = {"pci0000:3a", "pci0000:64", "pci0000:b0"};
    static const char *const switches[] = {"0000:3a:00.0", "0000:3a:01.0", "0000:b0:02.0"};
    std::vector<std::string> path;
    switch (data.ConsumeIntegralInRange(0, 3)) {
    case 0: break; // no topology known
    case 1: path = {roots[data.ConsumeIntegralInRange(0, 2)]}; break;
    default:
        path = {roots[data.ConsumeIntegralInRange(0, 2)], switches[data.ConsumeIntegralInRange(0, 2)]};
        break;
    }
    return path;
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***)
{
    fuzz::quietLogs();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *bytes, size_t size)
{
    FuzzedDataProvider data(bytes, size);
    Resource resource{.name = "nvidia.com/GA100_A100_PCIE_40GB", .kind = DeviceKind::Passthrough};
    std::set<std::string> ids;
    for (int i = data.ConsumeIntegralInRange(0, 10); i > 0; --i) {
        std::string id = deviceId(data);
        if (!ids.insert(id).second)
            continue;
        resource.devices.push_back(AdvertisedDevice{
            .id = id,
            .numaNode = data.ConsumeIntegralInRange(-1, 3),
            .iommuGroup = data.ConsumeIntegralInRange(0, 6),
            .pciePath = pathOf(data),
        });
    }
    // A resource's devices are sorted by id (deriveInventory's contract).
    std::sort(resource.devices.begin(), resource.devices.end(),
              [](const AdvertisedDevice &a, const AdvertisedDevice &b) { return a.id < b.id; });

    std::vector<std::string> available, mustInclude;
    for (int i = data.ConsumeIntegralInRange(0, 12); i > 0; --i)
        available.push_back(deviceId(data));
    for (int i = data.ConsumeIntegralInRange(0, 4); i > 0; --i)
        mustInclude.push_back(data.ConsumeBool() && !available.empty()
                                  ? available[data.ConsumeIntegralInRange<size_t>(0, available.size() - 1)]
                                  : deviceId(data));
    int allocationSize = data.ConsumeBool() ? data.ConsumeIntegral<int>() : data.ConsumeIntegralInRange(0, 8);
    std::uint64_t shuffleSeed = data.ConsumeIntegral<std::uint64_t>();

    Result<std::vector<std::string>> chosen = preferredAllocation(resource, available, mustInclude, allocationSize);

    std::vector<std::string> must;
    for (const std::string &id : mustInclude)
        if (std::find(must.begin(), must.end(), id) == must.end())
            must.push_back(id);
    if (allocationSize < 0 || must.size() > static_cast<size_t>(allocationSize)) {
        FUZZ_CHECK(!chosen.ok(), "accepted an impossible request");
        fuzz::checkLogLine("reason", chosen.error());
        return 0;
    }
    FUZZ_CHECK(chosen.ok(), chosen.error());

    const std::vector<std::string> &result = *chosen;
    FUZZ_CHECK(result.size() <= static_cast<size_t>(allocationSize), join(result, ","));
    FUZZ_CHECK(std::equal(must.begin(), must.end(), result.begin()), "must-include ids not first: " + join(result, ","));
    std::set<std::string> seen;
    for (const std::string &id : result) {
        FUZZ_CHECK(seen.insert(id).second, "duplicate " + id);
        bool offered = std::find(available.begin(), available.end(), id) != available.end() ||
                       std::find(must.begin(), must.end(), id) != must.end();
        FUZZ_CHECK(offered, "not offered: " + id);
    }
    for (size_t i = must.size(); i < result.size(); ++i)
        FUZZ_CHECK(ids.contains(result[i]), "not a device of the resource: " + result[i]);

    // Enough candidates (available devices of the resource, beyond the
    // must-include ones) means exactly `size` ids.
    std::set<std::string> candidates;
    for (const std::string &id : available)
        if (ids.contains(id) && std::find(must.begin(), must.end(), id) == must.end())
            candidates.insert(id);
    size_t reachable = std::min(static_cast<size_t>(allocationSize), must.size() + candidates.size());
    FUZZ_CHECK(result.size() == reachable, join(result, ",") + " for size " + std::to_string(allocationSize));

    // Deterministic, and independent of the order of the available list.
    Result<std::vector<std::string>> again = preferredAllocation(resource, available, mustInclude, allocationSize);
    FUZZ_CHECK(again && *again == result, "not deterministic");
    std::vector<std::string> shuffled = available;
    for (size_t i = shuffled.size(); i > 1; --i) {
        shuffleSeed = shuffleSeed * 6364136223846793005ULL + 1442695040888963407ULL;
        std::swap(shuffled[i - 1], shuffled[(shuffleSeed >> 33) % i]);
    }
    Result<std::vector<std::string>> reordered = preferredAllocation(resource, shuffled, mustInclude, allocationSize);
    FUZZ_CHECK(reordered && *reordered == result,
               "order-dependent: " + join(result, ",") + " vs " + (reordered ? join(*reordered, ",") : reordered.error()));
    return 0;
}
