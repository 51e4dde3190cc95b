// A small text format describing a simulated node, so that demos and tests can
// state a machine in a few lines:
//
//   # comment; blank lines are ignored
//   iommufd  on
//   bridge   pci0000:64/0000:64:00.0 [id=8086:347a] [group=N] [driver=pcieport|none]
//   gpu      0000:65:00.0 id=10de:1eb8 group=12 [numa=0] [driver=vfio-pci]
//            [parent=pci0000:64/0000:64:00.0] [class=0x030200] [subsys=10de:12a2] [vfio-dev=K]
//   function 0000:65:00.1 id=10de:10f8 class=0x040300 group=12 [same options as gpu]
//   device   (same as function)
//   vgpu-type 0000:b1:00.0 nvidia-222 instances=16 [name="GRID T4-1Q"] [description="..."]
//   vgpu     aa618089-8b16-4d01-a136-25a0f3c73123 parent=0000:b1:00.0 type=nvidia-222
//   gpu      0000:41:00.0 id=10de:2335 group=70 driver=nvidia sriov-vfs=16 [vf-offset=4]
//   sriov-profile 0000:41:00.0 1414 name="NVIDIA H200X-1-18C" instances=7
//   vfs      0000:41:00.0 count=4        (as sriov-manage -e: makes the VFs)
//   vf-profile 0000:41:00.4 1414         (as echo 1414 > .../nvidia/current_vgpu_type)
//   egm      egm4 gpus=0009:01:00.0,0009:02:00.0 [layout=file|links] [node=yes|no]
//
// One item per line: a keyword, positional arguments, then key=value fields in
// any order. Values may be double-quoted ("GRID T4-1Q"; \" and \\ escape inside
// quotes). `gpu` defaults to class=0x030200 and driver=vfio-pci; other functions
// default to no driver. group=none means no IOMMU group; a missing numa means no
// numa_node file, numa=-1 writes -1; driver=none leaves the function unbound.
// parent defaults to the root complex of the address's bus (pci0000:65 for
// 0000:65:00.0). `iommufd` is a node-wide setting wherever it appears; items are
// applied in order, so bridges come before what sits below them and vgpu-type
// before vgpu.
//
// Parsing is pure and reentrant; applying touches one SimNode (thread-safe).
#pragma once

#include "sim_node.h"

#include <optional>
#include <stdexcept>
#include <string_view>
#include <variant>
#include <vector>

namespace kvgpu::test {

// Its message names the line: "line 4: gpu: missing id=".
class DescriptionError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct IommufdSetting {
    bool enabled = false;
};

struct VfsSetting {
    std::string pfAddress;
    int count = 0;
};

struct VfProfileSetting {
    std::string vfAddress;
    std::uint32_t id = 0;
};

using DescriptionItem = std::variant<BridgeSpec, PciFunctionSpec, VgpuTypeSpec, VgpuSpec, IommufdSetting,
                                     SriovProfileSpec, VfsSetting, VfProfileSetting, EgmRegionSpec>;

struct DescriptionLine {
    int lineNumber = 0;
    DescriptionItem item;
};

// Parses a whole description. Throws DescriptionError("line N: ...").
std::vector<DescriptionLine> parseNodeDescription(std::string_view text);

// Parses one line; nullopt for a blank or comment-only line. Throws
// DescriptionError without a line prefix.
std::optional<DescriptionItem> parseDescriptionLine(std::string_view line);

// Performs the item on the node (addBridge, addPciFunction, addVgpuType,
// createVgpu, addSriovProfile, setNumVfs, setVgpuProfile, addEgmRegion).
// IommufdSetting must be given to the SimNode constructor instead;
// applying one throws DescriptionError.
void applyDescriptionItem(SimNode &node, const DescriptionItem &item);

} // namespace kvgpu::test
