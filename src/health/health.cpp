#include "health/health.h"

#include "base/strings.h"
#include "sysfs/pci_class.h"
#include "sysfs/sysfs_parse.h"
#include "sysfs/vfio_drivers.h"

#include <fmt/format.h>

namespace kvgpu {

std::string groupViabilityProblem(int group, const std::vector<GroupMember> &members)
{
    for (const GroupMember &m : members) {
        if (m.driver.empty() || keepsGroupViable(m.driver) || isPciBridgeClass(m.classCode))
            continue;
        return fmt::format("iommu group {} not viable: {} ({}) bound to {}", group, m.address,
                           classLabel(m.classCode), m.driver);
    }
    return {};
}

namespace {

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

// What makes a PCI function that is handed out whole (a passthrough GPU or an
// SR-IOV VF) unhealthy on its own account: its group node, a recovery, the
// polled signals. Empty when none does.
std::string ownProblem(const PciFunction &f, const NodeObservation &node, const HealthHistories &histories)
{
    if (!node.vfioGroupNodes.contains(f.iommuGroup))
        return fmt::format("no /dev/vfio/{}", f.iommuGroup);
    const HealthHistory *history = histories.find(f.address);
    if (std::string problem = recoveryProblem(history); !problem.empty())
        return problem;
    if (history && !history->polledProblem.empty())
        return history->polledProblem;
    return {};
}

} // namespace

Verdict judgePassthrough(const PciFunction &f, const NodeObservation &node, const HealthHistories &histories)
{
    if (std::string problem = ownProblem(f, node, histories); !problem.empty())
        return unhealthy(problem);
    if (auto group = node.groups.find(f.iommuGroup); group != node.groups.end())
        if (std::string problem = groupViabilityProblem(f.iommuGroup, group->second); !problem.empty())
            return unhealthy(problem);
    return {};
}

Verdict judgeVgpu(const Mdev &m, const NodeObservation &node, const HealthHistories &histories)
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
    const HealthHistory *history = histories.find(m.parentAddress);
    if (history && history->recovery == HealthHistory::Recovery::Failed)
        return unhealthy(fmt::format("parent {}: PCIe error recovery failed", m.parentAddress));
    return {};
}

Verdict judgeSriovVf(const PciFunction &f, const NodeObservation &node, const HealthHistories &histories)
{
    if (std::string problem = ownProblem(f, node, histories); !problem.empty())
        return unhealthy(problem);
    if (auto group = node.groups.find(f.iommuGroup); group != node.groups.end()) {
        std::vector<GroupMember> others;
        for (const GroupMember &m : group->second)
            if (m.address != f.address)
                others.push_back(m);
        if (std::string problem = groupViabilityProblem(f.iommuGroup, others); !problem.empty())
            return unhealthy(problem);
    }
    auto pf = node.functions.find(f.physfn);
    if (pf == node.functions.end())
        return unhealthy(fmt::format("parent {} is gone", f.physfn));
    if (pf->second.driver.empty())
        return unhealthy(fmt::format("parent {} is not bound to a driver", f.physfn));
    const HealthHistory *pfHistory = histories.find(f.physfn);
    if (pf->second.polled.configVendor == 0xffff || (pfHistory && !pfHistory->polledProblem.empty()))
        return unhealthy(fmt::format("parent {} {}", f.physfn,
                                     pfHistory && !pfHistory->polledProblem.empty() ? pfHistory->polledProblem
                                                                                   : "fell off the bus"));
    if (pfHistory && pfHistory->recovery == HealthHistory::Recovery::Failed)
        return unhealthy(fmt::format("parent {}: PCIe error recovery failed", f.physfn));
    return {};
}

std::vector<std::string> passthroughWarnings(const PciFunction &f)
{
    std::vector<std::string> warnings;
    // Entries that are there but not what the kernel puts there: the
    // signals they carry are unknown.
    for (const std::vector<std::string> *unreadable : {&f.unreadable, &f.polled.unreadable})
        warnings.insert(warnings.end(), unreadable->begin(), unreadable->end());
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

} // namespace kvgpu
