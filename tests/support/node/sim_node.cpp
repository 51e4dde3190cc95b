#include "sim_node.h"

#include "kernel_emulation.h"
#include "monitor_pacing.h"
#include "node_names.h"
#include "sysfs_files.h"

#include <umockdev.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <stdexcept>

namespace kvgpu::test {

namespace fs = std::filesystem;

namespace {

constexpr const char *kVgpuDriver = "nvidia-vgpu-vfio";
// The host driver that creates SR-IOV vGPU VFs and stays bound to them.
constexpr const char *kSriovDriver = "nvidia";
constexpr int kEgmMajor = 509;
// The kernel allocates these majors dynamically; any fixed values will do here.
constexpr int kVfioGroupMajor = 511;
constexpr int kVfioDevMajor = 510;

[[noreturn]] void fail(const std::string &message) { throw std::runtime_error(message); }

bool isVfioDriver(const std::string &driver) { return driver.find("vfio") != std::string::npos; }

std::string groupName(const std::optional<int> &group) {
    return group ? std::to_string(*group) : std::string("none");
}

std::string vfioGroupDevpath(int group) { return fmt::format("/devices/virtual/vfio/{}", group); }

// "pci:v000010DEd00001EB8sv000010DEsd000012A2bc03sc02i00", as the kernel's
// pci_uevent() writes it.
std::string modalias(const PciFunctionSpec &spec, std::uint16_t subsystemVendor) {
    return fmt::format("pci:v{:08X}d{:08X}sv{:08X}sd{:08X}bc{:02X}sc{:02X}i{:02X}", spec.vendor,
                       spec.device, subsystemVendor, spec.subsystemDevice,
                       (spec.classCode >> 16) & 0xff, (spec.classCode >> 8) & 0xff,
                       spec.classCode & 0xff);
}

// The first 64 bytes of config space: what an unprivileged reader gets.
std::string configSpaceHex(const PciFunctionSpec &spec, std::uint16_t subsystemVendor, bool bridge) {
    std::vector<std::uint8_t> config(64, 0);
    auto put16 = [&config](std::size_t offset, std::uint16_t value) {
        config[offset] = static_cast<std::uint8_t>(value & 0xff);
        config[offset + 1] = static_cast<std::uint8_t>(value >> 8);
    };
    put16(0x00, spec.vendor);
    put16(0x02, spec.device);
    put16(0x04, 0x0406); // memory space, bus master, INTx disabled
    put16(0x06, 0x0010); // capability list present
    config[0x08] = 0xa1; // revision
    config[0x09] = static_cast<std::uint8_t>(spec.classCode & 0xff);
    config[0x0a] = static_cast<std::uint8_t>((spec.classCode >> 8) & 0xff);
    config[0x0b] = static_cast<std::uint8_t>((spec.classCode >> 16) & 0xff);
    config[0x0e] = bridge ? 0x01 : 0x00;
    if (!bridge) {
        put16(0x2c, subsystemVendor);
        put16(0x2e, spec.subsystemDevice);
    }
    std::string hex;
    for (std::uint8_t byte : config)
        hex += fmt::format("{:02X}", byte);
    return hex;
}

std::string randomUuid() {
    std::random_device random;
    std::uniform_int_distribution<int> nibble(0, 15);
    std::string uuid;
    for (int i = 0; i < 32; ++i) {
        if (i == 8 || i == 12 || i == 16 || i == 20)
            uuid += '-';
        int value = nibble(random);
        if (i == 12)
            value = 4; // version 4
        else if (i == 16)
            value = 8 | (value & 3); // RFC 4122 variant
        uuid += "0123456789abcdef"[value];
    }
    return uuid;
}

} // namespace

// Holds the node's mutex for one public verb and hands the verb's report lines
// to the reporter after unlocking, so that a reporter may call back into the node.
class SimNode::Transaction {
public:
    explicit Transaction(SimNode &node) : node_(node), lock_(node.mutex_) {}
    ~Transaction() {
        // The verb's change is complete: a monitor that missed one of its
        // events learns of the loss now, and its rescan sees the whole change.
        for (const std::string &monitor : node_.overflowed_)
            reportOverflow(monitor);
        node_.overflowed_.clear();
        Reporter reporter = node_.reporter_;
        lock_.unlock();
        if (!reporter)
            return;
        for (const std::string &line : lines_) {
            try {
                reporter(line);
            } catch (const std::exception &e) {
                fmt::print(stderr, "sim-node: reporter failed: {}\n", e.what());
            }
        }
    }
    Transaction(const Transaction &) = delete;
    Transaction &operator=(const Transaction &) = delete;

