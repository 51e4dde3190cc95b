// Device model names from the pci.ids database, read through libpci (the
// library lspci uses), scoped to one vendor so another vendor's entry for the
// same device id never matches.
//
// Thread safety: thread-bound. libpci's name cache is not thread-safe; the
// daemon uses its instance only on the loop thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

struct pci_access;

namespace kvgpu {

class PciNameSource {
public:
    virtual ~PciNameSource() = default;
    // The database's name for vendor:device, or nullopt when it has none.
    virtual std::optional<std::string> deviceName(std::uint16_t vendor, std::uint16_t device) = 0;
};

class PciIdsDatabase final : public PciNameSource {
public:
    // Never fails: a missing or unreadable file, or one that is not a regular
    // file (a FIFO would block libpci's fopen), is logged once with the reason
    // and every lookup then returns nullopt (devices are named by their hex id,
    // as the original did).
    explicit PciIdsDatabase(std::string path);
    ~PciIdsDatabase() override;
    PciIdsDatabase(const PciIdsDatabase &) = delete;
    PciIdsDatabase &operator=(const PciIdsDatabase &) = delete;

    std::optional<std::string> deviceName(std::uint16_t vendor, std::uint16_t device) override;
    // Why the file is not used (it is missing, not a regular file, ...); empty while it is.
    const std::string &unusableReason() const { return unusable_; }

private:
    std::string path_;
    std::string unusable_;
    pci_access *access_ = nullptr;
    std::map<std::uint32_t, std::optional<std::string>> cache_;
};

} // namespace kvgpu
