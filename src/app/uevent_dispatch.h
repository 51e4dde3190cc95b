// What a uevent makes the registry re-read: the one place that maps an event
// (subsystem, device name, recovery property) to a reconcile step. The daemon
// and the uevent fuzzer both go through it.
#pragma once

#include "device/registry.h"
#include "monitor/uevent_monitor.h"

namespace kvgpu {

// Unknown subsystems and malformed names are ignored; nothing here throws.
void applyUevent(DeviceRegistry &registry, const Uevent &event);

} // namespace kvgpu
