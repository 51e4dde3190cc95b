#include "dra/checkpoint.h"

#include "base/regular_file.h"
#include "dra/atomic_file.h"
#include "dra/json_text.h"

#include <cerrno>
#include <cstdint>

#include <sys/stat.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace kvgpu::dra {

namespace {

using nlohmann::json;

// Far above any real checkpoint (a node prepares tens of claims); bounds the read.
constexpr std::size_t kMaxCheckpointBytes = 64 * 1024 * 1024;

std::string checksumOf(const json &claims)
{
    std::uint64_t hash = 14695981039346656037ull;
    for (char c : dumpJson(claims)) {
        hash ^= static_cast<unsigned char>(c);
        hash *= 1099511628211ull;
    }
    return fmt::format("{:016x}", hash);
}

json stringsToJson(const std::vector<std::string> &strings) { return json(strings); }

json claimToJson(const PreparedClaim &claim)
{
    json devices = json::array();
    for (const CheckpointDevice &d : claim.devices)
        devices.push_back(
            {{"request", d.request}, {"pool", d.pool}, {"device", d.device}, {"cdiIds", stringsToJson(d.cdiIds)}});
    return {{"uid", claim.uid},
            {"namespace", claim.ns},
            {"name", claim.name},
            {"devices", devices},
            {"files", stringsToJson(claim.files)}};
}

// Reads the fields of the checkpoint's own shape, checking every type: a
// wrong one is corruption, reported with where it is.
class Reader {
public:
    explicit Reader(std::string &problem) : problem_(problem) {}

    bool string(const json &object, const char *key, std::string &out, const std::string &where)
    {
        auto it = object.find(key);
        if (it == object.end() || !it->is_string())
            return fail(fmt::format("{}.{} is not a string", where, key));
        out = it->get<std::string>();
        return true;
    }
    bool strings(const json &object, const char *key, std::vector<std::string> &out, const std::string &where)
    {
        auto it = object.find(key);
        if (it == object.end() || !it->is_array())
            return fail(fmt::format("{}.{} is not an array", where, key));
        for (const json &item : *it) {
            if (!item.is_string())
                return fail(fmt::format("{}.{} holds {}, not a string", where, key, dumpJson(item)));
            out.push_back(item.get<std::string>());
        }
        return true;
    }
    bool fail(std::string problem)
    {
        problem_ = std::move(problem);
        return false;
    }

private:
    std::string &problem_;
};

bool readClaim(Reader &reader, const std::string &uid, const json &object, PreparedClaim &claim)
{
    const std::string where = "claims[" + uid + "]";
    if (!object.is_object())
        return reader.fail(where + " is not an object");
    if (!reader.string(object, "uid", claim.uid, where) || !reader.string(object, "namespace", claim.ns, where) ||
        !reader.string(object, "name", claim.name, where) || !reader.strings(object, "files", claim.files, where))
        return false;
    if (claim.uid != uid)
        return reader.fail(fmt::format("{} holds the claim {}", where, claim.uid));
    auto devices = object.find("devices");
    if (devices == object.end() || !devices->is_array())
        return reader.fail(where + ".devices is not an array");
    for (std::size_t i = 0; i < devices->size(); ++i) {
        const json &d = (*devices)[i];
        const std::string at = fmt::format("{}.devices[{}]", where, i);
        if (!d.is_object())
            return reader.fail(at + " is not an object");
        CheckpointDevice device;
        if (!reader.string(d, "request", device.request, at) || !reader.string(d, "pool", device.pool, at) ||
            !reader.string(d, "device", device.device, at) || !reader.strings(d, "cdiIds", device.cdiIds, at))
            return false;
        claim.devices.push_back(std::move(device));
    }
    return true;
}

} // namespace

std::string checkpointText(const Checkpoint &checkpoint)
{
    json claims = json::object();
    for (const auto &[uid, claim] : checkpoint.claims)
        claims[uid] = claimToJson(claim);
    json file = {{"version", kCheckpointVersion}, {"checksum", checksumOf(claims)}, {"claims", claims}};
    return dumpJson(file, 1) + "\n";
}

Result<Checkpoint> parseCheckpoint(std::string_view text, const std::string &what)
{
    auto corrupt = [&](const std::string &why) { return Error{fmt::format("{} is corrupt: {}", what, why)}; };
    json file = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
    if (file.is_discarded())
        return corrupt("not valid JSON");
    if (!file.is_object())
        return corrupt("not a JSON object");
    auto version = file.find("version");
    if (version == file.end() || !version->is_number_integer())
        return corrupt("no version");
    if (*version != kCheckpointVersion)
        return Error{fmt::format("{} has version {}; this plugin reads version {} (was it written by a newer one?)",
                                 what, dumpJson(*version), kCheckpointVersion)};
    auto claims = file.find("claims");
    if (claims == file.end() || !claims->is_object())
        return corrupt("no claims object");
    auto checksum = file.find("checksum");
    if (checksum == file.end() || !checksum->is_string())
        return corrupt("no checksum");
    if (checksum->get<std::string>() != checksumOf(*claims))
        return corrupt("the checksum does not match its content");

    Checkpoint out;
    std::string problem;
    Reader reader(problem);
    for (const auto &[uid, object] : claims->items()) {
        PreparedClaim claim;
        if (!readClaim(reader, uid, object, claim))
            return corrupt(problem);
        out.claims.emplace(uid, std::move(claim));
    }
    return out;
}

Result<Checkpoint> loadCheckpoint(const std::string &path)
{
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0 && errno == ENOENT)
        return Checkpoint{};
    Result<std::string> text = readRegularFile(path, kMaxCheckpointBytes, LastLink::Follow);
    if (!text)
        return Error{text.error()};
    return parseCheckpoint(*text, "checkpoint " + path);
}

Result<void> saveCheckpoint(const std::string &path, const Checkpoint &checkpoint)
{
    auto slash = path.rfind('/');
    std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
    std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
    return writeFileAtomically(dir, name, checkpointText(checkpoint));
}

} // namespace kvgpu::dra
