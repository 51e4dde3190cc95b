// A simulated GPU node: the kernel's side of NVIDIA GPUs, the PCIe bridges above
// them, vGPU (mdev) types and instances, and the VFIO group nodes, emulated on a
// umockdev testbed. A daemon under test reads the same sysfs files (under
// sysfsRoot()) and /dev/vfio files (under devRoot()) and receives the same
// uevents, in the same order, as on a real node.
//
// Threading: thread-safe. Every public member function takes one mutex around
// all testbed and file access, because the kernel emulation (see
// startKernelEmulation) runs vGPU verbs on its own thread. The reporter is
// called after that mutex is released, on the thread that did the action; it
// may call back into the node, but must not call stopKernelEmulation() when it
// runs on the emulation thread.
//
// Process-wide state: umockdev_testbed_new() sets UMOCKDEV_DIR for the whole
// process, so keep at most one SimNode alive per process. Uevents reach only
// libudev monitors created after the SimNode, in processes running with
// LD_PRELOAD=libumockdev-preload.so.0 and UMOCKDEV_DIR pointing at rootDir().
//
// Errors: a verb that the real kernel would refuse (unknown device, already
// bound, no vGPU instances left, malformed address) throws std::runtime_error
// naming the device, before it changes anything.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

// umockdev's C type, forward-declared so that users of this header do not need
// the glib headers.
typedef struct _UMockdevTestbed UMockdevTestbed;

namespace kvgpu::test {

class KernelEmulation;

// A PCI function to plug in. The address is the kernel's lowercase
// "dddd:bb:dd.f" form.
struct PciFunctionSpec {
    std::string address;
    std::uint16_t vendor = 0x10de;
    std::uint16_t device = 0;
    std::uint32_t classCode = 0x030200;
    // 0 means "same as vendor" for subsystemVendor.
    std::uint16_t subsystemVendor = 0;
    std::uint16_t subsystemDevice = 0;
    // Driver bound right after the add; "" leaves the function unbound.
    std::string driver;
    // nullopt: no iommu_group link, as on a host with the IOMMU off.
    std::optional<int> iommuGroup;
    // nullopt: no numa_node file, as on kernels built without NUMA.
    std::optional<int> numaNode;
    // Devpath of the bridge above, relative to /sys/devices
    // ("pci0000:64/0000:64:00.0"), or a root complex ("pci0000:64"); "" means
    // the root complex named after the function's domain and bus.
    std::string parentPath;
    // Index K of vfio-dev/vfioK. When set, the cdev exists whenever the function
    // is bound to a VFIO driver, even without iommufd; without it, an index is
    // allocated only on nodes with iommufd.
    std::optional<int> vfioDevIndex;
    // An SR-IOV physical function: sriov_totalvfs holds this (0: not SR-IOV).
    // Writing N into sriov_numvfs (or setNumVfs) makes N virtual functions at
    // devfn + sriovVfOffset + i, each in an IOMMU group of its own.
    int sriovTotalVfs = 0;
    int sriovVfOffset = 4;
};

// A PCIe bridge (root port or switch port), class 0x060400, bound to pcieport.
struct BridgeSpec {
    // Devpath relative to /sys/devices; its last component is the bridge's
    // address: "pci0000:64/0000:64:00.0/0000:65:00.0".
    std::string path;
    std::uint16_t vendor = 0x8086;
    std::uint16_t device = 0x347a;
    std::string driver = "pcieport";
    std::optional<int> iommuGroup;
};

struct VgpuTypeSpec {
    std::string parentAddress;
    std::string typeId;                // "nvidia-592"
    std::optional<std::string> name;   // "NVIDIA L4-1Q"; nullopt: no name file
    int availableInstances = 1;
    std::string description;
};

struct VgpuSpec {
    std::string uuid;
    std::string parentAddress;
    std::string typeId;
};

// A vGPU profile an SR-IOV card offers its VFs (vGPU 17+: Ada, Hopper,
// Blackwell). `instances` is how many VFs of the card may carry it at once;
// while some are left, every unconfigured VF lists it in
// nvidia/creatable_vgpu_types.
struct SriovProfileSpec {
    std::string pfAddress;
    std::uint32_t id = 0;   // 1414
    std::string name;       // "NVIDIA H200X-1-18C"
    int instances = 1;
};

// A Grace EGM region: /sys/class/egm/<name> and /dev/<name>, its GPUs listed
// in gpu_devices (one per line) or, with `linkLayout`, as one link per GPU
// named by its address (the newer driver).
struct EgmRegionSpec {
    std::string name; // "egm4"
    std::vector<std::string> gpus;
    bool linkLayout = false;
    bool deviceNode = true;
};

struct SimNodeOptions {
    // Kernel with iommufd: /dev/iommu exists and every function bound to a
    // VFIO driver gets vfio-dev/vfioK and /dev/vfio/devices/vfioK.
    bool iommufd = false;
    // How long a verb waits for a uevent monitor whose queue is full before
    // that monitor misses the event (see monitor_pacing.h).
    std::chrono::milliseconds monitorPatience{3000};
};

class SimNode {
public:
    // Called once per completed public verb with a line such as
    // "vgpu created uuid=... type=nvidia-592 parent=0000:e1:00.0".
    using Reporter = std::function<void(const std::string &line)>;

