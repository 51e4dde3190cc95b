// Grace Extended GPU Memory (EGM): a socket's memory carve-out that a VM may
// use only together with every GPU of that socket. The kernel shows each
// region as /sys/class/egm/egmN with its device node /dev/egmN, and the GPUs
// that share it either in a gpu_devices file (one PCI address per line, or
// space-separated) or, on newer drivers, as one link per GPU named by its
// address. Both are read, and their union is the membership.
//
// The rule (the original plugin's, v1.6.0): a container request gets
// /dev/egmN only when it holds every GPU of region N, so that one socket's
// memory is never handed to two VMs.
//
// Thread safety: the parser and the rule are pure; readEgmRegions does its own
// I/O on the trees it is given (reentrant).
#pragma once

#include "sysfs/node_reader.h"
#include "sysfs/sysfs.h"

#include <string>
#include <string_view>
#include <vector>

namespace kvgpu {

struct EgmMembership {
    std::vector<std::string> gpus;     // PCI addresses, lower-cased, sorted, unique
    std::vector<std::string> rejected; // tokens that are not PCI addresses
};

// The contents of gpu_devices: whitespace-separated PCI addresses.
EgmMembership parseEgmGpuDevices(std::string_view text);

struct EgmRegion {
    std::string name;              // "egm4"
    std::vector<std::string> gpus; // lower-cased, sorted, unique
    bool hasNode = false;          // <dev-root>/egm4 exists
    std::string problem;           // what could not be read, for the log; may be set with gpus
};

// Every region under <sysfs>/class/egm, sorted by name; none when the class
// does not exist (a node without Grace).
std::vector<EgmRegion> readEgmRegions(const SysfsTree &sysfs, const DevTree &dev);

// The regions (by name, in their order) whose every GPU is among `requested`
// (compared case-insensitively) and whose device node exists. A region
// without GPUs never matches.
std::vector<std::string> egmRegionsHeldBy(const std::vector<EgmRegion> &regions,
                                          const std::vector<std::string> &requested);

} // namespace kvgpu
