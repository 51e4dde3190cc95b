#include "device/health.h"

#include "base/strings.h"
#include "device/inventory.h"

#include <charconv>
#include <cmath>

#include <fmt/format.h>

namespace kvgpu {

std::string polledProblem(const PolledHealth &polled, std::optional<long> aerFatalBaseline)
{
    if (polled.configVendor == 0xffff)
        return "fell off the bus: config space reads vendor 0xffff";
    if (polled.powerState == "error")
        return "power state is error";
    if (polled.aerFatal && aerFatalBaseline && *polled.aerFatal > *aerFatalBaseline)
        return fmt::format("{} fatal AER error(s) since it was bound", *polled.aerFatal - *aerFatalBaseline);
    return {};
}

bool isVfioCompatibleDriver(const std::string &driver)
{
    // vfio-pci and its variant drivers (nvgrace_gpu_vfio_pci, mlx5_vfio_pci,
    // ...), and pci-stub, which the kernel also accepts in a VFIO group.
    auto endsWith = [&](std::string_view suffix) {
        return driver.size() >= suffix.size() && driver.compare(driver.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    return driver == "vfio-pci" || driver == "pci-stub" || endsWith("_vfio_pci") || endsWith("-vfio-pci");
}

bool isPciBridgeClass(std::uint32_t classCode)
{
    return (classCode >> 8) == 0x0604 || (classCode >> 8) == 0x0600;
}

std::string groupViabilityProblem(int group, const std::vector<GroupMember> &members)
{
    for (const GroupMember &m : members) {
        if (m.driver.empty() || isVfioCompatibleDriver(m.driver) || isPciBridgeClass(m.classCode))
            continue;
        return fmt::format("iommu group {} not viable: {} ({}) bound to {}", group, m.address,
                           classLabel(m.classCode), m.driver);
    }
    return {};
}

namespace {

const HealthHistory *historyOf(const NodeObservation &node, const std::string &address)
{
    auto it = node.history.find(address);
    return it == node.history.end() ? nullptr : &it->second;
}

std::string recoveryProblem(const HealthHistory *history)
{
    if (!history)
        return {};
    switch (history->recovery) {
    case HealthHistory::Recovery::InProgress: return "PCIe error recovery in progress";
    case HealthHistory::Recovery::Failed: return "PCIe error recovery failed";
    case HealthHistory::Recovery::None: break;
    }
    return {};
}

Verdict unhealthy(std::string reason) { return Verdict{false, std::move(reason)}; }

} // namespace

Verdict judgePassthrough(const PciFunction &f, const NodeObservation &node)
{
    if (!node.vfioGroupNodes.contains(f.iommuGroup))
        return unhealthy(fmt::format("no /dev/vfio/{}", f.iommuGroup));
    const HealthHistory *history = historyOf(node, f.address);
    if (std::string problem = recoveryProblem(history); !problem.empty())
        return unhealthy(problem);
    if (history && !history->polledProblem.empty())
        return unhealthy(history->polledProblem);
    if (auto group = node.groups.find(f.iommuGroup); group != node.groups.end())
        if (std::string problem = groupViabilityProblem(f.iommuGroup, group->second); !problem.empty())
            return unhealthy(problem);
    return {};
}

Verdict judgeVgpu(const Mdev &m, const NodeObservation &node)
{
    if (!node.vfioGroupNodes.contains(m.iommuGroup))
        return unhealthy(fmt::format("no /dev/vfio/{}", m.iommuGroup));
    auto parent = node.functions.find(m.parentAddress);
    if (parent == node.functions.end())
        return unhealthy(fmt::format("parent {} is gone", m.parentAddress));
    if (parent->second.driver.empty())
        return unhealthy(fmt::format("parent {} is not bound to a driver", m.parentAddress));
    if (parent->second.polled.configVendor == 0xffff)
        return unhealthy(fmt::format("parent {} fell off the bus", m.parentAddress));
    const HealthHistory *history = historyOf(node, m.parentAddress);
    if (history && history->recovery == HealthHistory::Recovery::Failed)
        return unhealthy(fmt::format("parent {}: PCIe error recovery failed", m.parentAddress));
    return {};
}

std::vector<std::string> passthroughWarnings(const PciFunction &f)
{
    std::vector<std::string> warnings;
    if (!f.resetMethod || trim(*f.resetMethod).empty())
        warnings.push_back("no reset method: a VM may inherit the previous VM's GPU state");
    auto speed = parseLinkSpeed(f.linkSpeed), maxSpeed = parseLinkSpeed(f.maxLinkSpeed);
    auto width = parseDecimal(trim(f.linkWidth)), maxWidth = parseDecimal(trim(f.maxLinkWidth));
    bool slow = speed && maxSpeed && *speed < *maxSpeed;
    bool narrow = width && maxWidth && *width < *maxWidth;
    if (slow || narrow)
        warnings.push_back(fmt::format("PCIe link trained at {} x{}, capable of {} x{}", trim(f.linkSpeed),
                                       trim(f.linkWidth), trim(f.maxLinkSpeed), trim(f.maxLinkWidth)));
    return warnings;
}

std::optional<long> parseAerTotal(std::string_view text, std::string_view totalKey)
{
    // Lines "<ErrName> <count>"; the kernel adds a TOTAL_ERR_* line. Without
    // it, the counts are summed.
    long sum = 0;
    bool any = false;
    for (const std::string &line : split(text, '\n')) {
        std::string_view l = trim(line);
        if (l.empty())
            continue;
        size_t space = l.find_last_of(" \t");
        if (space == std::string_view::npos)
            return std::nullopt;
        auto count = parseDecimal(trim(l.substr(space + 1)));
        if (!count || *count < 0)
            return std::nullopt;
        std::string_view name = trim(l.substr(0, space));
        if (name == totalKey)
            return static_cast<long>(*count);
        // Junk can hold counts no counter reaches; their sum must not overflow.
        if (__builtin_add_overflow(sum, static_cast<long>(*count), &sum))
            return std::nullopt;
        any = true;
    }
    if (!any)
        return std::nullopt;
    return sum;
}

std::optional<double> parseLinkSpeed(std::string_view text)
{
    text = trim(text);
    double value = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    // from_chars also reads "inf" and "nan", which no link trains at.
    if (ec != std::errc() || ptr == text.data() || !std::isfinite(value) || value <= 0)
        return std::nullopt;
    return value;
}

} // namespace kvgpu
