#include "dra/claim.h"

#include "base/strings.h"

#include <nlohmann/json.hpp>

#include <fmt/format.h>

namespace kvgpu::dra {

namespace {

using nlohmann::json;

// "an object", "a string", ...: a value's JSON type for a message.
std::string aType(const json &value)
{
    std::string name = value.type_name();
    return (name == "array" || name == "object" ? "an " : "a ") + name;
}

// The member `key` of `object` if `object` is an object holding it; null otherwise.
const json *member(const json &object, const char *key)
{
    if (!object.is_object())
        return nullptr;
    auto it = object.find(key);
    return it == object.end() ? nullptr : &*it;
}

// A non-empty string member, or an error "<where>.<key> is missing / is not a string / is empty".
Result<std::string> requiredString(const json &object, const char *key, const std::string &where)
{
    const json *value = member(object, key);
    if (value == nullptr || value->is_null())
        return Error{fmt::format("{}.{} is missing", where, key)};
    if (!value->is_string())
        return Error{fmt::format("{}.{} is {}, not a string", where, key, aType(*value))};
    const std::string &text = value->get_ref<const std::string &>();
    if (text.empty())
        return Error{fmt::format("{}.{} is empty", where, key)};
    return text;
}

Result<AllocationResult> parseResult(const json &entry, const std::string &where)
{
    if (!entry.is_object())
        return Error{fmt::format("{} is {}, not an object", where, aType(entry))};
    AllocationResult out;
    for (auto [key, field] : {std::pair{"request", &out.request}, std::pair{"pool", &out.pool}, std::pair{"device", &out.device}}) {
        Result<std::string> value = requiredString(entry, key, where);
        if (!value)
            return Error{value.error()};
        *field = std::move(*value);
    }
    out.baseRequest = std::string(baseRequestOf(out.request));
    if (out.baseRequest.empty())
        return Error{fmt::format("{}.request {} has no request name before '/'", where, quoteIfNeeded(out.request))};
    if (const json *admin = member(entry, "adminAccess"); admin != nullptr && !admin->is_null()) {
        if (!admin->is_boolean())
            return Error{fmt::format("{}.adminAccess is {}, not a boolean", where, aType(*admin))};
        out.adminAccess = admin->get<bool>();
    }
    return out;
}

Result<AllocatedClaim> parseClaimObject(const json &claim, std::string_view driver)
{
    if (!claim.is_object())
        return Error{fmt::format("not a ResourceClaim: the body is {} in JSON, not an object", aType(claim))};
    if (const json *kind = member(claim, "kind"); kind == nullptr || !kind->is_string() ||
                                                   kind->get_ref<const std::string &>() != "ResourceClaim") {
        std::string got = kind != nullptr && kind->is_string() ? quoteIfNeeded(kind->get_ref<const std::string &>())
                                                               : std::string("missing");
        return Error{fmt::format("not a ResourceClaim: kind is {}", got)};
    }
    const json *metadata = member(claim, "metadata");
    if (metadata == nullptr || !metadata->is_object())
        return Error{"ResourceClaim has no metadata object"};

    AllocatedClaim out;
    for (auto [key, field] : {std::pair{"namespace", &out.ns}, std::pair{"name", &out.name}, std::pair{"uid", &out.uid}}) {
        Result<std::string> value = requiredString(*metadata, key, "ResourceClaim metadata");
        if (!value)
            return Error{value.error()};
        *field = std::move(*value);
    }
    const std::string who = fmt::format("ResourceClaim {}/{}", quoteIfNeeded(out.ns), quoteIfNeeded(out.name));

    if (const json *generation = member(*metadata, "generation"); generation != nullptr && !generation->is_null()) {
        if (!generation->is_number_integer())
            return Error{fmt::format("{}: metadata.generation is {}, not an integer", who, aType(*generation))};
        // An unsigned beyond int64 is no generation the API server writes.
        if (generation->is_number_unsigned() && generation->get<std::uint64_t>() > INT64_MAX)
            return Error{fmt::format("{}: metadata.generation is out of range", who)};
        out.generation = generation->get<std::int64_t>();
    }
    if (const json *annotations = member(*metadata, "annotations"); annotations != nullptr && !annotations->is_null()) {
        if (!annotations->is_object())
            return Error{fmt::format("{}: metadata.annotations is {}, not an object", who, aType(*annotations))};
        if (const json *podClaim = member(*annotations, kPodClaimNameAnnotation); podClaim != nullptr) {
            if (!podClaim->is_string() || podClaim->get_ref<const std::string &>().empty())
                return Error{fmt::format("{}: annotation {} is not a non-empty string", who, kPodClaimNameAnnotation)};
            out.podClaimName = podClaim->get<std::string>();
        }
    }

    const json *status = member(claim, "status");
    const json *allocation = status != nullptr ? member(*status, "allocation") : nullptr;
    if (allocation == nullptr || allocation->is_null())
        return Error{fmt::format("{} is not allocated (no status.allocation)", who)};
    if (!allocation->is_object())
        return Error{fmt::format("{}: status.allocation is {}, not an object", who, aType(*allocation))};
    const json *devices = member(*allocation, "devices");
    if (devices == nullptr || devices->is_null())
        return out; // allocated, but no devices at all
    if (!devices->is_object())
        return Error{fmt::format("{}: status.allocation.devices is {}, not an object", who, aType(*devices))};
    const json *results = member(*devices, "results");
    if (results == nullptr || results->is_null())
        return out;
    if (!results->is_array())
        return Error{fmt::format("{}: status.allocation.devices.results is {}, not an array", who,
                                 aType(*results))};

    for (std::size_t i = 0; i < results->size(); ++i) {
        const json &entry = (*results)[i];
        const json *resultDriver = member(entry, "driver");
        if (resultDriver != nullptr && resultDriver->is_string() &&
            resultDriver->get_ref<const std::string &>() != driver)
            continue; // another driver's device: not ours to prepare
        const std::string where = fmt::format("{}: status.allocation.devices.results[{}]", who, i);
        if (resultDriver == nullptr || !resultDriver->is_string())
            return Error{fmt::format("{} has no driver", where)};
        Result<AllocationResult> result = parseResult(entry, where);
        if (!result)
            return Error{result.error()};
        out.results.push_back(std::move(*result));
    }
    return out;
}

} // namespace

std::string_view baseRequestOf(std::string_view request) { return request.substr(0, request.find('/')); }

Result<AllocatedClaim> parseClaim(std::string_view text, std::string_view driver)
{
    json claim = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
    if (claim.is_discarded())
        return Error{"not a ResourceClaim: the body is not valid JSON"};
    return parseClaimObject(claim, driver);
}

} // namespace kvgpu::dra
