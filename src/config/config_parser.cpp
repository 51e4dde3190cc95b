#include "config/config_parser.h"

#include "base/strings.h"
#include "model/device_address.h"
#include "model/device_kind.h"
#include "model/resource_name.h"

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

namespace kvgpu {

std::string ResourceRule::describe() const
{
    return position.line > 0 ? fmt::format("{} (line {})", path, position.line) : path;
}

namespace {

// The one way a problem leaves the walk below; caught in parseResourceConfig.
struct Refusal {
    ConfigError error;
};

SourcePosition positionOf(const YAML::Mark &mark)
{
    if (mark.is_null() || mark.line < 0)
        return {};
    return {mark.line + 1, mark.column + 1};
}

[[noreturn]] void refuse(SourcePosition at, const std::string &message)
{
    std::string where = at.line > 0 ? fmt::format("line {}, column {}: ", at.line, at.column) : std::string();
    throw Refusal{ConfigError{where + message, at}};
}

[[noreturn]] void refuse(const YAML::Node &node, const std::string &message)
{
    refuse(positionOf(node.Mark()), message);
}

const char *typeName(const YAML::Node &node)
{
    switch (node.Type()) {
    case YAML::NodeType::Scalar: return "a scalar";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    case YAML::NodeType::Null: return "empty";
    case YAML::NodeType::Undefined: return "undefined";
    }
    return "unknown";
}

// The keys of a mapping, each checked against the known ones, with duplicates
// refused (yaml-cpp keeps the first silently).
std::map<std::string, YAML::Node> keysOf(const YAML::Node &node, const std::string &what,
                                         const std::vector<std::string> &known)
{
    if (!node.IsMap())
        refuse(node, fmt::format("{} must be a mapping, not {}", what, typeName(node)));
    std::map<std::string, YAML::Node> out;
    for (const auto &entry : node) {
        const YAML::Node &key = entry.first;
        if (!key.IsScalar())
            refuse(key, fmt::format("a key in {} must be a plain word, not {}", what, typeName(key)));
        const std::string &name = key.Scalar();
        if (std::find(known.begin(), known.end(), name) == known.end())
            refuse(key, fmt::format("unknown key \"{}\" in {} (known: {})", name, what, join(known, ", ")));
        if (!out.emplace(name, entry.second).second)
            refuse(key, fmt::format("key \"{}\" appears twice in {}", name, what));
    }
    return out;
}

std::string scalarOf(const YAML::Node &node, const std::string &what)
{
    if (!node.IsScalar())
        refuse(node, fmt::format("{} must be a single value, not {}", what, typeName(node)));
    return node.Scalar();
}

bool boolOf(const YAML::Node &node, const std::string &what)
{
    std::string value = scalarOf(node, what);
    if (value == "true")
        return true;
    if (value == "false")
        return false;
    refuse(node, fmt::format("{} must be true or false, not \"{}\"", what, value));
}

std::vector<YAML::Node> listOf(const YAML::Node &node, const std::string &what)
{
    if (!node.IsSequence())
        refuse(node, fmt::format("{} must be a list, not {}", what, typeName(node)));
    if (node.size() == 0)
        refuse(node, fmt::format("{} is an empty list, which matches nothing; leave the key out to match "
                                 "every device", what));
    std::vector<YAML::Node> out;
    for (const auto &item : node)
        out.push_back(item);
    return out;
}

PciDeviceId deviceIdOf(const YAML::Node &node)
{
    std::string text = toLowerAscii(trim(scalarOf(node, "a deviceIds entry")));
    std::vector<std::string> parts = split(text, ':');
    auto hex4 = [](const std::string &s) -> std::optional<std::uint16_t> {
        if (s.size() != 4 || s.find_first_not_of("0123456789abcdef") != std::string::npos)
            return std::nullopt;
        return static_cast<std::uint16_t>(*parseHex(s));
    };
    if (parts.size() == 2)
        if (auto vendor = hex4(parts[0]), device = hex4(parts[1]); vendor && device)
            return {*vendor, *device};
    refuse(node, fmt::format("deviceIds entry \"{}\" is not a vendor:device id such as \"10de:20b1\"", text));
}

std::string addressOf(const YAML::Node &node)
{
    std::string text = toLowerAscii(trim(scalarOf(node, "an addresses entry")));
    if (!isPciAddress(text) && !isUuid(text))
        refuse(node, fmt::format("addresses entry \"{}\" is neither a PCI address with its domain (\"0000:3b:00.0\") "
                                 "nor a vGPU UUID", text));
    return text;
}

int numaNodeOf(const YAML::Node &node)
{
    std::string text(trim(scalarOf(node, "a numaNodes entry")));
    std::optional<std::int64_t> value = parseDecimal(text);
    if (!value || *value < -1 || *value > 4095)
        refuse(node, fmt::format("numaNodes entry \"{}\" is not a NUMA node number (0 and up; -1 for devices "
                                 "without one)", text));
    return static_cast<int>(*value);
}

DeviceMatch matchOf(const YAML::Node &node)
{
    DeviceMatch match;
    auto keys = keysOf(node, "match", {"kind", "deviceIds", "model", "addresses", "numaNodes"});
    if (auto it = keys.find("kind"); it != keys.end()) {
        std::string word = scalarOf(it->second, "kind");
        match.kind = deviceKindOfWord(word);
        if (!match.kind)
            refuse(it->second, fmt::format("unknown kind \"{}\" (known: {})", word, deviceKindWords()));
    }
    if (auto it = keys.find("deviceIds"); it != keys.end())
        for (const YAML::Node &item : listOf(it->second, "deviceIds"))
            match.deviceIds.push_back(deviceIdOf(item));
    if (auto it = keys.find("model"); it != keys.end()) {
        Result<Glob> glob = Glob::compile(scalarOf(it->second, "model"), Glob::Sets::Literal);
        if (!glob)
            refuse(it->second, "model: " + glob.error());
        match.model = *glob;
    }
    if (auto it = keys.find("addresses"); it != keys.end())
        for (const YAML::Node &item : listOf(it->second, "addresses"))
            match.addresses.push_back(addressOf(item));
    if (auto it = keys.find("numaNodes"); it != keys.end())
        for (const YAML::Node &item : listOf(it->second, "numaNodes"))
            match.numaNodes.push_back(numaNodeOf(item));
    return match;
}

std::optional<DeviceApi> apiOf(const YAML::Node &node)
{
    if (node.IsNull())
        return std::nullopt;
    std::string word = scalarOf(node, "api");
    std::optional<DeviceApi> api = deviceApiOfWord(word);
    if (!api)
        refuse(node, fmt::format("unknown api \"{}\" (known: device-plugin, dra)", word));
    return api;
}

ResourceRule ruleOf(const YAML::Node &node, const std::string &path)
{
    ResourceRule rule;
    rule.path = path;
    rule.position = positionOf(node.Mark());
    auto keys = keysOf(node, "a rule (" + path + ")", {"name", "exclude", "match", "api"});
    if (auto it = keys.find("exclude"); it != keys.end())
        rule.exclude = boolOf(it->second, "exclude");
    if (auto it = keys.find("name"); it != keys.end()) {
        if (rule.exclude)
            refuse(it->second, fmt::format("{} has both a name and exclude: true; a rule either names devices or "
                                           "excludes them", path));
        rule.name = std::string(trim(scalarOf(it->second, "name")));
        if (Result<ResourceName> valid = parseResourceName(rule.name); !valid)
            refuse(it->second, valid.error());
    } else if (!rule.exclude) {
        refuse(node, fmt::format("{} needs a name (the resource its devices get) or exclude: true", path));
    }
    if (auto it = keys.find("match"); it != keys.end() && !it->second.IsNull())
        rule.match = matchOf(it->second);
    if (auto it = keys.find("api"); it != keys.end()) {
        if (rule.exclude)
            refuse(it->second, fmt::format("{} has both api and exclude: true; an excluded device is offered by "
                                           "no API", path));
        rule.api = apiOf(it->second);
    }
    return rule;
}

std::vector<ResourceRule> rulesOf(const YAML::Node &node, const std::string &prefix)
{
    std::vector<ResourceRule> rules;
    if (node.IsNull())
        return rules;
    if (!node.IsSequence())
        refuse(node, fmt::format("{} must be a list of rules, not {}", prefix, typeName(node)));
    size_t i = 0;
    for (const auto &item : node)
        rules.push_back(ruleOf(item, fmt::format("{}[{}]", prefix, i++)));
    return rules;
}

// Resource names that differ but would meet on the node: one socket file, or
// one KubeVirt variable, for two resources; and one name for two kinds.
void checkCollisions(const ResourceConfig &config)
{
    std::vector<const ResourceRule *> named;
    for (const NodeSection &section : config.nodes)
        for (const ResourceRule &rule : section.resources)
            named.push_back(&rule);
    for (const ResourceRule &rule : config.resources)
        named.push_back(&rule);

    std::map<std::string, const ResourceRule *> bySocket, byKey;
    std::map<std::string, std::pair<DeviceKind, const ResourceRule *>> kindOf;
    for (const ResourceRule *rule : named) {
        if (rule->exclude)
            continue;
        auto clash = [&](std::map<std::string, const ResourceRule *> &seen, const std::string &key,
                         const char *what) {
            auto [it, fresh] = seen.emplace(key, rule);
            if (!fresh && it->second->name != rule->name)
                refuse(rule->position, fmt::format("resource name {} of {} collides with {} of {}: both would {} {}",
                                                   rule->name, rule->path, it->second->name,
                                                   it->second->describe(), what, key));
        };
        clash(bySocket, socketFileName(rule->name), "be served on the socket");
        clash(byKey, envKey(DeviceKind::Passthrough, rule->name), "give KubeVirt the variable");
        if (rule->match.kind) {
            auto [it, fresh] = kindOf.emplace(rule->name, std::make_pair(*rule->match.kind, rule));
            if (!fresh && it->second.first != *rule->match.kind)
                refuse(rule->position,
                       fmt::format("{} gives {} devices the name {}, which {} gives {} devices; KubeVirt needs one "
                                   "kind (one variable prefix) per resource",
                                   rule->path, deviceKindWord(*rule->match.kind), rule->name,
                                   it->second.second->describe(), deviceKindWord(it->second.first)));
        }
    }
}

ResourceConfig configOf(const YAML::Node &root)
{
    if (root.IsNull())
        refuse(root, "the configuration is empty; it needs at least \"version: 1\"");
    ResourceConfig config;
    auto keys = keysOf(root, "the configuration", {"version", "api", "resources", "nodes"});
    auto version = keys.find("version");
    if (version == keys.end())
        refuse(root, "\"version: 1\" is missing");
    if (scalarOf(version->second, "version") != "1")
        refuse(version->second, fmt::format("version {} is not known; this plugin reads version 1",
                                            version->second.Scalar()));
    if (auto it = keys.find("api"); it != keys.end())
        config.api = apiOf(it->second);
    if (auto it = keys.find("resources"); it != keys.end())
        config.resources = rulesOf(it->second, "resources");
    if (auto it = keys.find("nodes"); it != keys.end() && !it->second.IsNull()) {
        if (!it->second.IsSequence())
            refuse(it->second, fmt::format("nodes must be a list, not {}", typeName(it->second)));
        size_t i = 0;
        for (const auto &item : it->second) {
            std::string path = fmt::format("nodes[{}]", i++);
            auto section = keysOf(item, path, {"name", "api", "resources"});
            auto name = section.find("name");
            if (name == section.end())
                refuse(item, fmt::format("{} needs a name (a glob on the node name, e.g. \"gpu-a-*\")", path));
            Result<Glob> glob = Glob::compile(scalarOf(name->second, "name"));
            if (!glob)
                refuse(name->second, path + ".name: " + glob.error());
            auto api = section.find("api");
            std::optional<DeviceApi> nodeApi = api == section.end() ? std::nullopt : apiOf(api->second);
            auto rules = section.find("resources");
            if ((rules == section.end() || rules->second.IsNull()) && !nodeApi)
                refuse(item, fmt::format("{} has neither resources nor api; give it rules or remove it", path));
            config.nodes.push_back(NodeSection{
                *glob, nodeApi,
                rules == section.end() ? std::vector<ResourceRule>() : rulesOf(rules->second, path + ".resources"),
                positionOf(item.Mark())});
        }
    }
    checkCollisions(config);
    return config;
}

// A `---` or `...` line after the first content starts or ends a document.
void refuseSecondDocument(std::string_view text)
{
    bool content = false;
    int line = 0;
    for (std::string_view rest = text; !rest.empty();) {
        size_t end = rest.find('\n');
        std::string_view current = rest.substr(0, end);
        rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
        ++line;
        bool marker = current.starts_with("---") || current.starts_with("...");
        if (marker && (current.size() == 3 || current[3] == ' ' || current[3] == '\t' || current[3] == '\r')) {
            if (content || current.starts_with("..."))
                refuse(SourcePosition{line, 1}, "more than one YAML document; the configuration is one document");
            continue;
        }
        std::string_view trimmed = trim(current);
        if (!trimmed.empty() && trimmed.front() != '#')
            content = true;
    }
}

} // namespace

Result<ResourceConfig, ConfigError> parseResourceConfig(std::string_view text)
{
    if (text.size() > kMaxConfigBytes)
        return ConfigError{fmt::format("the configuration is {} bytes; at most {} are read", text.size(),
                                       kMaxConfigBytes), {}};
    try {
        // One document, read with YAML::Load: yaml-cpp 0.7's LoadAll can loop
        // forever, allocating, on some malformed input (found by fuzz_config),
        // so a second document is found by its marker line instead.
        refuseSecondDocument(text);
        return configOf(YAML::Load(std::string(text)));
    } catch (const Refusal &refusal) {
        return refusal.error;
    } catch (const YAML::Exception &e) {
        SourcePosition at = positionOf(e.mark);
        std::string where = at.line > 0 ? fmt::format("line {}, column {}: ", at.line, at.column) : std::string();
        return ConfigError{where + "not valid YAML: " + e.msg, at};
    } catch (const std::exception &e) {
        return ConfigError{std::string("cannot read the configuration: ") + e.what(), {}};
    }
}

Result<ResourceConfig, ConfigError> loadResourceConfig(const std::string &path, std::string *textOut)
{
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return ConfigError{fmt::format("{}: cannot open: {}", path, std::strerror(errno)), {}};
    std::string text;
    char buffer[8192];
    while (in.read(buffer, sizeof(buffer)) || in.gcount() > 0) {
        text.append(buffer, static_cast<size_t>(in.gcount()));
        if (text.size() > kMaxConfigBytes)
            break;
    }
    if (in.bad())
        return ConfigError{fmt::format("{}: cannot read", path), {}};
    Result<ResourceConfig, ConfigError> parsed = parseResourceConfig(text);
    if (textOut)
        *textOut = text;
    if (!parsed)
        return ConfigError{path + ": " + parsed.failure().message, parsed.failure().position};
    return parsed;
}

std::string configHash(std::string_view text)
{
    std::uint64_t hash = 0xcbf29ce484222325ull;
    for (char c : text) {
        hash ^= static_cast<unsigned char>(c);
        hash *= 0x100000001b3ull;
    }
    return fmt::format("{:016x}", hash);
}

} // namespace kvgpu
