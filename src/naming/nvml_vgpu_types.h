// NVML's list of a card's supported vGPU types, through libnvidia-ml.so.1
// opened at run time with dlopen: the daemon never links NVML, and a node (or
// a pod) without the library simply has no NVML fallback. The library is
// opened and initialised on the first question only, which comes only when
// no catalog and no learned name can name a VF's profile.
//
// Threading contract: thread-bound (the loop thread). A question costs a few
// NVML calls on that thread; answers are cached by VgpuNameBook.
#pragma once

#include "naming/vgpu_name_book.h"

#include <string>

namespace kvgpu {

class NvmlVgpuTypes final : public VgpuTypeOracle {
public:
    NvmlVgpuTypes() = default;
    ~NvmlVgpuTypes() override;
    NvmlVgpuTypes(const NvmlVgpuTypes &) = delete;
    NvmlVgpuTypes &operator=(const NvmlVgpuTypes &) = delete;

    std::optional<std::string> typeName(const std::string &pfAddress, std::uint32_t id) override;
    std::string describe() const override;

private:
    bool open();

    bool tried_ = false;
    void *library_ = nullptr;
    std::string problem_; // why NVML cannot answer; empty while it can
    // The four NVML entry points used (nvml.h signatures; nvmlDevice_t is an
    // opaque pointer, nvmlVgpuTypeId_t an unsigned int, 0 is NVML_SUCCESS).
    using Init = int (*)();
    using HandleByPciBusId = int (*)(const char *, void **);
    using SupportedVgpus = int (*)(void *, unsigned *, unsigned *);
    using TypeName = int (*)(unsigned, char *, unsigned *);
    HandleByPciBusId handleByPciBusId_ = nullptr;
    SupportedVgpus supportedVgpus_ = nullptr;
    TypeName typeName_ = nullptr;
};

} // namespace kvgpu
