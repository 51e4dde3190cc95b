// A PciNameSource backed by a map, for tests that must not depend on the
// installed pci.ids.
#pragma once

#include "naming/pci_names.h"

#include <map>

namespace kvgpu::test {

class FakeNames final : public PciNameSource {
public:
    FakeNames() = default;
    FakeNames(std::initializer_list<std::pair<const std::uint32_t, std::string>> names) : names_(names) {}
    std::optional<std::string> deviceName(std::uint16_t vendor, std::uint16_t device) override
    {
        ++lookups;
        auto it = names_.find((static_cast<std::uint32_t>(vendor) << 16) | device);
        if (it == names_.end())
            return std::nullopt;
        return it->second;
    }
    int lookups = 0;

private:
    std::map<std::uint32_t, std::string> names_;
};

inline FakeNames nvidiaNames()
{
    return FakeNames{{0x10de1eb8, "TU104GL [Tesla T4]"},
                     {0x10de20b1, "GA100 [A100 PCIe 40GB]"},
                     {0x10de20f1, "GA100 [A100 PCIe 40GB]"},
                     {0x10de10f8, "TU104 HD Audio Controller"},
                     {0x10de24fa, "GA104 [RTX A4500 Embedded GPU ]"},
                     {0x10de22a3, "GH100 [H100 NVSwitch]"}};
}

} // namespace kvgpu::test
