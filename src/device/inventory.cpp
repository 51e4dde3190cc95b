#include "device/inventory.h"

#include "device/node_reader.h"

#include <algorithm>

#include <fmt/format.h>

namespace kvgpu {

namespace {

std::string pciIds(std::uint16_t vendor, std::uint16_t device)
{
    return fmt::format("{:04x}:{:04x}", vendor, device);
}

// Health as far as this observation shows it: the VFIO group node must exist.
void judgeHealth(const NodeObservation &node, AdvertisedDevice &device)
{
    if (!node.vfioGroupNodes.contains(device.iommuGroup)) {
        device.healthy = false;
        device.healthReason = fmt::format("no /dev/vfio/{}", device.iommuGroup);
    }
}

} // namespace

NamedResource passthroughResourceName(const PciFunction &f, PciNameSource &names)
{
    std::string part;
    if (std::optional<std::string> model = names.deviceName(f.vendor, f.device))
        part = sanitizePciDeviceName(*model);
    std::string fallback = hexDeviceIdName(f.device);
    if (part.empty())
        part = fallback;
    NamePart fixed = repairResourceNamePart(part, fallback);
    return {resourceName(fixed.name), fixed.repair};
}

NamedResource vgpuResourceName(const Mdev &m)
{
    std::string part = m.typeName.empty() ? m.typeId : sanitizeVgpuTypeName(m.typeName);
    NamePart fixed = repairResourceNamePart(part, m.typeId);
    return {resourceName(fixed.name), fixed.repair};
}

namespace {

const char *kindName(DeviceKind kind) { return kind == DeviceKind::Vgpu ? "vGPU" : "passthrough"; }

class Deriver {
public:
    Deriver(const NodeObservation &node, PciNameSource &names) : node_(node), names_(names) {}

    Inventory run()
    {
        for (const auto &[address, f] : node_.functions)
            addFunction(f);
        for (const auto &[address, f] : node_.unreadableFunctions)
            addUnreadableFunction(f, node_.problems.at(address));
        std::sort(out_.rows.begin(), out_.rows.end(),
                  [](const DeviceRow &a, const DeviceRow &b) { return a.id < b.id; });
        std::vector<DeviceRow> mdevRows;
        for (const auto &[uuid, m] : node_.mdevs)
            mdevRows.push_back(mdevRow(m));
        for (const auto &[id, problem] : node_.problems) {
            if (!node_.unreadableFunctions.contains(id))
                mdevRows.push_back(DeviceRow{.id = id, .kind = "mdev", .deviceClass = "vgpu", .reason = problem});
        }
        std::sort(mdevRows.begin(), mdevRows.end(),
                  [](const DeviceRow &a, const DeviceRow &b) { return a.id < b.id; });
        out_.rows.insert(out_.rows.end(), mdevRows.begin(), mdevRows.end());
        for (auto &[name, resource] : out_.resources)
            std::sort(resource.devices.begin(), resource.devices.end(),
                      [](const AdvertisedDevice &a, const AdvertisedDevice &b) { return a.id < b.id; });
        return std::move(out_);
    }

private:
    void addFunction(const PciFunction &f)
    {
        DeviceRow row{
            .id = f.address,
            .kind = "pci",
            .ids = pciIds(f.vendor, f.device),
            .model = names_.deviceName(f.vendor, f.device).value_or(""),
            .driver = f.driver,
            .deviceClass = classLabel(f.classCode),
            .iommuGroup = f.iommuGroup,
            .numaNode = f.numaNode,
        };
        if (!isVfioDriver(f.driver)) {
            row.reason = f.driver.empty() ? std::string("not bound to any driver")
                                          : fmt::format("bound to {}, not vfio-pci", f.driver);
            if (!f.mdevTypes.empty())
                row.reason += fmt::format(" (vGPU parent: {} types)", f.mdevTypes.size());
        } else if (!isAdvertisedClass(f.classCode)) {
            row.reason = f.iommuGroup >= 0
                             ? fmt::format("{} function: travels with IOMMU group {}", row.deviceClass,
                                           f.iommuGroup)
                             : fmt::format("{} function: {}", row.deviceClass, f.iommuGroupProblem);
        } else if (f.iommuGroup < 0) {
            row.reason = fmt::format("cannot read iommu_group: {}", f.iommuGroupProblem);
        } else {
            NamedResource name = passthroughResourceName(f, names_);
            AdvertisedDevice device{
                .id = f.address,
                .numaNode = f.numaNode,
                .iommuGroup = f.iommuGroup,
                .pciePath = f.pciePath,
            };
            advertise(name, DeviceKind::Passthrough, std::move(device), row);
        }
        out_.rows.push_back(std::move(row));
    }

