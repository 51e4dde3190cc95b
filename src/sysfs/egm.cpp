#include "sysfs/egm.h"

#include "base/strings.h"
#include "model/device_address.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>

namespace kvgpu {

namespace {

bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

std::vector<std::string> sortedUnique(std::vector<std::string> values)
{
    std::sort(values.begin(), values.end());
    values.erase(std::unique(values.begin(), values.end()), values.end());
    return values;
}

} // namespace

EgmMembership parseEgmGpuDevices(std::string_view text)
{
    EgmMembership out;
    size_t i = 0;
    while (i < text.size()) {
        while (i < text.size() && isSpace(text[i]))
            ++i;
        size_t start = i;
        while (i < text.size() && !isSpace(text[i]))
            ++i;
        if (i == start)
            continue;
        std::string_view token = text.substr(start, i - start);
        if (isPciAddress(token))
            out.gpus.push_back(toLowerAscii(token));
        else
            out.rejected.emplace_back(token.substr(0, 64));
    }
    out.gpus = sortedUnique(std::move(out.gpus));
    return out;
}

std::vector<EgmRegion> readEgmRegions(const SysfsTree &sysfs, const DevTree &dev)
{
    std::vector<EgmRegion> regions;
    Result<std::vector<std::string>> names = sysfs.listDir("class/egm");
    if (!names)
        return regions;
    for (const std::string &name : *names) {
        if (name.rfind("egm", 0) != 0 || name.find('/') != std::string::npos)
            continue;
        EgmRegion region;
        region.name = name;
        const std::string dir = "class/egm/" + name;
        std::vector<std::string> problems;

        if (sysfs.exists(dir + "/gpu_devices")) {
            Result<std::string> text = sysfs.readFile(dir + "/gpu_devices");
            if (!text) {
                problems.push_back(text.error());
            } else {
                EgmMembership membership = parseEgmGpuDevices(*text);
                region.gpus = std::move(membership.gpus);
                if (!membership.rejected.empty())
                    problems.push_back(fmt::format("{}/gpu_devices: not PCI addresses: {}", sysfs.path(dir),
                                                   quoteIfNeeded(join(membership.rejected, " "))));
            }
        }
        // Newer drivers: one link per GPU, named by its address.
        if (Result<std::vector<std::string>> entries = sysfs.listDir(dir)) {
            for (const std::string &entry : *entries)
                if (isPciAddress(entry) && sysfs.readLink(dir + "/" + entry))
                    region.gpus.push_back(toLowerAscii(entry));
        }
        region.gpus = sortedUnique(std::move(region.gpus));
        region.hasNode = dev.exists(name);
        if (region.gpus.empty())
            problems.push_back(fmt::format("{} lists no GPUs", sysfs.path(dir)));
        if (!region.hasNode)
            problems.push_back(fmt::format("no {}", dev.path(name)));
        region.problem = join(problems, "; ");
        regions.push_back(std::move(region));
    }
    return regions;
}

std::vector<std::string> egmRegionsHeldBy(const std::vector<EgmRegion> &regions,
                                          const std::vector<std::string> &requested)
{
    std::set<std::string> held;
    for (const std::string &id : requested)
        held.insert(toLowerAscii(trim(id)));
    std::vector<std::string> out;
    for (const EgmRegion &region : regions) {
        if (!region.hasNode || region.gpus.empty())
            continue;
        bool all = std::all_of(region.gpus.begin(), region.gpus.end(),
                               [&](const std::string &gpu) { return held.contains(gpu); });
        if (all)
            out.push_back(region.name);
    }
    return out;
}

} // namespace kvgpu
