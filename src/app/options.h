// Command line options shared by `serve` (the default), `list` and `check-config`.
#pragma once

#include "base/log.h"
#include "dra/dra_options.h"

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
    std::string configPath; // --config: resource rules; empty: today's names
    std::string nodeName;   // --node-name (default $NODE_NAME): chooses the config's `nodes` entries
};

struct ServeOptions {
    std::string udevSource = "kernel"; // kernel | udev
    int ueventBufferBytes = 16 * 1024 * 1024;
    int probePort = 8081; // gRPC health service for Kubernetes probes; 0 disables it
    int healthIntervalSeconds = 30; // re-read of signals that change without events; 0 disables it
    // Re-read of SR-IOV VFs' current_vgpu_type (profile writes send no event); 0 disables it.
    std::chrono::milliseconds vgpuProfileInterval{1000};
    // Prometheus /metrics; 0 disables it. 8082: beside the probe port, outside
    // the 9100-9999 range Prometheus hands out to exporters (node-exporter
    // 9100, DCGM exporter 9400), clear of kube-state-metrics (8080/8081) and
    // of the kubelet and kube-proxy (10249-10256).
    int metricsPort = 8082;
    std::string version; // shown by the build-info metric
    dra::DraOptions dra;  // used once the configuration offers a device through DRA
};

} // namespace kvgpu