    void addUnreadableFunction(const PciFunction &f, const std::string &problem)
    {
        out_.rows.push_back(DeviceRow{
            .id = f.address,
            .kind = "pci",
            .ids = f.device ? pciIds(f.vendor, f.device) : std::string(),
            .deviceClass = f.classCode ? classLabel(f.classCode) : std::string(),
            .reason = problem,
        });
    }

    DeviceRow mdevRow(const Mdev &m)
    {
        DeviceRow row{
            .id = m.uuid,
            .kind = "mdev",
            .ids = m.typeId,
            .model = m.typeName,
            .driver = m.driver,
            .deviceClass = "vgpu",
            .iommuGroup = m.iommuGroup,
            .numaNode = m.numaNode,
        };
        if (m.parentVendor != kNvidiaVendorId) {
            row.reason = fmt::format("parent {} is not an NVIDIA device (vendor {:04x})", m.parentAddress,
                                     m.parentVendor);
            return row;
        }
        AdvertisedDevice device{
            .id = m.uuid,
            .numaNode = m.numaNode,
            .iommuGroup = m.iommuGroup,
            .pciePath = m.pciePath,
        };
        advertise(vgpuResourceName(m), DeviceKind::Vgpu, std::move(device), row);
        return row;
    }

    void advertise(const NamedResource &name, DeviceKind kind, AdvertisedDevice device, DeviceRow &row)
    {
        auto [it, inserted] = out_.resources.try_emplace(name.name, Resource{name.name, kind, {}});
        if (!inserted && it->second.kind != kind) {
            row.reason = fmt::format("resource name {} is already used by {} devices", name.name,
                                     kindName(it->second.kind));
            return;
        }
        if (!name.repair.empty())
            out_.nameRepairs[name.name] = name.repair;
        judgeHealth(node_, device);
        row.resource = name.name;
        row.health = device.healthy ? kHealthy : kUnhealthy;
        row.reason = device.healthReason;
        it->second.devices.push_back(std::move(device));
    }

    const NodeObservation &node_;
    PciNameSource &names_;
    Inventory out_;
};

} // namespace

std::string classLabel(std::uint32_t classCode)
{
    std::uint32_t base = classCode >> 16;
    std::uint32_t sub = (classCode >> 8) & 0xff;
    if (base == 0x03)
        return sub == 0x02 ? "3D controller" : "display";
    if (base == 0x04 && sub == 0x03)
        return "audio";
    if (base == 0x0c && sub == 0x03)
        return "USB";
    if (base == 0x0c && sub == 0x80)
        return "serial bus";
    if (base == 0x06 && sub == 0x80)
        return "bridge (NVSwitch)";
    return fmt::format("class 0x{:04x}", classCode >> 8);
}

bool isAdvertisedClass(std::uint32_t classCode)
{
    return (classCode >> 16) == 0x03 || (classCode >> 8) == 0x0680;
}

Inventory deriveInventory(const NodeObservation &node, PciNameSource &names)
{
    return Deriver(node, names).run();
}

} // namespace kvgpu
