#include "model/device_kind.h"

namespace kvgpu {

namespace {

struct KindSpelling {
    DeviceKind kind;
    const char *name;
    const char *word;
};

// One row per kind.
constexpr KindSpelling kKinds[] = {
    {DeviceKind::Passthrough, "passthrough", "passthrough"},
    {DeviceKind::Vgpu, "vGPU", "vgpu"},
    {DeviceKind::SriovVgpu, "SR-IOV vGPU", "sriov-vgpu"},
};

const KindSpelling &spellingOf(DeviceKind kind)
{
    for (const KindSpelling &k : kKinds)
        if (k.kind == kind)
            return k;
    return kKinds[0];
}

} // namespace

const char *deviceKindName(DeviceKind kind) { return spellingOf(kind).name; }

const char *deviceKindWord(DeviceKind kind) { return spellingOf(kind).word; }

std::optional<DeviceKind> deviceKindOfWord(std::string_view word)
{
    for (const KindSpelling &k : kKinds)
        if (word == k.word)
            return k.kind;
    return std::nullopt;
}

std::string deviceKindWords()
{
    std::string out;
    for (const KindSpelling &k : kKinds)
        out += (out.empty() ? "" : ", ") + std::string(k.word);
    return out;
}

} // namespace kvgpu
