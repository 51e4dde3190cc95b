// How a device is named in a ResourceSlice, and the label-shaped strings the
// DRA API asks for elsewhere (taint values). A device name must be a DNS
// label (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters), so a PCI
// address and an mdev UUID are spelled over: `pci-0000-65-00-0`,
// `mdev-aa618089-8b16-4d01-a136-25a0f3c73123`. The name depends only on the
// device's id, so it is stable across restarts and re-publications; callers
// that need the way back keep a map from name to device.
//
// Pure functions; thread-safe.
#pragma once

#include "dra/dra_device.h"
#include "model/device_kind.h"

#include <string>
#include <string_view>

namespace kvgpu::dra {

inline constexpr std::size_t kMaxDnsLabel = 63;

// The DRA device name of a device of `kind` with `id` (PCI address for
// passthrough and SR-IOV VFs, UUID for mdevs). Any other id (never produced
// by the device index) still yields a valid, deterministic DNS label: its
// characters outside [a-z0-9] become '-', and a name too long is cut and
// ended with a hash of the whole id.
std::string draDeviceName(DeviceKind kind, std::string_view id);
std::string draDeviceName(const DraDevice &device);

// A DNS label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, 1 to 63 characters.
bool isDnsLabel(std::string_view text);

// A label value as Kubernetes validates it, non-empty:
// [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?, at most 63 characters.
bool isLabelValue(std::string_view text);

// The label-value form of a sentence (a health reason, for a taint's value):
// lowercase, every run of characters outside [a-z0-9] one '-', no '-' at
// either end ("no /dev/vfio/12" -> "no-dev-vfio-12"). A result longer than 63
// is cut to 54 and ended with '-' and 8 hex digits of a hash of the whole
// sentence, so two long reasons that differ late still differ. A sentence
// with no letter or digit gives "unknown". Deterministic; always isLabelValue.
std::string labelValueOf(std::string_view sentence);

} // namespace kvgpu::dra
