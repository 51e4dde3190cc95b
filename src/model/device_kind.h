// The kinds of device the plugin advertises, and the two ways they are
// spelled: in messages, and as a word in the resource configuration and in
// `list --json`. Both `device` (derivation) and `config` (the rules' `kind`
// key) speak of kinds; this is where a new kind is added.
//
// Pure values and functions; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace kvgpu {

// Passthrough: a whole GPU bound to a VFIO driver. Vgpu: a mediated device
// (MDEV_PCI_RESOURCE_). SriovVgpu: an SR-IOV vGPU VF (vGPU 17+), which
// KubeVirt takes as a PCI host device (PCI_RESOURCE_), handed out like
// passthrough.
enum class DeviceKind { Passthrough, Vgpu, SriovVgpu };

// "passthrough", "vGPU", "SR-IOV vGPU": for messages.
const char *deviceKindName(DeviceKind kind);

// "passthrough", "vgpu", "sriov-vgpu": the configuration's `kind` values and
// the kinds `list --json` prints.
const char *deviceKindWord(DeviceKind kind);
// The kind a word names; nullopt for any other word (case matters).
std::optional<DeviceKind> deviceKindOfWord(std::string_view word);
// Every word, comma-separated, for "known: ..." in messages.
std::string deviceKindWords();

} // namespace kvgpu
