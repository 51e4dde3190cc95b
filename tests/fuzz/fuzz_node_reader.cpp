// The sysfs readers on a node whose files and links are laid out by the fuzz
// input: one PCI function and one mdev under it, each file and link of theirs
// missing, as the kernel writes it, with fuzzed content, or of the wrong kind
// (a directory where a file belongs, a file or a dangling link where a link
// belongs). observePciFunction, observeMdev, scanNode and deriveInventory must
// never crash; every device is present, unreadable with a problem that names
// the file, or absent, and the scan agrees with the one-device readers; what
// is advertised can be allocated while the node stays as it is (and has the
// /dev/vfio nodes it needs).
#include "app/list_command.h"
#include "index/device_index.h"
#include "sysfs/node_reader.h"
#include "sysfs/sysfs_parse.h"
#include "allocation/allocation.h"
#include "fuzz_support.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

using namespace kvgpu;

namespace {

std::string g_root;

void removeRoot() { std::filesystem::remove_all(g_root); }

void makeDirs(const std::string &path)
{
    std::error_code ignored;
    std::filesystem::create_directories(path, ignored);
}

std::string parentOf(const std::string &path) { return path.substr(0, path.rfind('/')); }

// Lays out one entry of the tree in the shape the input chooses. Paths are
// relative to the tree's root; every link target stays inside the tree, so a
// reader following links never leaves it (nor meets /dev/stdin or a FIFO).
class TreeBuilder {
public:
    TreeBuilder(FuzzedDataProvider &data, std::string root, std::vector<std::string> words)
        : data_(data), root_(std::move(root)), words_(std::move(words))
    {
    }

    void file(const std::string &path, const std::string &realistic)
    {
        switch (data_.ConsumeIntegralInRange(0, 9)) {
        case 0: return; // missing
        case 1: writeFile(path, data_.ConsumeRandomLengthString(300)); return;
        case 2: makeDirs(root_ + "/" + path); return;
        case 3: makeLink(path, target(path)); return;
        default: writeFile(path, realistic); return;
        }
    }

    void link(const std::string &path, const std::string &realistic)
    {
        switch (data_.ConsumeIntegralInRange(0, 9)) {
        case 0: return;
        case 1: writeFile(path, data_.ConsumeRandomLengthString(40)); return;
        case 2: makeDirs(root_ + "/" + path); return;
        case 3: case 4: makeLink(path, target(path)); return;
        default: makeLink(path, realistic); return;
        }
    }

    void dir(const std::string &path) { makeDirs(root_ + "/" + path); }

private:
    void writeFile(const std::string &path, const std::string &content)
    {
        makeDirs(root_ + "/" + parentOf(path));
        int fd = ::open((root_ + "/" + path).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0)
            return;
        [[maybe_unused]] ssize_t n = ::write(fd, content.data(), content.size());
        ::close(fd);
    }

    void makeLink(const std::string &path, const std::string &target)
    {
        makeDirs(root_ + "/" + parentOf(path));
        [[maybe_unused]] int rc = ::symlink(target.c_str(), (root_ + "/" + path).c_str());
    }

    // A relative target: some "..", never more than lead back to the root,
    // then names from the tree's vocabulary or the input.
    std::string target(const std::string &linkPath)
    {
        int depth = static_cast<int>(std::count(linkPath.begin(), linkPath.end(), '/'));
        std::string out;
        for (int up = data_.ConsumeIntegralInRange(0, depth); up > 0; --up)
            out += "../";
        for (int n = data_.ConsumeIntegralInRange(0, 6); n > 0; --n) {
            switch (data_.ConsumeIntegralInRange(0, 7)) {
            case 0: out += fuzz::entryName(data_, 24); break;
            case 1: out += data_.ConsumeBool() ? "." : ""; break;
            default: out += words_[data_.ConsumeIntegralInRange<size_t>(0, words_.size() - 1)]; break;
            }
            if (n > 1 || data_.ConsumeBool())
                out += '/';
        }
        return out.empty() ? "." : out;
    }

