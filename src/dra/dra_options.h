// The DRA side's settings (command line flags of the daemon).
//
// Plain values; thread-safe.
#pragma once

#include "base/result.h"

#include <string>

namespace kvgpu::dra {

// The driver name by default: a DNS subdomain under the project's GitHub
// organisation's pages domain, which the project owns, so that it cannot
// collide with another vendor's driver (NVIDIA's is gpu.nvidia.com).
inline constexpr const char *kDefaultDriverName = "gpu.kubevirt-gpu-device-plugin.github.io";

struct DraOptions {
    std::string kubeconfig;   // empty: the pod's service account
    std::string driverName = kDefaultDriverName;
    std::string cdiDir = "/var/run/cdi";
    std::string registryDir = "/var/lib/kubelet/plugins_registry";
    std::string pluginsDir = "/var/lib/kubelet/plugins"; // the driver's directory is <pluginsDir>/<driver>
};

// The driver name must be a DNS subdomain of at most 63 characters, lower
// case (the API's rule for ResourceSlice.spec.driver).
Result<void> checkDriverName(const std::string &name);

} // namespace kvgpu::dra
