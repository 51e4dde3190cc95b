// The names of SR-IOV vGPU types that the node's catalogs no longer show: a
// fully configured card lists nothing creatable, so after a restart its
// profiles' names are nowhere in sysfs. The book remembers every name the
// catalogs showed (in memory, and in a small file when a state directory is
// given, so a restart still knows them) and, as a last resort, asks NVML on
// the card's PF through a VgpuTypeOracle.
//
// Keys are the card (PF address) and its PCI device id: a name learned on one
// card serves that card first, then cards of the same model, never another
// model.
//
// Threading contract: thread-bound (the registry's loop thread); the file is
// written on that thread, only when a new name was learned.
#pragma once

#include "sysfs/observation.h"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

namespace kvgpu {

// The book's file under --state-dir.
inline constexpr const char *kVgpuNameFile = "vgpu-type-names";
// That file under `stateDir`; "" (memory only) when there is no state directory.
std::string vgpuNameFileIn(const std::string &stateDir);

// NVML's view of a card's supported vGPU types (which do not shrink with use).
class VgpuTypeOracle {
public:
    virtual ~VgpuTypeOracle() = default;
    // The name of type `id` on the card at `pfAddress`; nullopt when unknown.
    virtual std::optional<std::string> typeName(const std::string &pfAddress, std::uint32_t id) = 0;
    // For "name unknown" messages: "NVML" or why it is not available.
    virtual std::string describe() const = 0;
};

class VgpuNameBook {
public:
    // `statePath` empty: memory only. An existing file is loaded; a missing one
    // is fine, malformed lines are skipped with a warning. `oracle` may be null.
    explicit VgpuNameBook(std::string statePath = {}, std::unique_ptr<VgpuTypeOracle> oracle = nullptr);

    // Remembers every name the card's catalogs show now (persisting new ones).
    void learnFrom(const NodeObservation &node, const std::string &card);
    // Type `id` of `card` (model `deviceId`): learned on that card, then on a
    // card of the same model, then NVML (each answer, even "none", asked once).
    std::optional<RecalledVgpuName> recall(const std::string &card, std::uint16_t deviceId, std::uint32_t id);
    // What recall() tries, for "name unknown" messages.
    std::vector<std::string> fallbacks() const;

    // For every VF of `card` (every card when empty) whose type the catalogs
    // cannot name: the book's answer in node.recalledVgpuNames; and
    // node.vgpuNameFallbacks. Learns from those catalogs first.
    void recallInto(NodeObservation &node, const std::string &card = {});

private:
    struct Key {
        std::string card;
        std::uint16_t deviceId;
        std::uint32_t id;
        bool operator<(const Key &o) const { return std::tie(card, deviceId, id) < std::tie(o.card, o.deviceId, o.id); }
    };
    void load();
    void save() const;

    std::string statePath_;
    std::unique_ptr<VgpuTypeOracle> oracle_;
    std::map<Key, std::string> learned_;
    std::map<std::pair<std::string, std::uint32_t>, std::optional<std::string>> asked_; // NVML answers
};

} // namespace kvgpu
