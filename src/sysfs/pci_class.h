// What a PCI class code means to the plugin: a short label for people, and
// which classes are resources of their own, companions of a GPU, or bridges.
//
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>

namespace kvgpu {

// A short human label for a PCI class code ("display", "3D controller",
// "audio", "USB", "serial bus", "bridge (NVSwitch)", "class 0x0b40").
std::string classLabel(std::uint32_t classCode);

// Whether a function of this class is a resource of its own (display
// controllers and NVSwitches) rather than a companion that travels with its
// IOMMU group.
bool isAdvertisedClass(std::uint32_t classCode);

// PCI-to-PCI and host bridges: members of an IOMMU group that never make it
// unusable for VFIO, whatever driver they have.
bool isPciBridgeClass(std::uint32_t classCode);

} // namespace kvgpu
