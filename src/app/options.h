// Command line options shared by `serve` (the default) and `list`.
#pragma once

#include "base/log.h"

#include <chrono>
#include <string>

namespace kvgpu {

struct CommonOptions {
    std::string sysfsRoot = "/sys";
    std::string devRoot = "/dev";
    std::string pluginDir = "/var/lib/kubelet/device-plugins";
    std::string pciIds = "/usr/share/misc/pci.ids";
    log::Level logLevel = log::Level::Info;
    // Where the daemon keeps what it learned (SR-IOV vGPU profile names); "" = nowhere.
    std::string stateDir;
};

struct ServeOptions {
    std::string udevSource = "kernel"; // kernel | udev
    int ueventBufferBytes = 16 * 1024 * 1024;
    int probePort = 8081; // gRPC health service for Kubernetes probes; 0 disables it
    int healthIntervalSeconds = 30; // re-read of signals that change without events; 0 disables it
    // Re-read of SR-IOV VFs' current_vgpu_type (profile writes send no event); 0 disables it.
    std::chrono::milliseconds vgpuProfileInterval{1000};
};

} // namespace kvgpu