    // Creates the testbed and the dev root (with vfio/vfio, and iommu when
    // options.iommufd). Throws std::runtime_error when a temp dir cannot be made.
    explicit SimNode(SimNodeOptions options = {});
    ~SimNode();

    SimNode(const SimNode &) = delete;
    SimNode &operator=(const SimNode &) = delete;

    // Builds a node from the text format described in node_description.h.
    // Throws DescriptionError (node_description.h; a std::runtime_error) naming
    // the line on a syntax error or an item the node refuses.
    // `options.iommufd` is overridden by an `iommufd` line in the text.
    static std::unique_ptr<SimNode> fromDescription(std::string_view text, SimNodeOptions options = {});
    static std::unique_ptr<SimNode> fromDescriptionFile(const std::string &path);

    // $UMOCKDEV_DIR of the testbed; children need it (and the preload) to get uevents.
    std::string rootDir() const;
    // The fake /sys: a daemon builds its paths as sysfsRoot() + "/bus/pci/...".
    std::string sysfsRoot() const;
    // The fake /dev: holds vfio/vfio, vfio/<group>, vfio/devices/vfioK, iommu.
    std::string devRoot() const;

    void setReporter(Reporter reporter);

    // Called right after each uevent goes out, with the node's lock held (so
    // it must be quick and must not call the node). Benchmarks time the
    // daemon's reaction from here rather than from the start of a verb, whose
    // testbed work is the simulator's cost, not the daemon's.
    using UeventHook = std::function<void(const std::string &devpath, const std::string &action)>;
    void setUeventHook(UeventHook hook);

    // --- Plugging devices in ---------------------------------------------------

    void addBridge(const BridgeSpec &spec);
    void addBridge(const std::string &path) { addBridge(BridgeSpec{.path = path}); }
    // add uevent, then (when spec.driver is set) everything bind() does.
    void addPciFunction(const PciFunctionSpec &spec);
    void addGpu(const std::string &address, std::uint16_t deviceId, std::optional<int> iommuGroup,
                std::optional<int> numaNode, const std::string &driver = "vfio-pci",
                const std::string &parentPath = "");
    // The HDMI/DP audio function that shares a GPU's IOMMU group.
    void addAudioFunction(const std::string &address, std::optional<int> iommuGroup,
                          const std::string &driver = "snd_hda_intel",
                          const std::string &parentPath = "");
    // Unbinds, removes the function's vGPUs and (for bridges) everything below
    // first, then sends remove.
    void removePciFunction(const std::string &address);

    // --- Drivers -----------------------------------------------------------------

    // As `echo <address> > /sys/bus/pci/drivers/<driver>/bind`: driver link,
    // DRIVER= in uevent, and for VFIO drivers the group node (vfio add) and the
    // vfio-dev cdev, then the bind uevent. Throws when already bound.
    void bind(const std::string &address, const std::string &driver);
    // The reverse, in the kernel's order: vGPUs on the function removed (its
    // vGPU types disappear with the host driver), vfio-dev removed, the group
    // node removed when no other member is bound to VFIO, then unbind.
    void unbind(const std::string &address);