    FuzzedDataProvider &data_;
    std::string root_;
    std::vector<std::string> words_;
};

// A name for an entry of `dir` that cannot collide with the fixed entries there
// (a collision would have the builder write through one of its own links).
std::string freeName(std::string name, std::initializer_list<const char *> taken)
{
    for (const char *t : taken)
        if (name == t)
            return "m-" + name;
    return name;
}

void checkPci(const PciObservation &seen, const std::string &address)
{
    switch (seen.state) {
    case PciObservation::State::Absent: break;
    case PciObservation::State::NotNvidia: FUZZ_CHECK(seen.function.vendor != kNvidiaVendorId, address); break;
    case PciObservation::State::Unreadable: FUZZ_CHECK(!seen.problem.empty(), address); break;
    case PciObservation::State::Present: {
        const PciFunction &f = seen.function;
        FUZZ_CHECK(f.address == address && f.vendor == kNvidiaVendorId, address);
        FUZZ_CHECK(f.classCode <= 0xffffff, address);
        FUZZ_CHECK(f.numaNode >= -1 && f.numaNode <= 4095, address);
        FUZZ_CHECK(f.iommuGroup >= -1 && (f.iommuGroup == -1) == !f.iommuGroupProblem.empty(), address);
        for (const std::string &part : f.pciePath)
            FUZZ_CHECK(!part.empty() && part != "." && part != ".." && part.find('/') == std::string::npos, part);
        FUZZ_CHECK(f.vfioDevice.empty() || f.vfioDevice.rfind("vfio", 0) == 0, f.vfioDevice);
        break;
    }
    }
}

void checkMdev(const MdevObservation &seen, const std::string &uuid)
{
    switch (seen.state) {
    case MdevObservation::State::Absent: break;
    case MdevObservation::State::Unreadable: FUZZ_CHECK(!seen.problem.empty(), uuid); break;
    case MdevObservation::State::Present: {
        const Mdev &m = seen.mdev;
        FUZZ_CHECK(m.uuid == uuid && !m.pciePath.empty() && m.parentAddress == m.pciePath.back(), uuid);
        FUZZ_CHECK(m.numaNode >= -1 && m.numaNode <= 4095, uuid);
        // The IOMMU group exists once a vGPU driver has bound the mdev.
        FUZZ_CHECK(m.driver.empty() ? m.iommuGroup == -1 : m.iommuGroup >= 0, uuid);
        break;
    }
    }
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***)
{
    fuzz::quietLogs();
    g_root = fuzz::scratchDir("kvgpu-fuzz-node");
    std::atexit(removeRoot);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *bytes, size_t size)
{
    FuzzedDataProvider data(bytes, size);
    removeRoot();
    makeDirs(g_root + "/sys/bus/pci/devices");
    makeDirs(g_root + "/dev");

    std::string address = data.ConsumeIntegralInRange(0, 7) == 0 ? fuzz::entryName(data) : "0000:65:00.0";
    std::string uuid = data.ConsumeIntegralInRange(0, 7) == 0
                           ? freeName(fuzz::entryName(data), {"vendor", "device", "class", "numa_node", "driver",
                                                              "iommu_group", "vfio-dev", "mdev_supported_types",
                                                              "power_state", "config", "aer_dev_fatal", "reset_method",
                                                              "current_link_speed", "max_link_speed",
                                                              "current_link_width", "max_link_width"})
                           : "aa618089-8b16-4d01-a136-25a0f3c73123";
    std::string type = data.ConsumeIntegralInRange(0, 7) == 0 ? fuzz::entryName(data, 24) : "nvidia-222";
    const std::string parents = "devices/pci0000:64/0000:64:00.0";
    const std::string fn = parents + "/" + address;
    const std::string md = fn + "/" + uuid;

    TreeBuilder sys(data, g_root + "/sys",
                    {"devices", "pci0000:64", "0000:64:00.0", address, uuid, "bus", "pci", "mdev", "kernel",
                     "iommu_groups", "12", "drivers", "vfio-pci", "mdev_supported_types", type});
    // The PCI function.
    sys.link("bus/pci/devices/" + address, "../../../" + fn);
    sys.dir(fn);
    sys.file(fn + "/vendor", "0x10de\n");
    sys.file(fn + "/device", data.ConsumeBool() ? "0x1eb8\n" : "0x20b1\n");
    sys.file(fn + "/class", data.ConsumeBool() ? "0x030200\n" : "0x030000\n");
    sys.file(fn + "/numa_node", data.ConsumeBool() ? "1\n" : "-1\n");
    sys.link(fn + "/driver", data.ConsumeBool() ? "../../../../bus/pci/drivers/vfio-pci"
                                                : "../../../../bus/pci/drivers/nvidia");
    sys.link(fn + "/iommu_group", "../../../../kernel/iommu_groups/12");
    if (data.ConsumeBool())
        sys.dir(fn + "/vfio-dev/" + (data.ConsumeBool() ? std::string("vfio3") : fuzz::entryName(data, 12)));
    // Its health files, and the other members of its IOMMU group.
    sys.file(fn + "/power_state", data.ConsumeBool() ? "D0\n" : "error\n");
    sys.file(fn + "/config", data.ConsumeBool() ? std::string("\xde\x10\xb8\x1e", 4) : std::string("\xff\xff\xff\xff", 4));
    sys.file(fn + "/aer_dev_fatal", "Undefined 0\nDLP 0\nSDES 0\nTLP 0\nFCP 0\nCmpltTO 0\nTOTAL_ERR_FATAL 0\n");
    sys.file(fn + "/reset_method", "flr bus\n");
    sys.file(fn + "/current_link_speed", "8.0 GT/s PCIe\n");
    sys.file(fn + "/max_link_speed", "16.0 GT/s PCIe\n");
    sys.file(fn + "/current_link_width", "16\n");
    sys.file(fn + "/max_link_width", "16\n");
    sys.link("kernel/iommu_groups/12/devices/" + address, "../../../../" + fn);
    if (data.ConsumeBool()) {
        // An HD audio function in the same group, on a host driver or not.
        const std::string audio = parents + "/0000:65:00.1";
        sys.file(audio + "/class", "0x040300\n");
        sys.link(audio + "/driver", data.ConsumeBool() ? "../../../../bus/pci/drivers/snd_hda_intel"
                                                       : "../../../../bus/pci/drivers/vfio-pci");
        sys.link("kernel/iommu_groups/12/devices/0000:65:00.1", "../../../../" + audio);
        sys.link("bus/pci/devices/0000:65:00.1", "../../../" + audio);
    }
    // Its vGPU type and one vGPU of that type.
    sys.file(fn + "/mdev_supported_types/" + type + "/name", data.ConsumeBool() ? "GRID T4-1Q\n" : "GRID  T4-2B4 \n");
    sys.link("bus/mdev/devices/" + uuid, "../../../" + md);
    sys.dir(md);
    sys.link(md + "/mdev_type", "../mdev_supported_types/" + type);
    sys.link(md + "/iommu_group", "../../../../../kernel/iommu_groups/101");
    sys.link(md + "/driver", "../../../../../bus/mdev/drivers/nvidia-vgpu-vfio");
    if (data.ConsumeBool())
        sys.dir(md + "/vfio-dev/vfio4");
    // The VFIO group nodes.
    TreeBuilder dev(data, g_root + "/dev", {"vfio", "12", "101"});
    dev.file("vfio/vfio", "");
    for (int n = data.ConsumeIntegralInRange(0, 3); n > 0; --n)
        dev.file("vfio/" + (data.ConsumeBool() ? std::to_string(data.ConsumeIntegralInRange(-1, 120))
                                               : fuzz::entryName(data, 12)),
                 "");
    if (data.ConsumeBool())
        dev.file("iommu", "");

    std::optional<std::string> modelName;
    if (data.ConsumeBool())
        modelName = data.ConsumeRemainingBytesAsString();
    fuzz::FuzzedNames names(modelName);

    const SysfsTree sysfs(g_root + "/sys");
    const DevTree devTree(g_root + "/dev");
    PciObservation pci = observePciFunction(sysfs, address);
    checkPci(pci, address);
    MdevObservation mdev = observeMdev(sysfs, uuid);
    checkMdev(mdev, uuid);

    // The scan sees each device exactly as the one-device readers do.
    NodeObservation node = scanNode(sysfs, devTree);
    bool pciPresent = pci.state == PciObservation::State::Present;
    bool pciUnreadable = pci.state == PciObservation::State::Unreadable;
    FUZZ_CHECK(node.functions.contains(address) == pciPresent, address);
    FUZZ_CHECK(node.unreadableFunctions.contains(address) == pciUnreadable, address);
    if (uuid != address) {
        FUZZ_CHECK(node.mdevs.contains(uuid) == (mdev.state == MdevObservation::State::Present), uuid);
        FUZZ_CHECK(node.unreadableMdevs.contains(uuid) == (mdev.state == MdevObservation::State::Unreadable), uuid);
    }

    Inventory inventory = deriveInventory(node, names);
    fuzz::checkInventory(node, inventory);
    (void)formatDeviceTable(inventory);
    (void)formatDeviceJson(inventory, {});

    // Whatever is advertised can be allocated while the node is unchanged.
    for (const auto &[name, resource] : inventory.resources) {
        for (const AdvertisedDevice &device : resource.devices) {
            Result<ContainerAllocation, AllocationError> allocation =
                allocateContainer(resource, {device.id}, sysfs, devTree);
            // Unless a node it needs is missing, which Allocate refuses rather
            // than hand the container a path to nothing.
            bool nodesPresent = devTree.exists("vfio/vfio") && devTree.hasVfioGroupNode(device.iommuGroup);
            FUZZ_CHECK(allocation.ok() || !nodesPresent, device.id + ": " + allocation.error());
        }
    }
    return 0;
}
