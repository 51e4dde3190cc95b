// Resource names as the kubelet and KubeVirt see them: which names the
// kubelet accepts, and what a name becomes on the node (the socket file that
// serves it, the variable KubeVirt reads its devices from). The plugin's own
// default names (device/resource_naming.h) and the configured ones
// (config/config_parser.h) are both held to these rules.
//
// Pure functions; thread-safe.
#pragma once

#include "base/result.h"
#include "model/device_kind.h"

#include <cstddef>
#include <string>
#include <string_view>

namespace kvgpu {

// The domain of the names the plugin makes itself.
inline constexpr std::string_view kResourceDomain = "nvidia.com";

// The name part of an extended resource (after the '/'), as the kubelet
// accepts it: at most 63 characters of ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9].
inline constexpr std::size_t kMaxResourceNamePart = 63;
// A character allowed inside a name part.
bool isResourceNameChar(char c);
// A character allowed at either end of a name part (a letter or a digit).
bool isResourceNameEnd(char c);
bool isValidResourceNamePart(std::string_view part);

// "nvidia.com/" + part.
std::string resourceName(std::string_view part);

// A full resource name, "<domain>/<name>", split.
struct ResourceName {
    std::string domain;
    std::string part;
};

// `name` when it may name a resource: the domain a DNS subdomain outside
// kubernetes.io and k8s.io (whose extended resources the kubelet refuses),
// the part as the kubelet accepts it. The error says why not, quoting the name.
Result<ResourceName> parseResourceName(std::string_view name);

// The KubeVirt environment variable for a resource: PCI_RESOURCE_ or
// MDEV_PCI_RESOURCE_ + the name upper-cased with '/' and '.' replaced by '_'.
std::string envKey(DeviceKind kind, std::string_view resource);

// The socket file name (relative to the plugin directory) serving a resource.
std::string socketFileName(std::string_view resource);

} // namespace kvgpu
