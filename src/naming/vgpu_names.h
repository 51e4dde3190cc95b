// Where the name of an SR-IOV vGPU VF's profile comes from. The VF's
// current_vgpu_type holds only a type id; names live in the catalogs
// (creatable_vgpu_types), which list only what can still be created, so a
// configured VF's own list is often empty. A type id is taken to mean one
// thing on one card, so an id is resolved, in this order, from:
//  1. the card's catalog: its PF's and all its VFs' lists, merged (the first
//     name seen for an id wins: the PF's, then the VFs' by address);
//  2. the catalogs of any other card with the same PCI device id;
//  3. names recalled from outside the node's catalogs (what this daemon
//     learned earlier, then NVML on the PF: vgpu_name_book.h), already in
//     NodeObservation::recalledVgpuNames.
// A name is never borrowed from a different GPU model.
//
// Pure functions of the observation; thread-safe.
#pragma once

#include "sysfs/observation.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kvgpu {

struct VgpuNameLookup {
    std::optional<std::string> name;
    std::string source;             // where the name came from
    std::vector<std::string> tried; // every source tried, in order, when there is no name
};

// The card a function belongs to: a VF's PF, else the function itself.
std::string cardOf(const PciFunction &function);

// Steps 1 and 2 only: what the node's catalogs say.
VgpuNameLookup resolveFromCatalogs(const NodeObservation &node, const PciFunction &vf, std::uint32_t id);
// All three steps.
VgpuNameLookup resolveVgpuTypeName(const NodeObservation &node, const PciFunction &vf, std::uint32_t id);

// Every (id, name) the card's catalogs show, merged as in step 1.
std::map<std::uint32_t, std::string> cardCatalog(const NodeObservation &node, const std::string &card);

} // namespace kvgpu
