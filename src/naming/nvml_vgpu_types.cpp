#include "naming/nvml_vgpu_types.h"

#include "base/log.h"

#include <algorithm>
#include <vector>

#include <dlfcn.h>
#include <fmt/format.h>

namespace kvgpu {

namespace {
constexpr const char *kLibrary = "libnvidia-ml.so.1";
constexpr int kSuccess = 0;
constexpr int kInsufficientSize = 7;
} // namespace

NvmlVgpuTypes::~NvmlVgpuTypes()
{
    // NVML stays initialised: nvmlShutdown is reference-counted per process
    // and the daemon ends with it; the library stays loaded for the same reason.
}

bool NvmlVgpuTypes::open()
{
    if (tried_)
        return problem_.empty();
    tried_ = true;
    library_ = ::dlopen(kLibrary, RTLD_NOW | RTLD_LOCAL);
    if (!library_) {
        problem_ = fmt::format("{} not loadable", kLibrary);
        return false;
    }
    auto symbol = [this](const char *name) { return ::dlsym(library_, name); };
    auto init = reinterpret_cast<Init>(symbol("nvmlInit_v2"));
    handleByPciBusId_ = reinterpret_cast<HandleByPciBusId>(symbol("nvmlDeviceGetHandleByPciBusId_v2"));
    supportedVgpus_ = reinterpret_cast<SupportedVgpus>(symbol("nvmlDeviceGetSupportedVgpus"));
    typeName_ = reinterpret_cast<TypeName>(symbol("nvmlVgpuTypeGetName"));
    if (!init || !handleByPciBusId_ || !supportedVgpus_ || !typeName_) {
        problem_ = fmt::format("{} lacks the vGPU type calls", kLibrary);
        return false;
    }
    if (int status = init(); status != kSuccess) {
        problem_ = fmt::format("nvmlInit_v2 failed with NVML error {}", status);
        return false;
    }
    log::info("NVML loaded for vGPU type names", {{"library", kLibrary}});
    return true;
}

std::optional<std::string> NvmlVgpuTypes::typeName(const std::string &pfAddress, std::uint32_t id)
{
    if (!open())
        return std::nullopt;
    void *device = nullptr;
    if (handleByPciBusId_(pfAddress.c_str(), &device) != kSuccess || !device)
        return std::nullopt;
    // Only a type the card supports is named: an id is card-local.
    unsigned count = 0;
    std::vector<unsigned> ids;
    int status = supportedVgpus_(device, &count, nullptr);
    if (status == kInsufficientSize && count > 0 && count < 4096) {
        ids.resize(count);
        status = supportedVgpus_(device, &count, ids.data());
    }
    if (status != kSuccess)
        return std::nullopt;
    ids.resize(std::min<size_t>(count, ids.size()));
    if (std::find(ids.begin(), ids.end(), id) == ids.end())
        return std::nullopt;
    char name[256] = {};
    unsigned size = sizeof name;
    if (typeName_(id, name, &size) != kSuccess)
        return std::nullopt;
    name[sizeof name - 1] = '\0';
    std::string out(name);
    if (out.empty())
        return std::nullopt;
    return out;
}

std::string NvmlVgpuTypes::describe() const
{
    if (!tried_)
        return "NVML on the PF";
    return problem_.empty() ? std::string("NVML on the PF") : fmt::format("NVML ({})", problem_);
}

} // namespace kvgpu
