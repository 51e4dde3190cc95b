#include "naming/vgpu_name_book.h"

#include "base/log.h"
#include "base/strings.h"
#include "model/device_address.h"
#include "naming/vgpu_names.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>

namespace kvgpu {

std::string vgpuNameFileIn(const std::string &stateDir)
{
    return stateDir.empty() ? std::string() : stateDir + "/" + kVgpuNameFile;
}

VgpuNameBook::VgpuNameBook(std::string statePath, std::unique_ptr<VgpuTypeOracle> oracle)
    : statePath_(std::move(statePath)), oracle_(std::move(oracle))
{
    if (!statePath_.empty())
        load();
}

// One name a line: "<card> <device id> <type id> <name>", e.g.
// "0000:41:00.0 2335 1414 NVIDIA H200X-1-18C".
void VgpuNameBook::load()
{
    std::ifstream in(statePath_);
    if (!in)
        return; // nothing learned yet
    std::string line;
    int number = 0;
    while (std::getline(in, line)) {
        ++number;
        std::istringstream fields(line);
        std::string card, device, id;
        fields >> card >> device >> id;
        std::string name;
        std::getline(fields, name);
        std::optional<std::uint64_t> deviceId = parseHex(device);
        Result<std::uint32_t> typeId = parseCurrentVgpuType(id);
        std::string_view trimmed = trim(name);
        if (!isPciAddress(card) || !deviceId || *deviceId > 0xffff || !typeId || *typeId == 0 || trimmed.empty()) {
            log::warn("skipping a malformed line of the vGPU name file",
                      {{"file", statePath_}, {"line", std::to_string(number)}});
            continue;
        }
        learned_.emplace(Key{toLowerAscii(card), static_cast<std::uint16_t>(*deviceId), *typeId}, std::string(trimmed));
    }
}

void VgpuNameBook::save() const
{
    if (statePath_.empty())
        return;
    std::string text;
    for (const auto &[key, name] : learned_)
        text += fmt::format("{} {:04x} {} {}\n", key.card, key.deviceId, key.id, name);
    // Written whole and renamed, so a crash never leaves half a file.
    const std::string temporary = statePath_ + ".tmp";
    std::FILE *file = std::fopen(temporary.c_str(), "w");
    bool ok = file && std::fwrite(text.data(), 1, text.size(), file) == text.size();
    if (file)
        ok = std::fclose(file) == 0 && ok;
    if (ok && std::rename(temporary.c_str(), statePath_.c_str()) == 0)
        return;
    log::warn("cannot save learned vGPU names; a restart on a fully configured node may not name its VFs",
              {{"file", statePath_}, {"error", std::strerror(errno)}});
}

void VgpuNameBook::learnFrom(const NodeObservation &node, const std::string &card)
{
    auto pf = node.functions.find(card);
    if (pf == node.functions.end())
        return;
    bool added = false;
    for (const auto &[id, name] : cardCatalog(node, card)) {
        auto [entry, inserted] = learned_.emplace(Key{card, pf->second.device, id}, name);
        if (!inserted && entry->second != name) {
            entry->second = name; // the driver's word now beats the memory
            inserted = true;
        }
        added = added || inserted;
    }
    if (added)
        save();
}

std::optional<RecalledVgpuName> VgpuNameBook::recall(const std::string &card, std::uint16_t deviceId,
                                                     std::uint32_t id)
{
    if (auto found = learned_.find(Key{card, deviceId, id}); found != learned_.end())
        return RecalledVgpuName{found->second, "names learned earlier"};
    for (const auto &[key, name] : learned_)
        if (key.deviceId == deviceId && key.id == id)
            return RecalledVgpuName{name, fmt::format("names learned earlier on {} (same model)", key.card)};
    if (!oracle_)
        return std::nullopt;
    auto asked = asked_.find({card, id});
    if (asked == asked_.end())
        asked = asked_.emplace(std::pair{card, id}, oracle_->typeName(card, id)).first;
    if (!asked->second)
        return std::nullopt;
    return RecalledVgpuName{*asked->second, "NVML"};
}

std::vector<std::string> VgpuNameBook::fallbacks() const
{
    std::vector<std::string> out{statePath_.empty() ? std::string("names learned earlier (memory only: no --state-dir)")
                                                    : fmt::format("names learned earlier ({})", statePath_)};
    out.push_back(oracle_ ? oracle_->describe() : std::string("NVML (not used)"));
    return out;
}

void VgpuNameBook::recallInto(NodeObservation &node, const std::string &card)
{
    std::set<std::string> cards;
    for (const auto &[address, f] : node.functions)
        if (!f.physfn.empty() && (card.empty() || f.physfn == card))
            cards.insert(f.physfn);
    for (const std::string &c : cards)
        learnFrom(node, c);
    for (auto it = node.recalledVgpuNames.begin(); it != node.recalledVgpuNames.end();)
        it = card.empty() || it->first.first == card ? node.recalledVgpuNames.erase(it) : std::next(it);
    for (const auto &[address, f] : node.functions) {
        if (f.physfn.empty() || !cards.contains(f.physfn) || !f.currentVgpuType || *f.currentVgpuType == 0)
            continue;
        if (resolveFromCatalogs(node, f, *f.currentVgpuType).name)
            continue;
        auto pf = node.functions.find(f.physfn);
        const std::uint16_t model = pf != node.functions.end() ? pf->second.device : f.device;
        if (std::optional<RecalledVgpuName> name = recall(f.physfn, model, *f.currentVgpuType))
            node.recalledVgpuNames[{f.physfn, *f.currentVgpuType}] = *name;
    }
    node.vgpuNameFallbacks = fallbacks();
}

} // namespace kvgpu