    void report(std::string line) { lines_.push_back(std::move(line)); }

private:
    SimNode &node_;
    std::unique_lock<std::mutex> lock_;
    std::vector<std::string> lines_;
};

SimNode::SimNode(SimNodeOptions options) : options_(options) {
    testbed_ = umockdev_testbed_new();
    gchar *root = umockdev_testbed_get_root_dir(testbed_);
    gchar *sys = umockdev_testbed_get_sys_dir(testbed_);
    rootDir_ = root;
    sysDir_ = sys;
    g_free(root);
    g_free(sys);

    const char *tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/sim-node-dev.XXXXXX";
    if (!mkdtemp(pattern.data())) {
        int error = errno;
        g_object_unref(testbed_);
        fail(fmt::format("cannot create the dev root {}: {}", pattern, std::strerror(error)));
    }
    devRoot_ = pattern;
    try {
        fs::create_directories(devRoot_ + "/vfio");
        // The container node; a daemon checks for it, nobody opens it here.
        writeFile(devRoot_ + "/vfio/vfio", "");
        if (options_.iommufd)
            writeFile(devRoot_ + "/iommu", "");
    } catch (...) {
        std::error_code ignored;
        fs::remove_all(devRoot_, ignored);
        g_object_unref(testbed_);
        throw;
    }
}

SimNode::~SimNode() {
    stopKernelEmulation();
    std::lock_guard lock(mutex_);
    // The testbed's finalizer deletes its tree and unsets UMOCKDEV_DIR.
    g_object_unref(testbed_);
    std::error_code ignored;
    fs::remove_all(devRoot_, ignored);
}

std::string SimNode::rootDir() const { return rootDir_; }
std::string SimNode::sysfsRoot() const { return sysDir_; }
std::string SimNode::devRoot() const { return devRoot_; }

void SimNode::setReporter(Reporter reporter) {
    std::lock_guard lock(mutex_);
    reporter_ = std::move(reporter);
}

void SimNode::setUeventHook(UeventHook hook) {
    std::lock_guard lock(mutex_);
    ueventHook_ = std::move(hook);
}

// --- Low-level testbed access (mutex held) -----------------------------------

void SimNode::addDeviceLocked(const std::string &record) {
    GError *error = nullptr;
    // Atomic: attributes and links exist before the add uevent goes out.
    for (std::string &monitor : sendPaced(rootDir_, options_.monitorPatience, [&] {
             umockdev_testbed_add_from_string(testbed_, record.c_str(), &error);
         }))
        overflowed_.insert(std::move(monitor));
    if (!error && ueventHook_) {
        // The record's first line is "P: <devpath>".
        std::string devpath = record.substr(3, record.find('\n') - 3);
        ueventHook_(devpath.rfind("/sys", 0) == 0 ? devpath.substr(4) : devpath, "add");
    }
    if (error) {
        std::string message = error->message;
        g_error_free(error);
        fail("umockdev refused a device record: " + message);
    }
}

void SimNode::ueventLocked(const std::string &devpath, const char *action) {
    for (std::string &monitor : sendPaced(rootDir_, options_.monitorPatience, [&] {
             umockdev_testbed_uevent(testbed_, ("/sys" + devpath).c_str(), action);
         }))
        overflowed_.insert(std::move(monitor));
    if (ueventHook_)
        ueventHook_(devpath, action);
}

void SimNode::removeDeviceLocked(const std::string &devpath) {
    // The remove uevent must go out while the device still exists: umockdev
    // builds the event from the device's sysfs directory.
    ueventLocked(devpath, "remove");
    umockdev_testbed_remove_device(testbed_, ("/sys" + devpath).c_str());
}

void SimNode::setDriverLinkLocked(const std::string &devpath, const std::string &bus,
                                  const std::string &name, const std::string &driver) {
    const std::string driverDir = sysDir_ + "/bus/" + bus + "/drivers/" + driver;
    fs::create_directories(driverDir);
    replaceSymlink("../../../.." + devpath, driverDir + "/" + name);
    replaceSymlink(dotdotsToSysRoot(devpath) + "bus/" + bus + "/drivers/" + driver,
                   sysDir_ + devpath + "/driver");
    setUeventDriver(sysDir_ + devpath + "/uevent", driver);
}

void SimNode::clearDriverLinkLocked(const std::string &devpath, const std::string &bus,
                                    const std::string &name, const std::string &driver) {
    std::error_code ignored;
    fs::remove(sysDir_ + "/bus/" + bus + "/drivers/" + driver + "/" + name, ignored);
    fs::remove(sysDir_ + devpath + "/driver", ignored);
    // udev_device_get_driver() and the uevent both follow these two, so both go.
    setUeventDriver(sysDir_ + devpath + "/uevent", std::nullopt);
}

void SimNode::addGroupMemberLocked(int group, const std::string &name, const std::string &devpath) {
    const std::string groupDir = fmt::format("{}/kernel/iommu_groups/{}", sysDir_, group);
    fs::create_directories(groupDir + "/devices");
    if (!fs::exists(groupDir + "/type"))
        writeFile(groupDir + "/type", "DMA\n");
    replaceSymlink("../../../.." + devpath, groupDir + "/devices/" + name);
    groupMembers_[group].insert(name);
    highestGroup_ = std::max(highestGroup_, group);
}

void SimNode::removeGroupMemberLocked(int group, const std::string &name) {
    const std::string groupDir = fmt::format("{}/kernel/iommu_groups/{}", sysDir_, group);
    std::error_code ignored;
    fs::remove(groupDir + "/devices/" + name, ignored);
    auto members = groupMembers_.find(group);
    if (members == groupMembers_.end())
        return;
    members->second.erase(name);
    // The kernel frees a group with its last member.
    if (members->second.empty()) {
        groupMembers_.erase(members);
        fs::remove_all(groupDir, ignored);
    }
}

bool SimNode::groupHasVfioMemberLocked(int group) const {
    auto members = groupMembers_.find(group);
    if (members == groupMembers_.end())
        return false;
    for (const std::string &name : members->second) {
        if (mdevs_.count(name))
            return true;
        auto function = pci_.find(name);
        if (function != pci_.end() && registersVfioLocked(function->second, function->second.driver))
            return true;
    }
    return false;
}

void SimNode::createVfioNodeLocked(int group) {
    // devtmpfs creates the node before the add uevent goes out.
    writeFile(fmt::format("{}/vfio/{}", devRoot_, group), "");
    if (vfioNodes_.count(group)) {
        ueventLocked(vfioGroupDevpath(group), "add");
        return;
    }
    addDeviceLocked(fmt::format("P: {}\n"
                                "E: MAJOR={}\n"
                                "E: MINOR={}\n"
                                "E: DEVNAME=vfio/{}\n"
                                "E: SUBSYSTEM=vfio\n"
                                "A: dev={}:{}\\n\n",
                                vfioGroupDevpath(group), kVfioGroupMajor, group, group,
                                kVfioGroupMajor, group));
    vfioNodes_.insert(group);
}

void SimNode::deleteVfioNodeLocked(int group) {
    std::error_code ignored;
    fs::remove(fmt::format("{}/vfio/{}", devRoot_, group), ignored);
    if (vfioNodes_.erase(group))
        removeDeviceLocked(vfioGroupDevpath(group));
}

void SimNode::addVfioDevLocked(const std::string &address, int index) {
    PciRecord &function = pci_.at(address);
    fs::create_directories(devRoot_ + "/vfio/devices");
    writeFile(fmt::format("{}/vfio/devices/vfio{}", devRoot_, index), "");
    addDeviceLocked(fmt::format("P: {}/vfio-dev/vfio{}\n"
                                "E: MAJOR={}\n"
                                "E: MINOR={}\n"
                                "E: DEVNAME=vfio/devices/vfio{}\n"
                                "E: SUBSYSTEM=vfio-dev\n"
                                "A: dev={}:{}\\n\n",
                                function.devpath, index, kVfioDevMajor, index, index,
                                kVfioDevMajor, index));
    function.vfioDev = index;
}

void SimNode::removeVfioDevLocked(const std::string &address) {
    PciRecord &function = pci_.at(address);
    if (!function.vfioDev)
        return;
    std::error_code ignored;
    fs::remove(fmt::format("{}/vfio/devices/vfio{}", devRoot_, *function.vfioDev), ignored);
    removeDeviceLocked(fmt::format("{}/vfio-dev/vfio{}", function.devpath, *function.vfioDev));
    fs::remove(sysDir_ + function.devpath + "/vfio-dev", ignored);
    function.vfioDev.reset();
}

void SimNode::ensureRootComplexLocked(const std::string &rootComplex) {
    fs::create_directories(sysDir_ + "/devices/" + rootComplex);
}

std::string SimNode::resolveParentLocked(const std::string &address,
                                         const std::string &parentPath) const {
    if (parentPath.empty())
        return "pci" + address.substr(0, 7); // "pci0000:65" for 0000:65:00.0
    if (!isParentPath(parentPath))
        fail(fmt::format("parent path '{}' is neither a root complex (pci0000:64) nor a "
                         "bridge path (pci0000:64/0000:64:00.0)",
                         parentPath));
    const std::size_t slash = parentPath.rfind('/');
    if (slash == std::string::npos)
        return parentPath;
    auto bridge = pci_.find(parentPath.substr(slash + 1));
    if (bridge == pci_.end() || bridge->second.devpath != "/devices/" + parentPath)
        fail(fmt::format("parent {} of {} does not exist; add the bridge first", parentPath,
                         address));
    return parentPath;
}

std::string SimNode::devpathOfLocked(const std::string &address) const {
    if (auto function = pci_.find(address); function != pci_.end())
        return function->second.devpath;
    if (auto mdev = mdevs_.find(toLower(address)); mdev != mdevs_.end())
        return mdev->second.devpath;
    fail(fmt::format("no device {} on this node", address));
}

// --- Plugging devices in --------------------------------------------------------

void SimNode::addPciFunctionLocked(const PciFunctionSpec &spec, bool bridge) {
    const std::string &address = spec.address;
    if (!isPciAddress(address))
        fail(fmt::format("'{}' is not a PCI address like 0000:65:00.0", address));
    if (pci_.count(address))
        fail(fmt::format("PCI function {} already exists", address));
    if (!spec.driver.empty() && !isDriverName(spec.driver))
        fail(fmt::format("{}: '{}' is not a driver name", address, spec.driver));
    if (spec.vfioDevIndex && *spec.vfioDevIndex < 0)
        fail(fmt::format("{}: vfio-dev index {} is negative", address, *spec.vfioDevIndex));
    if (spec.iommuGroup) {
        if (*spec.iommuGroup < 0)
            fail(fmt::format("{}: IOMMU group {} is negative", address, *spec.iommuGroup));
        auto members = groupMembers_.find(*spec.iommuGroup);
        if (members != groupMembers_.end())
            for (const std::string &member : members->second)
                if (mdevs_.count(member))
                    fail(fmt::format("{}: IOMMU group {} belongs to vGPU {}", address,
                                     *spec.iommuGroup, member));
    }
    const std::string parent = resolveParentLocked(address, spec.parentPath);
    ensureRootComplexLocked(parent.substr(0, parent.find('/')));
    const std::string devpath = "/devices/" + parent + "/" + address;
    const std::uint16_t subsystemVendor = spec.subsystemVendor ? spec.subsystemVendor : spec.vendor;

    std::string record = fmt::format("P: {}\n", devpath);
    record += fmt::format("E: PCI_CLASS={:X}\n", spec.classCode);
    record += fmt::format("E: PCI_ID={:04X}:{:04X}\n", spec.vendor, spec.device);
    record += fmt::format("E: PCI_SUBSYS_ID={:04X}:{:04X}\n", subsystemVendor, spec.subsystemDevice);
    record += fmt::format("E: PCI_SLOT_NAME={}\n", address);
    record += fmt::format("E: MODALIAS={}\n", modalias(spec, subsystemVendor));
    record += "E: SUBSYSTEM=pci\n";
    auto attribute = [&record](std::string_view name, std::string_view value) {
        record += fmt::format("A: {}={}\n", name, escapeRecordValue(value));
    };
    attribute("vendor", fmt::format("0x{:04x}\n", spec.vendor));
    attribute("device", fmt::format("0x{:04x}\n", spec.device));
    attribute("subsystem_vendor", fmt::format("0x{:04x}\n", bridge ? 0 : subsystemVendor));
    attribute("subsystem_device", fmt::format("0x{:04x}\n", bridge ? 0 : spec.subsystemDevice));
    attribute("class", fmt::format("0x{:06x}\n", spec.classCode));
    if (spec.numaNode)
        attribute("numa_node", fmt::format("{}\n", *spec.numaNode));
    attribute("power_state", "D0\n");
    attribute("reset_method", bridge ? "pm\n" : "flr bus\n");
    attribute("driver_override", "(null)\n");
    attribute("aer_dev_correctable", aerCounters(AerSeverity::Correctable));
    attribute("aer_dev_nonfatal", aerCounters(AerSeverity::NonFatal));
    attribute("aer_dev_fatal", aerCounters(AerSeverity::Fatal));
    attribute("current_link_speed", "16.0 GT/s PCIe\n");
    attribute("max_link_speed", "16.0 GT/s PCIe\n");
    attribute("current_link_width", "16\n");
    attribute("max_link_width", "16\n");
    if (spec.sriovTotalVfs > 0) {
        attribute("sriov_totalvfs", fmt::format("{}\n", spec.sriovTotalVfs));
        attribute("sriov_numvfs", "0\n");
        attribute("sriov_offset", fmt::format("{}\n", spec.sriovVfOffset));
        attribute("sriov_stride", "1\n");
        attribute("sriov_vf_device", fmt::format("{:04x}\n", spec.device));
        attribute("sriov_drivers_autoprobe", "1\n");
    }
    record += fmt::format("H: config={}\n", configSpaceHex(spec, subsystemVendor, bridge));
    if (spec.iommuGroup) {
        record += fmt::format("L: iommu_group={}kernel/iommu_groups/{}\n", dotdotsToSysRoot(devpath),
                              *spec.iommuGroup);
        // The kernel puts the device into its group before announcing it.
        addGroupMemberLocked(*spec.iommuGroup, address, devpath);
    }
    record += "\n";

    try {
        addDeviceLocked(record);
    } catch (...) {
        if (spec.iommuGroup)
            removeGroupMemberLocked(*spec.iommuGroup, address);
        throw;
    }
    PciRecord &function = pci_[address];
    function.devpath = devpath;
    function.group = spec.iommuGroup;
    function.bridge = bridge;
    function.requestedVfioDev = spec.vfioDevIndex;
    function.spec = spec;
    if (spec.sriovTotalVfs > 0 && emulation_)
        emulation_->watchSriovPf(sysDir_ + devpath, address);

    // A driver probes only after the add uevent, so bind comes second.
    if (!spec.driver.empty())
        bindLocked(address, spec.driver);
}

void SimNode::addBridge(const BridgeSpec &spec) {
    Transaction transaction(*this);
    const std::size_t slash = spec.path.rfind('/');
    if (slash == std::string::npos || !isParentPath(spec.path))
        fail(fmt::format("'{}' is not a bridge path like pci0000:64/0000:64:00.0", spec.path));
    PciFunctionSpec function{
        .address = spec.path.substr(slash + 1),
        .vendor = spec.vendor,
        .device = spec.device,
        .classCode = 0x060400,
        .driver = spec.driver,
        .iommuGroup = spec.iommuGroup,
        .parentPath = spec.path.substr(0, slash),
    };
    addPciFunctionLocked(function, true);
    transaction.report(fmt::format("bridge added path={}", spec.path));
}

void SimNode::addPciFunction(const PciFunctionSpec &spec) {
    Transaction transaction(*this);
    addPciFunctionLocked(spec, false);
    transaction.report(fmt::format("pci added address={} id={:04x}:{:04x} group={} driver={}",
                                   spec.address, spec.vendor, spec.device,
                                   groupName(spec.iommuGroup),
                                   spec.driver.empty() ? "none" : spec.driver));
}

void SimNode::addGpu(const std::string &address, std::uint16_t deviceId,
                     std::optional<int> iommuGroup, std::optional<int> numaNode,
                     const std::string &driver, const std::string &parentPath) {
    addPciFunction(PciFunctionSpec{
        .address = address,
        .vendor = 0x10de,
        .device = deviceId,
        .classCode = 0x030200,
        .driver = driver,
        .iommuGroup = iommuGroup,
        .numaNode = numaNode,
        .parentPath = parentPath,
    });
}

void SimNode::addAudioFunction(const std::string &address, std::optional<int> iommuGroup,
                               const std::string &driver, const std::string &parentPath) {
    addPciFunction(PciFunctionSpec{
        .address = address,
        .vendor = 0x10de,
        .device = 0x10f8, // TU104 HD Audio Controller
        .classCode = 0x040300,
        .driver = driver,
        .iommuGroup = iommuGroup,
        .parentPath = parentPath,
    });
}

void SimNode::removePciFunctionLocked(const std::string &address) {
    auto found = pci_.find(address);
    if (found == pci_.end())
        fail(fmt::format("no PCI function {} on this node", address));
    const std::string devpath = found->second.devpath;
    // A PF's VFs go before it, as disabling SR-IOV does.
    if (!found->second.vfs.empty())
        setNumVfsLocked(address, 0);

    // Everything below a bridge goes first, deepest first, as the PCI core does.
    std::vector<std::pair<std::string, std::string>> below;
    for (const auto &[name, function] : pci_)
        if (function.devpath.rfind(devpath + "/", 0) == 0)
            below.emplace_back(function.devpath, name);
    std::sort(below.begin(), below.end(),
              [](const auto &a, const auto &b) { return a.first.size() > b.first.size(); });
    for (const auto &[childDevpath, child] : below)
        if (pci_.count(child))
            removePciFunctionLocked(child);

    if (!pci_.at(address).driver.empty())
        unbindLocked(address);
    removeDeviceLocked(devpath);
    const PciRecord &function = pci_.at(address);
    if (function.group)
        removeGroupMemberLocked(*function.group, address);
    if (auto pf = pci_.find(function.physfn); !function.physfn.empty() && pf != pci_.end()) {
        std::vector<std::string> &vfs = pf->second.vfs;
        auto index = std::find(vfs.begin(), vfs.end(), address);
        std::error_code ignored;
        if (index != vfs.end())
            fs::remove(fmt::format("{}{}/virtfn{}", sysDir_, pf->second.devpath, index - vfs.begin()), ignored);
        vfs.erase(std::remove(vfs.begin(), vfs.end(), address), vfs.end());
    }
    pci_.erase(address);
}

void SimNode::removePciFunction(const std::string &address) {
    Transaction transaction(*this);
    removePciFunctionLocked(address);
    transaction.report(fmt::format("pci removed address={}", address));
}

// --- Drivers ----------------------------------------------------------------------

void SimNode::bindLocked(const std::string &address, const std::string &driver) {
    auto found = pci_.find(address);
    if (found == pci_.end())
        fail(fmt::format("no PCI function {} on this node", address));
    PciRecord &function = found->second;
    if (!isDriverName(driver))
        fail(fmt::format("'{}' is not a driver name", driver));
    if (!function.driver.empty())
        fail(fmt::format("{} is already bound to {}; unbind it first", address, function.driver));

    // The driver core links the driver before probing, so the driver's own
    // devices (vfio group, vfio-dev) appear with the link in place.
    setDriverLinkLocked(function.devpath, "pci", address, driver);
    function.driver = driver;
    if (registersVfioLocked(function, driver)) {
        if (function.group && !vfioNodes_.count(*function.group))
            createVfioNodeLocked(*function.group);
        std::optional<int> index = function.requestedVfioDev;
        if (!index && options_.iommufd) {
            std::set<int> used;
            for (const auto &[name, other] : pci_)
                if (other.vfioDev)
                    used.insert(*other.vfioDev);
            index = 0;
            while (used.count(*index))
                ++*index;
        }
        if (index)
            addVfioDevLocked(address, *index);
        // nvidia's VF probe adds its attribute group "nvidia" before the
        // driver core announces the bind: no profile yet.
        if (!function.physfn.empty()) {
            const std::string nvidiaDir = sysDir_ + function.devpath + "/nvidia";
            fs::create_directories(nvidiaDir);
            function.vgpuType = 0;
            writeFile(nvidiaDir + "/current_vgpu_type", "0\n");
            refreshCatalogsLocked(function.physfn);
            if (emulation_)
                emulation_->watchVgpuProfile(nvidiaDir, address);
        }
    } else if (!function.vgpuTypes.empty() && function.typesDriver == driver) {
        for (const VgpuTypeSpec &type : function.vgpuTypes)
            exposeVgpuTypeLocked(address, type);
    }
    ueventLocked(function.devpath, "bind");
}

void SimNode::bind(const std::string &address, const std::string &driver) {
    Transaction transaction(*this);
    bindLocked(address, driver);
    transaction.report(fmt::format("bound address={} driver={}", address, driver));
}

void SimNode::unbindLocked(const std::string &address) {
    auto found = pci_.find(address);
    if (found == pci_.end())
        fail(fmt::format("no PCI function {} on this node", address));
    PciRecord &function = found->second;
    if (function.driver.empty())
        fail(fmt::format("{} is not bound to a driver", address));
    const std::string driver = function.driver;

    // The host driver's remove() tears down its mdev parent: vGPUs, then types.
    std::vector<std::string> children;
    for (const auto &[uuid, mdev] : mdevs_)
        if (mdev.parent == address)
            children.push_back(uuid);
    for (const std::string &uuid : children)
        removeVgpuLocked(uuid);
    hideVgpuTypesLocked(address);

    function.driver.clear();
    if (registersVfioLocked(function, driver)) {
        if (!function.physfn.empty()) {
            // The driver's remove() destroys the VF's vGPU with its attributes.
            std::error_code ignored;
            fs::remove_all(sysDir_ + function.devpath + "/nvidia", ignored);
            function.vgpuType = 0;
            refreshCatalogsLocked(function.physfn);
        }
        removeVfioDevLocked(address);
        if (function.group && !groupHasVfioMemberLocked(*function.group))
            deleteVfioNodeLocked(*function.group);
    }
    clearDriverLinkLocked(function.devpath, "pci", address, driver);
    ueventLocked(function.devpath, "unbind");
}

void SimNode::unbind(const std::string &address) {
    Transaction transaction(*this);
    const std::string driver = pci_.count(address) ? pci_.at(address).driver : "";
    unbindLocked(address);
    transaction.report(fmt::format("unbound address={} driver={}", address, driver));
}

// --- vGPUs ------------------------------------------------------------------------

void SimNode::exposeVgpuTypeLocked(const std::string &parent, const VgpuTypeSpec &type) {
    const PciRecord &function = pci_.at(parent);
    const std::string typeDir = sysDir_ + function.devpath + "/mdev_supported_types/" + type.typeId;
    fs::create_directories(typeDir + "/devices");
    if (type.name)
        writeFile(typeDir + "/name", *type.name + "\n");
    writeFile(typeDir + "/available_instances", fmt::format("{}\n", type.availableInstances));
    writeFile(typeDir + "/device_api", "vfio-pci\n");
    writeFile(typeDir + "/description", type.description + "\n");
    writeFile(typeDir + "/create", "");
    fs::create_directories(sysDir_ + "/class/mdev_bus");
    replaceSymlink("../.." + function.devpath, sysDir_ + "/class/mdev_bus/" + parent);
    if (emulation_)
        emulation_->watchVgpuType(typeDir, parent, type.typeId);
}

void SimNode::hideVgpuTypesLocked(const std::string &parent) {
    const PciRecord &function = pci_.at(parent);
    std::error_code ignored;
    fs::remove_all(sysDir_ + function.devpath + "/mdev_supported_types", ignored);
    fs::remove(sysDir_ + "/class/mdev_bus/" + parent, ignored);
}

void SimNode::addVgpuType(const VgpuTypeSpec &spec) {
    Transaction transaction(*this);
    auto found = pci_.find(spec.parentAddress);
    if (found == pci_.end())
        fail(fmt::format("no PCI function {} on this node", spec.parentAddress));
    PciRecord &function = found->second;
    if (!isTypeId(spec.typeId))
        fail(fmt::format("'{}' is not a vGPU type id like nvidia-592", spec.typeId));
    if (spec.availableInstances < 0)
        fail(fmt::format("vGPU type {}: available instances must not be negative", spec.typeId));
    // Types are registered by a host driver; without one there is nobody to
    // register them.
    if (function.driver.empty() || isVfioDriver(function.driver))
        fail(fmt::format("{} must be bound to a host driver such as nvidia to carry vGPU types "
                         "(driver: {})",
                         spec.parentAddress, function.driver.empty() ? "none" : function.driver));
    if (!function.typesDriver.empty() && function.typesDriver != function.driver)
        function.vgpuTypes.clear();
    for (const VgpuTypeSpec &type : function.vgpuTypes)
        if (type.typeId == spec.typeId)
            fail(fmt::format("vGPU type {} already exists on {}", spec.typeId, spec.parentAddress));
    function.typesDriver = function.driver;
    function.vgpuTypes.push_back(spec);
    exposeVgpuTypeLocked(spec.parentAddress, spec);
    transaction.report(fmt::format("vgpu type added parent={} type={} instances={}",
                                   spec.parentAddress, spec.typeId, spec.availableInstances));
}

void SimNode::addVgpuType(const std::string &parentAddress, const std::string &typeId,
                          std::optional<std::string> name, int availableInstances) {
    addVgpuType(VgpuTypeSpec{.parentAddress = parentAddress,
                             .typeId = typeId,
                             .name = std::move(name),
                             .availableInstances = availableInstances});
}

std::string SimNode::createVgpuLocked(const std::string &parent, const std::string &typeId,
                                      const std::string &requestedUuid) {
    const std::string uuid = toLower(requestedUuid);
    if (!isUuid(uuid))
        fail(fmt::format("'{}' is not a UUID", requestedUuid));
    if (mdevs_.count(uuid))
        fail(fmt::format("vGPU {} already exists", uuid));
    auto found = pci_.find(parent);
    if (found == pci_.end())
        fail(fmt::format("no PCI function {} on this node", parent));
    const PciRecord &function = found->second;
    const std::string typeDir = sysDir_ + function.devpath + "/mdev_supported_types/" + typeId;
    if (!fs::is_directory(typeDir))
        fail(fmt::format("{} has no vGPU type {}", parent, typeId));
    // The file, not a counter, is the truth, so that tests can lower it.
    const std::string availablePath = typeDir + "/available_instances";
    const int available = std::atoi(readFile(availablePath).c_str());
    if (available <= 0)
        fail(fmt::format("no {} instances left on {} (available_instances is 0)", typeId, parent));

    const int group = highestGroup_ + 1;
    const std::string devpath = function.devpath + "/" + uuid;
    writeFile(availablePath, fmt::format("{}\n", available - 1));
    addGroupMemberLocked(group, uuid, devpath);
    addDeviceLocked(fmt::format("P: {}\n"
                                "E: MDEV_TYPE={}\n"
                                "E: SUBSYSTEM=mdev\n"
                                "A: remove=\n"
                                "L: mdev_type=../mdev_supported_types/{}\n"
                                "L: iommu_group={}kernel/iommu_groups/{}\n\n",
                                devpath, typeId, typeId, dotdotsToSysRoot(devpath), group));
    replaceSymlink("../../../" + uuid, typeDir + "/devices/" + uuid);
    mdevs_[uuid] = MdevRecord{.devpath = devpath, .parent = parent, .typeId = typeId, .group = group};

    // nvidia-vgpu-vfio's probe registers the vfio device (and its group);
    // the bind uevent follows the probe.
    createVfioNodeLocked(group);
    setDriverLinkLocked(devpath, "mdev", uuid, kVgpuDriver);
    ueventLocked(devpath, "bind");
    if (emulation_)
        emulation_->watchVgpu(sysDir_ + devpath, uuid);
    return uuid;
}

std::string SimNode::createVgpu(const std::string &parentAddress, const std::string &typeId,
                                const std::string &uuid) {
    Transaction transaction(*this);
    std::string created = createVgpuLocked(parentAddress, typeId, uuid);
    transaction.report(
        fmt::format("vgpu created uuid={} type={} parent={}", created, typeId, parentAddress));
    return created;
}

std::string SimNode::createVgpu(const std::string &parentAddress, const std::string &typeId) {
    return createVgpu(parentAddress, typeId, randomUuid());
}

void SimNode::removeVgpuLocked(const std::string &requestedUuid) {
    const std::string uuid = toLower(requestedUuid);
    auto found = mdevs_.find(uuid);
    if (found == mdevs_.end())
        fail(fmt::format("no vGPU {} on this node", requestedUuid));
    const MdevRecord mdev = found->second;

    // device_del(): the driver's remove() drops the vfio group, then unbind, then remove.
    deleteVfioNodeLocked(mdev.group);
    clearDriverLinkLocked(mdev.devpath, "mdev", uuid, kVgpuDriver);
    ueventLocked(mdev.devpath, "unbind");
    removeDeviceLocked(mdev.devpath);

    const std::string typeDir =
        sysDir_ + pci_.at(mdev.parent).devpath + "/mdev_supported_types/" + mdev.typeId;
    std::error_code ignored;
    fs::remove(typeDir + "/devices/" + uuid, ignored);
    const std::string availablePath = typeDir + "/available_instances";
    if (fs::exists(availablePath))
        writeFile(availablePath,
                  fmt::format("{}\n", std::atoi(readFile(availablePath).c_str()) + 1));
    removeGroupMemberLocked(mdev.group, uuid);
    mdevs_.erase(uuid);
}

void SimNode::removeVgpu(const std::string &uuid) {
    Transaction transaction(*this);
    auto found = mdevs_.find(toLower(uuid));
    const MdevRecord mdev = found != mdevs_.end() ? found->second : MdevRecord{};
    removeVgpuLocked(uuid);
    transaction.report(fmt::format("vgpu removed uuid={} type={} parent={}", toLower(uuid),
                                   mdev.typeId, mdev.parent));
}

// --- SR-IOV vGPU -------------------------------------------------------------------

bool SimNode::registersVfioLocked(const PciRecord &function, const std::string &driver) const {
    // A vGPU VF stays on nvidia, whose probe registers it with VFIO.
    return isVfioDriver(driver) || (!function.physfn.empty() && driver == kSriovDriver);
}

void SimNode::refreshCatalogsLocked(const std::string &pfAddress) {
    auto pf = pci_.find(pfAddress);
    if (pf == pci_.end())
        return;
    std::map<std::uint32_t, int> used;
    for (const std::string &vf : pf->second.vfs)
        if (auto record = pci_.find(vf); record != pci_.end() && record->second.vgpuType)
            ++used[record->second.vgpuType];
    // The proprietary driver's format: a header, then "%-5d : %s" per type
    // still creatable; a VF that carries a vGPU can create nothing more.
    std::string creatable = "ID    : vGPU Name\n";
    for (const SriovProfileSpec &profile : pf->second.profiles)
        if (used[profile.id] < profile.instances)
            creatable += fmt::format("{:<5} : {}\n", profile.id, profile.name);
    for (const std::string &vf : pf->second.vfs) {
        auto record = pci_.find(vf);
        if (record == pci_.end() || record->second.driver != kSriovDriver)
            continue;
        const std::string dir = sysDir_ + record->second.devpath + "/nvidia";
        const std::string text = record->second.vgpuType ? "ID    : vGPU Name\n" : creatable;
        if (fs::is_directory(dir) && (!fs::exists(dir + "/creatable_vgpu_types") ||
                                      readFile(dir + "/creatable_vgpu_types") != text))
            writeFile(dir + "/creatable_vgpu_types", text);
    }
}

void SimNode::addSriovProfile(const SriovProfileSpec &spec) {
    Transaction transaction(*this);
    auto pf = pci_.find(spec.pfAddress);
    if (pf == pci_.end() || pf->second.spec.sriovTotalVfs <= 0)
        fail(fmt::format("{} is not an SR-IOV PF on this node (give it sriov-vfs=N)", spec.pfAddress));
    if (spec.id == 0 || spec.name.empty() || spec.instances < 0)
        fail(fmt::format("vGPU profile {} on {}: needs an id above 0, a name and instances >= 0", spec.id,
                         spec.pfAddress));
    for (const SriovProfileSpec &profile : pf->second.profiles)
        if (profile.id == spec.id)
            fail(fmt::format("{} already offers vGPU profile {}", spec.pfAddress, spec.id));
    pf->second.profiles.push_back(spec);
    refreshCatalogsLocked(spec.pfAddress);
    transaction.report(fmt::format("sriov profile added pf={} id={} instances={}", spec.pfAddress, spec.id,
                                   spec.instances));
}

std::vector<std::string> SimNode::setNumVfsLocked(const std::string &pfAddress, int count) {
    auto found = pci_.find(pfAddress);
    if (found == pci_.end())
        fail(fmt::format("no PCI function {} on this node", pfAddress));
    const PciFunctionSpec pfSpec = found->second.spec;
    const int current = static_cast<int>(found->second.vfs.size());
    if (pfSpec.sriovTotalVfs <= 0)
        fail(fmt::format("{} is not an SR-IOV PF (no sriov_totalvfs)", pfAddress));
    if (count < 0 || count > pfSpec.sriovTotalVfs)
        fail(fmt::format("{}: {} VFs asked, sriov_totalvfs is {}", pfAddress, count, pfSpec.sriovTotalVfs));
    if (count == current)
        return {};
    if (count != 0 && current != 0)
        fail(fmt::format("{} already has {} VFs; write 0 first (EBUSY)", pfAddress, current));
    const std::string pfDevpath = found->second.devpath;
    std::vector<std::string> changed;

    if (count == 0) {
        std::vector<std::string> vfs = found->second.vfs;
        for (auto vf = vfs.rbegin(); vf != vfs.rend(); ++vf) {
            removePciFunctionLocked(*vf);
            changed.push_back(*vf);
        }
        writeFile(sysDir_ + pfDevpath + "/sriov_numvfs", "0\n");
        return changed;
    }
    if (found->second.driver != kSriovDriver)
        fail(fmt::format("{} must be bound to nvidia to create VFs (driver: {})", pfAddress,
                         found->second.driver.empty() ? "none" : found->second.driver));

    // dddd:bb:dd.f -> devfn; VF i sits at devfn + offset + i (stride 1).
    const unsigned bus = static_cast<unsigned>(std::stoul(pfAddress.substr(5, 2), nullptr, 16));
    const unsigned devfn = static_cast<unsigned>(std::stoul(pfAddress.substr(8, 2), nullptr, 16)) * 8 +
                           static_cast<unsigned>(pfAddress[11] - '0');
    const std::string parent = pfDevpath.substr(std::string("/devices/").size(),
                                                pfDevpath.rfind('/') - std::string("/devices/").size());
    for (int i = 0; i < count; ++i) {
        const unsigned vfDevfn = devfn + static_cast<unsigned>(pfSpec.sriovVfOffset + i);
        const std::string address = fmt::format("{}:{:02x}:{:02x}.{}", pfAddress.substr(0, 4),
                                                (bus + vfDevfn / 256) & 0xff, (vfDevfn % 256) / 8, vfDevfn % 8);
        PciFunctionSpec vf;
        vf.address = address;
        vf.vendor = pfSpec.vendor;
        vf.device = pfSpec.device;
        vf.classCode = pfSpec.classCode;
        vf.subsystemVendor = pfSpec.subsystemVendor;
        vf.subsystemDevice = pfSpec.subsystemDevice;
        vf.iommuGroup = highestGroup_ + 1;
        vf.numaNode = pfSpec.numaNode;
        vf.parentPath = parent;
        // 1. add: the VF exists, its physfn link does not yet.
        addPciFunctionLocked(vf, false);
        PciRecord &record = pci_.at(address);
        // 2. pci_iov_sysfs_link, then change on the VF.
        replaceSymlink("../" + pfAddress, sysDir_ + record.devpath + "/physfn");
        replaceSymlink("../" + address, fmt::format("{}{}/virtfn{}", sysDir_, pfDevpath, i));
        record.physfn = pfAddress;
        pci_.at(pfAddress).vfs.push_back(address);
        ueventLocked(record.devpath, "change");
        // 3. autoprobe: nvidia binds (VFIO nodes, nvidia/ attributes, bind).
        bindLocked(address, kSriovDriver);
        changed.push_back(address);
    }
    writeFile(sysDir_ + pfDevpath + "/sriov_numvfs", fmt::format("{}\n", count));
    // 4. sriov_enable's change on the PF.
    ueventLocked(pfDevpath, "change");
    return changed;
}

std::vector<std::string> SimNode::setNumVfs(const std::string &pfAddress, int count) {
    Transaction transaction(*this);
    std::vector<std::string> vfs;
    const std::size_t before = pci_.count(pfAddress) ? pci_.at(pfAddress).vfs.size() : 0;
    try {
        vfs = setNumVfsLocked(pfAddress, count);
    } catch (...) {
        // A refused write leaves the attribute as it was.
        if (auto pf = pci_.find(pfAddress); pf != pci_.end() && pf->second.spec.sriovTotalVfs > 0)
            if (readFile(sysDir_ + pf->second.devpath + "/sriov_numvfs") != fmt::format("{}\n", pf->second.vfs.size()))
                writeFile(sysDir_ + pf->second.devpath + "/sriov_numvfs", fmt::format("{}\n", pf->second.vfs.size()));
        throw;
    }
    if (before != static_cast<std::size_t>(count))
        transaction.report(fmt::format("sriov numvfs pf={} count={}", pfAddress, count));
    return vfs;
}

void SimNode::setVgpuProfileLocked(const std::string &vfAddress, std::uint32_t id) {
    auto found = pci_.find(vfAddress);
    if (found == pci_.end() || found->second.physfn.empty())
        fail(fmt::format("{} is not an SR-IOV VF on this node", vfAddress));
    PciRecord &vf = found->second;
    const std::string file = sysDir_ + vf.devpath + "/nvidia/current_vgpu_type";
    if (vf.driver != kSriovDriver)
        fail(fmt::format("{} is not bound to nvidia (driver: {})", vfAddress, vf.driver.empty() ? "none" : vf.driver));
    // The node rewrites only what differs: its own writes reach the emulation
    // too, and an unchanged file must not be truncated under a reader.
    auto show = [&file](std::uint32_t value) {
        const std::string text = fmt::format("{}\n", value);
        if (readFile(file) != text)
            writeFile(file, text);
    };
    if (id == vf.vgpuType) {
        show(id);
        return;
    }
    if (id != 0 && vf.vgpuType != 0)
        fail(fmt::format("{} already carries vGPU type {}; write 0 first (EPERM)", vfAddress, vf.vgpuType));
    if (id != 0) {
        const PciRecord &pf = pci_.at(vf.physfn);
        auto profile = std::find_if(pf.profiles.begin(), pf.profiles.end(),
                                    [&](const SriovProfileSpec &p) { return p.id == id; });
        if (profile == pf.profiles.end())
            fail(fmt::format("{}: the card does not offer vGPU type {} (ENODEV)", vfAddress, id));
        int used = 0;
        for (const std::string &sibling : pf.vfs)
            used += pci_.at(sibling).vgpuType == id ? 1 : 0;
        if (used >= profile->instances)
            fail(fmt::format("{}: no vGPU type {} instance left on the card (ENOSPC)", vfAddress, id));
    }
    vf.vgpuType = id;
    show(id);
    refreshCatalogsLocked(vf.physfn);
}

void SimNode::setVgpuProfile(const std::string &vfAddress, std::uint32_t id) {
    Transaction transaction(*this);
    std::uint32_t before = 0;
    if (auto vf = pci_.find(vfAddress); vf != pci_.end())
        before = vf->second.vgpuType;
    try {
        setVgpuProfileLocked(vfAddress, id);
    } catch (...) {
        // A refused write leaves the attribute as it was.
        if (auto vf = pci_.find(vfAddress); vf != pci_.end() && vf->second.driver == kSriovDriver &&
                                            fs::is_directory(sysDir_ + vf->second.devpath + "/nvidia"))
            if (readFile(sysDir_ + vf->second.devpath + "/nvidia/current_vgpu_type") != fmt::format("{}\n", before))
                writeFile(sysDir_ + vf->second.devpath + "/nvidia/current_vgpu_type", fmt::format("{}\n", before));
        throw;
    }
    // Only a change is an action: the node's own writes reach the emulation too.
    if (before != id)
        transaction.report(fmt::format("vgpu profile set vf={} type={}", vfAddress, id));
}

std::vector<std::string> SimNode::virtualFunctions(const std::string &pfAddress) const {
    std::lock_guard lock(mutex_);
    auto pf = pci_.find(pfAddress);
    if (pf == pci_.end())
        fail(fmt::format("no PCI function {} on this node", pfAddress));
    return pf->second.vfs;
}

// --- Grace EGM ----------------------------------------------------------------------

void SimNode::writeEgmMembersLocked(const std::string &region) {
    const EgmRegionSpec &spec = egm_.at(region);
    const std::string dir = sysDir_ + "/devices/virtual/egm/" + region;
    if (!spec.linkLayout) {
        std::string text;
        for (const std::string &gpu : spec.gpus)
            text += gpu + "\n";
        writeFile(dir + "/gpu_devices", text);
        return;
    }
    for (const std::string &gpu : spec.gpus) {
        auto function = pci_.find(gpu);
        replaceSymlink(function != pci_.end() ? "../../../.." + function->second.devpath
                                              : "../../../../devices/pci0000:00/" + gpu,
                       dir + "/" + gpu);
    }
}

void SimNode::addEgmRegion(const EgmRegionSpec &spec) {
    Transaction transaction(*this);
    if (spec.name.rfind("egm", 0) != 0 || spec.name.size() < 4 ||
        spec.name.find_first_not_of("0123456789", 3) != std::string::npos)
        fail(fmt::format("'{}' is not an EGM region name like egm4", spec.name));
    if (egm_.count(spec.name))
        fail(fmt::format("EGM region {} already exists", spec.name));
    for (const std::string &gpu : spec.gpus)
        if (!isPciAddress(gpu))
            fail(fmt::format("EGM region {}: '{}' is not a PCI address", spec.name, gpu));
    const int minor = std::stoi(spec.name.substr(3));
    const std::string devpath = "/devices/virtual/egm/" + spec.name;
    egm_[spec.name] = spec;
    // devtmpfs makes the node before the add uevent goes out.
    if (spec.deviceNode)
        writeFile(devRoot_ + "/" + spec.name, "");
    std::string record = fmt::format("P: {}\nE: MAJOR={}\nE: MINOR={}\nE: DEVNAME={}\nE: SUBSYSTEM=egm\n"
                                     "A: dev={}:{}\\n\nA: egm_size=0x1000000000\\n\n",
                                     devpath, kEgmMajor, minor, spec.name, kEgmMajor, minor);
    // Both layouts exist before the event here (drivers using dev_groups).
    fs::create_directories(sysDir_ + devpath);
    writeEgmMembersLocked(spec.name);
    addDeviceLocked(record + "\n");
    fs::create_directories(sysDir_ + "/class/egm");
    if (!fs::exists(fs::symlink_status(sysDir_ + "/class/egm/" + spec.name)))
        replaceSymlink("../../devices/virtual/egm/" + spec.name, sysDir_ + "/class/egm/" + spec.name);
    transaction.report(fmt::format("egm region added name={} gpus={}", spec.name, spec.gpus.size()));
}

void SimNode::addEgmGpu(const std::string &region, const std::string &gpu) {
    Transaction transaction(*this);
    auto found = egm_.find(region);
    if (found == egm_.end())
        fail(fmt::format("no EGM region {} on this node", region));
    if (!isPciAddress(gpu))
        fail(fmt::format("'{}' is not a PCI address", gpu));
    found->second.gpus.push_back(gpu);
    writeEgmMembersLocked(region);
    transaction.report(fmt::format("egm gpu added region={} gpu={}", region, gpu));
}

void SimNode::removeEgmRegion(const std::string &region) {
    Transaction transaction(*this);
    if (!egm_.count(region))
        fail(fmt::format("no EGM region {} on this node", region));
    std::error_code ignored;
    fs::remove(devRoot_ + "/" + region, ignored);
    removeDeviceLocked("/devices/virtual/egm/" + region);
    fs::remove(sysDir_ + "/class/egm/" + region, ignored);
    egm_.erase(region);
    transaction.report(fmt::format("egm region removed name={}", region));
}

// --- /dev/vfio and health ---------------------------------------------------------

void SimNode::deleteVfioNode(int group) {
    Transaction transaction(*this);
    if (!vfioNodes_.count(group) && !fs::exists(fmt::format("{}/vfio/{}", devRoot_, group)))
        fail(fmt::format("there is no /dev/vfio/{}", group));
    deleteVfioNodeLocked(group);
    transaction.report(fmt::format("vfio node deleted group={}", group));
}

void SimNode::createVfioNode(int group) {
    Transaction transaction(*this);
    if (group < 0)
        fail(fmt::format("IOMMU group {} is negative", group));
    createVfioNodeLocked(group);
    transaction.report(fmt::format("vfio node created group={}", group));
}

void SimNode::setAttribute(const std::string &address, const std::string &name,
                           const std::string &value) {
    Transaction transaction(*this);
    if (!isRelativeAttributePath(name))
        fail(fmt::format("'{}' is not an attribute name", name));
    writeFile(sysDir_ + devpathOfLocked(address) + "/" + name, value);
    transaction.report(fmt::format("attribute set address={} name={}", address, name));
}

void SimNode::sendChange(const std::string &address,
                         const std::vector<std::pair<std::string, std::string>> &properties) {
    Transaction transaction(*this);
    const std::string devpath = devpathOfLocked(address);
    std::string extra;
    std::string summary;
    for (const auto &[key, value] : properties) {
        if (!isPropertyName(key) || value.find('\n') != std::string::npos)
            fail(fmt::format("'{}={}' is not a uevent property", key, value));
        extra += key + "=" + value + "\n";
        summary += " " + key + "=" + value;
    }
    // umockdev sends what the uevent file holds, and AER's properties belong to
    // this one event only: add them, send, restore.
    const std::string ueventPath = sysDir_ + devpath + "/uevent";
    const std::string original = readFile(ueventPath);
    writeFile(ueventPath, original + extra);
    ueventLocked(devpath, "change");
    writeFile(ueventPath, original);
    transaction.report(fmt::format("change sent address={}{}", address, summary));
}

// --- Kernel emulation -------------------------------------------------------------

void SimNode::startKernelEmulation() {
    std::lock_guard lock(mutex_);
    if (emulation_)
        return;
    emulation_ = std::make_unique<KernelEmulation>(*this);
    for (const auto &[address, function] : pci_)
        if (!function.driver.empty() && function.driver == function.typesDriver)
            for (const VgpuTypeSpec &type : function.vgpuTypes)
                emulation_->watchVgpuType(
                    sysDir_ + function.devpath + "/mdev_supported_types/" + type.typeId, address,
                    type.typeId);
    for (const auto &[uuid, mdev] : mdevs_)
        emulation_->watchVgpu(sysDir_ + mdev.devpath, uuid);
    for (const auto &[address, function] : pci_) {
        if (function.spec.sriovTotalVfs > 0)
            emulation_->watchSriovPf(sysDir_ + function.devpath, address);
        if (!function.physfn.empty() && function.driver == kSriovDriver)
            emulation_->watchVgpuProfile(sysDir_ + function.devpath + "/nvidia", address);
    }
}

void SimNode::stopKernelEmulation() {
    std::unique_ptr<KernelEmulation> emulation;
    {
        std::lock_guard lock(mutex_);
        emulation = std::move(emulation_);
    }
    // Joined without the mutex: the thread may be waiting for it inside a verb.
    emulation.reset();
}

// --- Lookups ----------------------------------------------------------------------

std::string SimNode::pathOf(const std::string &address) const {
    std::lock_guard lock(mutex_);
    return sysDir_ + devpathOfLocked(address);
}

std::string SimNode::devpathOf(const std::string &address) const {
    std::lock_guard lock(mutex_);
    return devpathOfLocked(address);
}

std::optional<int> SimNode::iommuGroupOf(const std::string &address) const {
    std::lock_guard lock(mutex_);
    if (auto function = pci_.find(address); function != pci_.end())
        return function->second.group;
    if (auto mdev = mdevs_.find(toLower(address)); mdev != mdevs_.end())
        return mdev->second.group;
    fail(fmt::format("no device {} on this node", address));
}

std::vector<std::string> SimNode::vgpus() const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> uuids;
    for (const auto &[uuid, mdev] : mdevs_)
        uuids.push_back(uuid);
    return uuids;
}

} // namespace kvgpu::test
