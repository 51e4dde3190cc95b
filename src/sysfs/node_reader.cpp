#include "sysfs/node_reader.h"

#include "base/strings.h"
#include "sysfs/sysfs_parse.h"
#include "model/device_address.h"

#include <algorithm>

#include <sys/stat.h>

#include <fmt/format.h>

namespace kvgpu {

namespace {

std::string pciDir(std::string_view address) { return fmt::format("bus/pci/devices/{}", address); }
std::string mdevDir(std::string_view uuid) { return fmt::format("bus/mdev/devices/{}", uuid); }

// Reads a file and parses it; the error names the file when either step fails.
template <typename Parse>
auto readParsed(const SysfsTree &sysfs, const std::string &relative, Parse parse)
    -> decltype(parse(std::string_view{}))
{
    Result<std::string> text = sysfs.readFile(relative);
    if (!text)
        return Error{text.error()};
    auto parsed = parse(*text);
    if (!parsed)
        return Error{fmt::format("{}: {}", sysfs.path(relative), parsed.error())};
    return parsed;
}

// An entry older kernels lack: nullopt when it is not there. One that is
// there but cannot be read (a FIFO where a file belongs, a file where a
// directory belongs) is noted in `unreadable` and otherwise treated as absent.
template <typename T>
std::optional<T> readOptional(const SysfsTree &sysfs, const std::string &relative, Result<T> read,
                              std::vector<std::string> &unreadable)
{
    if (read)
        return std::move(read).value();
    if (sysfs.exists(relative))
        unreadable.push_back(read.error());
    return std::nullopt;
}

std::optional<std::string> optionalFile(const SysfsTree &sysfs, const std::string &relative,
                                        std::vector<std::string> &unreadable)
{
    return readOptional(sysfs, relative, sysfs.readFile(relative), unreadable);
}

std::optional<std::vector<std::string>> optionalDir(const SysfsTree &sysfs, const std::string &relative,
                                                    std::vector<std::string> &unreadable)
{
    return readOptional(sysfs, relative, sysfs.listDir(relative), unreadable);
}

// The vfio-dev/vfioN entry of a device bound to a VFIO driver on an iommufd kernel.
std::string vfioDeviceOf(const SysfsTree &sysfs, const std::string &dir, std::vector<std::string> &unreadable)
{
    std::optional<std::vector<std::string>> entries = optionalDir(sysfs, dir + "/vfio-dev", unreadable);
    if (!entries)
        return {};
    for (const std::string &name : *entries)
        if (name.rfind("vfio", 0) == 0 && parseDecimal(std::string_view(name).substr(4)))
            return name;
    return {};
}

// A device is named by one entry of its bus directory. A name that walks the
// tree ("./x", "../devices/x") would reach a device under a second name, which
// would then be advertised, and could be allocated, twice.
bool isEntryName(std::string_view name)
{
    return !name.empty() && name != "." && name != ".." && name.find('/') == std::string_view::npos;
}

// The driver's name; empty when unbound (no driver link). A driver link is
// always <...>/drivers/<name>: anything else there is an error naming it.
Result<std::string> driverOf(const SysfsTree &sysfs, const std::string &dir)
{
    const std::string relative = dir + "/driver";
    if (!sysfs.exists(relative))
        return std::string();
    Result<std::string> link = sysfs.readLink(relative);
    if (!link)
        return link;
    std::string_view target = *link;
    while (!target.empty() && target.back() == '/')
        target.remove_suffix(1);
    size_t slash = target.rfind('/');
    if (slash == std::string_view::npos || baseName(target.substr(0, slash)) != "drivers" ||
        !isEntryName(target.substr(slash + 1)))
        return Error{fmt::format("{}: malformed driver link {}", sysfs.path(relative), quoteIfNeeded(*link))};
    return std::string(target.substr(slash + 1));
}

// SR-IOV facts: optional files, so a problem stays on the function (a VF with
// a malformed profile is not advertised, and says why) rather than making it
// unreadable.
void readSriov(const SysfsTree &sysfs, const std::string &dir, PciFunction &f)
{
    if (Result<std::string> total = sysfs.readFile(dir + "/sriov_totalvfs")) {
        Result<long> n = parseCount(*total);
        f.sriovTotalVfs = n ? static_cast<int>(std::min(*n, 65535L)) : 0;
        if (Result<std::string> num = sysfs.readFile(dir + "/sriov_numvfs"))
            if (Result<long> vfs = parseCount(*num))
                f.sriovNumVfs = static_cast<int>(std::min(*vfs, 65535L));
    }
    if (Result<std::string> pf = sysfs.readLink(dir + "/physfn"); pf && isPciAddress(baseName(*pf)))
        f.physfn = std::string(baseName(*pf));
    if (f.physfn.empty() && f.sriovTotalVfs < 0)
        return;
    if (Result<std::string> types = sysfs.readFile(dir + "/nvidia/creatable_vgpu_types"))
        f.creatableVgpuTypes = parseCreatableVgpuTypes(*types);
    if (!sysfs.exists(dir + "/nvidia/current_vgpu_type"))
        return;
    Result<std::uint32_t> current = readParsed(sysfs, dir + "/nvidia/current_vgpu_type", parseCurrentVgpuType);
    if (current)
        f.currentVgpuType = *current;
    else
        f.vgpuTypeProblem = current.error();
}

} // namespace

std::string DevTree::path(std::string_view relative) const
{
    return fmt::format("{}/{}", root_, relative);
}

bool DevTree::exists(std::string_view relative) const
{
    struct stat st;
    return ::stat(path(relative).c_str(), &st) == 0;
}

bool DevTree::hasVfioGroupNode(int group) const { return exists(fmt::format("vfio/{}", group)); }

PciObservation observePciFunction(const SysfsTree &sysfs, std::string_view address)
{
    PciObservation out;
    const std::string dir = pciDir(address);
    PciFunction &f = out.function;
    f.address = std::string(address);

    Result<std::string> link = isEntryName(address) ? sysfs.readLink(dir) : Error{"not a device name"};
    if (!link)
        return out; // Absent: no such function (any more).

    auto unreadable = [&out](std::string problem) {
        out.state = PciObservation::State::Unreadable;
        out.problem = std::move(problem);
        return out;
    };

    Result<std::uint16_t> vendor = readParsed(sysfs, dir + "/vendor", parsePciId);
    if (!vendor)
        return unreadable(vendor.error());
    f.vendor = *vendor;
    if (f.vendor != kNvidiaVendorId) {
        out.state = PciObservation::State::NotNvidia;
        return out;
    }

    Result<std::vector<std::string>> path = devicePathComponents(*link);
    if (!path)
        return unreadable(fmt::format("{}: {}", sysfs.path(dir), path.error()));
    f.pciePath.assign(path->begin(), path->end() - 1);

    Result<std::uint16_t> device = readParsed(sysfs, dir + "/device", parsePciId);
    if (!device)
        return unreadable(device.error());
    f.device = *device;

    Result<std::uint32_t> classCode = readParsed(sysfs, dir + "/class", parsePciClass);
    if (!classCode)
        return unreadable(classCode.error());
    f.classCode = *classCode;

    Result<std::string> driver = driverOf(sysfs, dir);
    if (!driver)
        return unreadable(driver.error());
    f.driver = *driver;

    // Kernels built without NUMA support have no numa_node file: that is "unknown",
    // not an error. A file that is there but malformed is.
    if (sysfs.exists(dir + "/numa_node")) {
        Result<int> numa = readParsed(sysfs, dir + "/numa_node", parseNumaNode);
        if (!numa)
            return unreadable(numa.error());
        f.numaNode = *numa;
    }

    // A missing iommu_group only matters for a function we would advertise, so it
    // is kept as a per-function problem rather than making the function unreadable.
    Result<std::string> group = sysfs.readLink(dir + "/iommu_group");
    if (!group) {
        f.iommuGroupProblem = group.error();
    } else if (Result<int> n = parseIommuGroupLink(*group); !n) {
        f.iommuGroupProblem = fmt::format("{}/iommu_group: {}", sysfs.path(dir), n.error());
    } else {
        f.iommuGroup = *n;
    }

    f.vfioDevice = vfioDeviceOf(sysfs, dir, f.unreadable);
    readSriov(sysfs, dir, f);
    if (auto types = optionalDir(sysfs, dir + "/mdev_supported_types", f.unreadable))
        f.mdevTypes = *types;

    // Health signals: optional files (older kernels lack some); never a reason
    // to skip the function, though one that cannot be read is reported.
    f.polled = readPolledHealth(sysfs, address);
    if (auto reset = optionalFile(sysfs, dir + "/reset_method", f.unreadable))
        f.resetMethod = std::string(trim(*reset));
    auto optionalText = [&](const char *name) {
        std::optional<std::string> text = optionalFile(sysfs, dir + "/" + name, f.unreadable);
        return text ? std::string(trim(*text)) : std::string();
    };
    f.linkSpeed = optionalText("current_link_speed");
    f.maxLinkSpeed = optionalText("max_link_speed");
    f.linkWidth = optionalText("current_link_width");
    f.maxLinkWidth = optionalText("max_link_width");

    out.state = PciObservation::State::Present;
    return out;
}

MdevObservation observeMdev(const SysfsTree &sysfs, std::string_view uuid)
{
    MdevObservation out;
    const std::string dir = mdevDir(uuid);
    Mdev &m = out.mdev;
    m.uuid = std::string(uuid);

    Result<std::string> link = isEntryName(uuid) ? sysfs.readLink(dir) : Error{"not a device name"};
    if (!link)
        return out; // Absent.

    auto unreadable = [&out](std::string problem) {
        out.state = MdevObservation::State::Unreadable;
        out.problem = std::move(problem);
        return out;
    };

    Result<std::vector<std::string>> path = devicePathComponents(*link);
    if (!path || path->size() < 2)
        return unreadable(fmt::format("{}: malformed device link {}", sysfs.path(dir), *link));
    m.pciePath.assign(path->begin(), path->end() - 1);
    m.parentAddress = m.pciePath.back();
    const std::string parentDir = "devices/" + join(m.pciePath, "/");

    Result<std::uint16_t> vendor = readParsed(sysfs, parentDir + "/vendor", parsePciId);
    if (!vendor)
        return unreadable(vendor.error());
    m.parentVendor = *vendor;

    Result<std::string> type = sysfs.readLink(dir + "/mdev_type");
    if (!type)
        return unreadable(type.error());
    // The type is named by the link, but must also be a type directory: a
    // dangling or looping link would otherwise name a resource.
    if (Result<std::vector<std::string>> typeDir = sysfs.listDir(dir + "/mdev_type"); !typeDir)
        return unreadable(typeDir.error());
    m.typeId = std::string(baseName(*type));
    if (sysfs.exists(dir + "/mdev_type/name")) {
        Result<std::string> name = sysfs.readFile(dir + "/mdev_type/name");
        if (!name)
            return unreadable(name.error());
        m.typeName = std::string(trim(*name));
    }

    if (sysfs.exists(parentDir + "/numa_node")) {
        Result<int> numa = readParsed(sysfs, parentDir + "/numa_node", parseNumaNode);
        if (!numa)
            return unreadable(numa.error());
        m.numaNode = *numa;
    }

    // The kernel adds an mdev first and binds its driver after; the driver's
    // probe is what creates the IOMMU group. Until then the mdev is simply not
    // ready, which is not a problem worth a warning.
    Result<std::string> driver = driverOf(sysfs, dir);
    if (!driver)
        return unreadable(driver.error());
    m.driver = *driver;
    if (m.driver.empty()) {
        out.state = MdevObservation::State::Present;
        return out;
    }
    Result<std::string> group = sysfs.readLink(dir + "/iommu_group");
    if (!group)
        return unreadable(group.error());
    Result<int> n = parseIommuGroupLink(*group);
    if (!n)
        return unreadable(fmt::format("{}/iommu_group: {}", sysfs.path(dir), n.error()));
    m.iommuGroup = *n;
    std::vector<std::string> ignored; // an mdev has no warnings to show them in
    m.vfioDevice = vfioDeviceOf(sysfs, dir, ignored);
    out.state = MdevObservation::State::Present;
    return out;
}

PolledHealth readPolledHealth(const SysfsTree &sysfs, std::string_view address)
{
    const std::string dir = pciDir(address);
    PolledHealth polled;
    if (auto power = optionalFile(sysfs, dir + "/power_state", polled.unreadable))
        polled.powerState = std::string(trim(*power));
    if (polled.powerState != "D3cold") {
        const std::string config = dir + "/config";
        if (auto bytes = readOptional(sysfs, config, sysfs.readBinary(config, 2), polled.unreadable);
            bytes && bytes->size() == 2)
            polled.configVendor = static_cast<std::uint16_t>(static_cast<unsigned char>((*bytes)[0]) |
                                                             (static_cast<unsigned char>((*bytes)[1]) << 8));
    }
    if (auto fatal = optionalFile(sysfs, dir + "/aer_dev_fatal", polled.unreadable))
        polled.aerFatal = parseAerTotal(*fatal, "TOTAL_ERR_FATAL");
    return polled;
}

std::optional<int> readIommuGroup(const SysfsTree &sysfs, std::string_view address)
{
    Result<std::string> link = sysfs.readLink(pciDir(address) + "/iommu_group");
    if (!link)
        return std::nullopt;
    Result<int> group = parseIommuGroupLink(*link);
    return group ? std::optional<int>(*group) : std::nullopt;
}

std::vector<GroupMember> readGroupMembers(const SysfsTree &sysfs, int group)
{
    std::vector<GroupMember> members;
    Result<std::vector<std::string>> names = sysfs.listDir(fmt::format("kernel/iommu_groups/{}/devices", group));
    if (!names)
        return members;
    for (const std::string &address : *names) {
        // A member whose driver cannot be read may hold the group: it is
        // taken as bound to a host driver, which makes the group not viable.
        Result<std::string> driver = driverOf(sysfs, pciDir(address));
        GroupMember member{address, driver ? *driver : std::string("an unreadable driver"), 0};
        if (Result<std::string> text = sysfs.readFile(pciDir(address) + "/class"))
            if (Result<std::uint32_t> classCode = parsePciClass(*text))
                member.classCode = *classCode;
        members.push_back(std::move(member));
    }
    return members;
}

std::set<int> observeVfioGroupNodes(const DevTree &dev)
{
    std::set<int> groups;
    SysfsTree tree(dev.root()); // plain directory listing; the class is not sysfs-specific
    if (Result<std::vector<std::string>> names = tree.listDir("vfio")) {
        for (const std::string &name : *names)
            if (std::optional<int> group = parseGroupNumber(name))
                groups.insert(*group);
    }
    return groups;
}

NodeObservation scanNode(const SysfsTree &sysfs, const DevTree &dev)
{
    NodeObservation node;
    rescanInto(node, sysfs, dev);
    return node;
}

void rescanInto(NodeObservation &node, const SysfsTree &sysfs, const DevTree &dev)
{
    std::set<std::string> addresses, uuids;
    for (const auto &[address, f] : node.functions)
        addresses.insert(address);
    for (const auto &[address, f] : node.unreadableFunctions)
        addresses.insert(address);
    for (const auto &[uuid, m] : node.mdevs)
        uuids.insert(uuid);
    for (const auto &[uuid, problem] : node.unreadableMdevs)
        uuids.insert(uuid);
    if (Result<std::vector<std::string>> listed = sysfs.listDir("bus/pci/devices"))
        addresses.insert(listed->begin(), listed->end());
    if (Result<std::vector<std::string>> listed = sysfs.listDir("bus/mdev/devices"))
        uuids.insert(listed->begin(), listed->end());

    for (const std::string &address : addresses)
        node.apply(observePciFunction(sysfs, address), address);
    for (const std::string &uuid : uuids)
        node.apply(observeMdev(sysfs, uuid), uuid);
    node.vfioGroupNodes = observeVfioGroupNodes(dev);
    node.iommufd = dev.hasIommufd();
    node.groups.clear();
    for (const auto &[address, f] : node.functions)
        if (f.iommuGroup >= 0 && !node.groups.contains(f.iommuGroup))
            node.groups[f.iommuGroup] = readGroupMembers(sysfs, f.iommuGroup);
}

} // namespace kvgpu
