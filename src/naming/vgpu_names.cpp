#include "naming/vgpu_names.h"

#include <fmt/format.h>

namespace kvgpu {

std::string cardOf(const PciFunction &function)
{
    return function.physfn.empty() ? function.address : function.physfn;
}

namespace {

// The PCI device id that identifies the card's model: the PF's when it is
// observed, else the function's own (a VF carries its PF's model).
std::uint16_t modelOf(const NodeObservation &node, const PciFunction &function)
{
    auto pf = node.functions.find(cardOf(function));
    return pf != node.functions.end() ? pf->second.device : function.device;
}

} // namespace

std::map<std::uint32_t, std::string> cardCatalog(const NodeObservation &node, const std::string &card)
{
    std::map<std::uint32_t, std::string> catalog;
    auto take = [&catalog](const PciFunction &f) {
        for (const VgpuType &type : f.creatableVgpuTypes)
            catalog.emplace(type.id, type.name); // the first seen wins
    };
    if (auto pf = node.functions.find(card); pf != node.functions.end())
        take(pf->second);
    for (const auto &[address, f] : node.functions) // sorted by address
        if (f.physfn == card)
            take(f);
    return catalog;
}

VgpuNameLookup resolveFromCatalogs(const NodeObservation &node, const PciFunction &vf, std::uint32_t id)
{
    VgpuNameLookup out;
    const std::string card = cardOf(vf);
    std::map<std::uint32_t, std::string> own = cardCatalog(node, card);
    if (auto found = own.find(id); found != own.end()) {
        out.name = found->second;
        out.source = fmt::format("catalog of card {}", card);
        return out;
    }
    out.tried.push_back(fmt::format("catalog of card {}", card));

    const std::uint16_t model = modelOf(node, vf);
    for (const auto &[address, f] : node.functions) {
        if (f.vendor != kNvidiaVendorId || !f.physfn.empty() || f.sriovTotalVfs < 0 || address == card ||
            f.device != model)
            continue;
        std::map<std::uint32_t, std::string> other = cardCatalog(node, address);
        if (auto found = other.find(id); found != other.end()) {
            out.name = found->second;
            out.source = fmt::format("catalog of card {} (same model 10de:{:04x})", address, model);
            out.tried.clear();
            return out;
        }
    }
    out.tried.push_back(fmt::format("catalogs of other 10de:{:04x} cards", model));
    return out;
}

VgpuNameLookup resolveVgpuTypeName(const NodeObservation &node, const PciFunction &vf, std::uint32_t id)
{
    VgpuNameLookup out = resolveFromCatalogs(node, vf, id);
    if (out.name)
        return out;
    if (auto recalled = node.recalledVgpuNames.find({cardOf(vf), id}); recalled != node.recalledVgpuNames.end()) {
        out.name = recalled->second.name;
        out.source = recalled->second.source;
        out.tried.clear();
        return out;
    }
    out.tried.insert(out.tried.end(), node.vgpuNameFallbacks.begin(), node.vgpuNameFallbacks.end());
    return out;
}

} // namespace kvgpu