    // --- vGPUs -------------------------------------------------------------------

    // Types appear under the parent's mdev_supported_types while the parent
    // stays bound to the driver it had when the type was added.
    void addVgpuType(const VgpuTypeSpec &spec);
    void addVgpuType(const std::string &parentAddress, const std::string &typeId,
                     std::optional<std::string> name, int availableInstances);
    // What writing a UUID into the type's create file does: mdev add, vfio add
    // of its own new IOMMU group, bind to nvidia-vgpu-vfio. Returns the UUID
    // (lowercase). Throws std::runtime_error when available_instances is 0, the
    // UUID is malformed or taken, or the type does not exist.
    std::string createVgpu(const std::string &parentAddress, const std::string &typeId,
                           const std::string &uuid);
    // Same with a random UUID.
    std::string createVgpu(const std::string &parentAddress, const std::string &typeId);
    // What writing 1 into the mdev's remove file does: vfio remove, unbind, remove.
    void removeVgpu(const std::string &uuid);

    // --- SR-IOV vGPU (vendor-specific VFIO) ------------------------------------------

    // Registers a profile on an SR-IOV PF; the VFs' catalogs list it at once.
    void addSriovProfile(const SriovProfileSpec &spec);
    // What writing `count` into the PF's sriov_numvfs does (sriov-manage -e),
    // in the kernel's order. Creating, per VF: add (before the physfn link
    // exists), change (physfn and virtfnN made), the VFIO group node and
    // vfio-dev cdev, bind to nvidia (nvidia/current_vgpu_type reads 0); then
    // change on the PF. Removing (0): unbind and remove per VF, no PF event.
    // Throws as the kernel refuses: more than sriov_totalvfs, a non-zero count
    // over a non-zero count (EBUSY), a PF not bound to nvidia. Returns the VF
    // addresses (created or removed).
    std::vector<std::string> setNumVfs(const std::string &pfAddress, int count);
    // What writing `id` into the VF's nvidia/current_vgpu_type does: the vGPU
    // is created (0: destroyed) and every VF's creatable_vgpu_types on the card
    // is updated -- WITHOUT any uevent, as the driver does. Throws as the
    // driver refuses: an id the card does not offer or has no instance left
    // of, a non-zero id over a non-zero one (EPERM), a VF not bound to nvidia.
    void setVgpuProfile(const std::string &vfAddress, std::uint32_t id);
    std::vector<std::string> virtualFunctions(const std::string &pfAddress) const;

    // --- Grace EGM ---------------------------------------------------------------

    // /dev/<name> (unless !deviceNode), then the egm add uevent.
    void addEgmRegion(const EgmRegionSpec &spec);
    // A GPU joins an existing region without any event, as the region driver does.
    void addEgmGpu(const std::string &region, const std::string &gpu);
    void removeEgmRegion(const std::string &region);

    // --- /dev/vfio and health ----------------------------------------------------

    // Deletes <devRoot>/vfio/<group> and sends vfio remove, whatever is bound;
    // simulates a node vanishing under the daemon.
    void deleteVfioNode(int group);
    // Creates <devRoot>/vfio/<group> and sends vfio add.
    void createVfioNode(int group);
    // Writes a sysfs attribute of a PCI function or vGPU; `name` may be a
    // relative path such as "mdev_supported_types/nvidia-592/available_instances".
    // Real attributes change without uevents, and so do these.
    void setAttribute(const std::string &address, const std::string &name, const std::string &value);
    // A change uevent carrying extra properties for this one event, e.g.
    // {{"ERROR_EVENT", "BEGIN_RECOVERY"}, {"DEVICE_ONLINE", "0"}} as AER sends.
    void sendChange(const std::string &address,
                    const std::vector<std::pair<std::string, std::string>> &properties);

    // --- Kernel emulation --------------------------------------------------------

    // Starts a thread that acts on writes to every create file (a UUID:
    // createVgpu), every vGPU's remove file ("1": removeVgpu), every SR-IOV
    // PF's sriov_numvfs (setNumVfs) and every VF's nvidia/current_vgpu_type
    // (setVgpuProfile), including devices added later. Bad input is logged to
    // stderr and the file restored, as the kernel's EINVAL would leave it.
    void startKernelEmulation();
    // Joins the thread. Call without holding anything the reporter needs.
    void stopKernelEmulation();

