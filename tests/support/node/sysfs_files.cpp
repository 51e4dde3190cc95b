#include "sysfs_files.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace kvgpu::test {

namespace fs = std::filesystem;

void writeFile(const std::string &path, std::string_view content) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out)
        throw std::runtime_error(fmt::format("cannot write {}: {}", path, std::strerror(errno)));
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    out.close();
    if (!out)
        throw std::runtime_error(fmt::format("cannot write {}", path));
}

std::string readFile(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw std::runtime_error(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
    std::ostringstream content;
    content << in.rdbuf();
    return content.str();
}

void replaceSymlink(const std::string &target, const std::string &link) {
    std::error_code ignored;
    fs::remove(link, ignored);
    fs::create_symlink(target, link);
}

std::string dotdotsToSysRoot(std::string_view devpath) {
    std::string dots;
    for (char c : devpath)
        if (c == '/')
            dots += "../";
    return dots;
}

void setUeventDriver(const std::string &ueventPath, const std::optional<std::string> &driver) {
    std::istringstream in(readFile(ueventPath));
    std::string content = driver ? "DRIVER=" + *driver + "\n" : "";
    for (std::string line; std::getline(in, line);)
        if (line.rfind("DRIVER=", 0) != 0)
            content += line + "\n";
    writeFile(ueventPath, content);
}

std::string escapeRecordValue(std::string_view value) {
    std::string escaped;
    for (char c : value) {
        if (c == '\\')
            escaped += "\\\\";
        else if (c == '\n')
            escaped += "\\n";
        else
            escaped += c;
    }
    return escaped;
}

std::string aerCounters(AerSeverity severity) {
    static constexpr const char *correctable[] = {"RxErr",   "BadTLP",      "BadDLLP",
                                                  "Rollover", "Timeout",    "NonFatalErr",
                                                  "CorrIntErr", "HeaderOF", "TOTAL_ERR_COR"};
    static constexpr const char *uncorrectable[] = {
        "Undefined", "DLP",      "SDES",         "TLP",        "FCP",
        "CmpltTO",   "CmpltAbrt", "UnxCmplt",    "RxOF",       "MalfTLP",
        "ECRC",      "UnsupReq", "ACSViol",      "UncorrIntErr", "BlockedTLP",
        "AtomicOpBlocked", "TLPBlockedErr", "PoisonTLPBlocked"};
    std::string text;
    if (severity == AerSeverity::Correctable) {
        for (const char *name : correctable)
            text += fmt::format("{} 0\n", name);
        return text;
    }
    for (const char *name : uncorrectable)
        text += fmt::format("{} 0\n", name);
    text += severity == AerSeverity::Fatal ? "TOTAL_ERR_FATAL 0\n" : "TOTAL_ERR_NONFATAL 0\n";
    return text;
}

} // namespace kvgpu::test