    // --- Lookups for tests -------------------------------------------------------

    // Absolute path of a PCI function's or vGPU's sysfs directory.
    std::string pathOf(const std::string &address) const;
    // Devpath as in the DEVPATH property ("/devices/pci0000:64/...").
    std::string devpathOf(const std::string &address) const;
    std::optional<int> iommuGroupOf(const std::string &address) const;
    std::vector<std::string> vgpus() const;

private:
    class Transaction;

    struct PciRecord {
        std::string devpath;
        std::string driver;
        std::optional<int> group;
        bool bridge = false;
        std::optional<int> requestedVfioDev;
        std::optional<int> vfioDev;
        // Types registered by the host driver `typesDriver`; kept while the
        // driver is away so that a rebind brings them back.
        std::vector<VgpuTypeSpec> vgpuTypes;
        std::string typesDriver;
        // SR-IOV: the PF's spec (VFs are made from it), its VFs in order, its
        // profiles; a VF's PF and the profile it carries.
        PciFunctionSpec spec;
        std::vector<std::string> vfs;
        std::vector<SriovProfileSpec> profiles;
        std::string physfn;
        std::uint32_t vgpuType = 0;
    };
    struct MdevRecord {
        std::string devpath;
        std::string parent;
        std::string typeId;
        int group = 0;
    };

    void addPciFunctionLocked(const PciFunctionSpec &spec, bool bridge);
    void bindLocked(const std::string &address, const std::string &driver);
    void unbindLocked(const std::string &address);
    void removePciFunctionLocked(const std::string &address);
    std::string createVgpuLocked(const std::string &parent, const std::string &typeId,
                                 const std::string &uuid);
    void removeVgpuLocked(const std::string &uuid);
    void exposeVgpuTypeLocked(const std::string &parent, const VgpuTypeSpec &type);
    void hideVgpuTypesLocked(const std::string &parent);
    void createVfioNodeLocked(int group);
    void deleteVfioNodeLocked(int group);
    void addVfioDevLocked(const std::string &address, int index);
    void removeVfioDevLocked(const std::string &address);
    bool groupHasVfioMemberLocked(int group) const;
    void addGroupMemberLocked(int group, const std::string &name, const std::string &devpath);
    void removeGroupMemberLocked(int group, const std::string &name);
    void setDriverLinkLocked(const std::string &devpath, const std::string &bus,
                             const std::string &name, const std::string &driver);
    void clearDriverLinkLocked(const std::string &devpath, const std::string &bus,
                               const std::string &name, const std::string &driver);
    void ensureRootComplexLocked(const std::string &rootComplex);
    bool registersVfioLocked(const PciRecord &function, const std::string &driver) const;
    std::vector<std::string> setNumVfsLocked(const std::string &pfAddress, int count);
    void setVgpuProfileLocked(const std::string &vfAddress, std::uint32_t id);
    void refreshCatalogsLocked(const std::string &pfAddress);
    void writeEgmMembersLocked(const std::string &region);
    std::string resolveParentLocked(const std::string &address, const std::string &parentPath) const;
    std::string devpathOfLocked(const std::string &address) const;
    void addDeviceLocked(const std::string &record);
    void removeDeviceLocked(const std::string &devpath);
    void ueventLocked(const std::string &devpath, const char *action);

    mutable std::mutex mutex_;
    UMockdevTestbed *testbed_ = nullptr;
    std::string rootDir_;
    std::string sysDir_;
    std::string devRoot_;
    SimNodeOptions options_;
    Reporter reporter_;
    UeventHook ueventHook_;
    std::map<std::string, PciRecord> pci_;
    std::map<std::string, MdevRecord> mdevs_;
    std::map<int, std::set<std::string>> groupMembers_;
    std::set<int> vfioNodes_;
    std::map<std::string, EgmRegionSpec> egm_;
    int highestGroup_ = -1;
    // Monitors that missed an event of the verb in progress; told when it ends.
    std::set<std::string> overflowed_;
    std::unique_ptr<KernelEmulation> emulation_;
};

} // namespace kvgpu::test
