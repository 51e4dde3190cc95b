// Any text as the resource configuration (--config). The parser never crashes
// or lets a yaml-cpp exception out; a refusal names its line and column when
// it has one, and fits on one log line; an accepted configuration only holds
// rules the daemon can apply: a name the kubelet accepts or an exclusion,
// patterns that compile again to the same thing, and names that cannot meet
// on one socket or KubeVirt variable.
#include "config/config_parser.h"
#include "config/rule_match.h"
#include "fuzz_support.h"
#include "model/resource_name.h"

#include <map>

using namespace kvgpu;

namespace {

size_t lineCount(std::string_view text)
{
    return static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) + 1;
}

void checkRule(const ResourceRule &rule, const std::string &text)
{
    FUZZ_CHECK(rule.exclude == rule.name.empty(), text);
    if (!rule.exclude)
        FUZZ_CHECK(parseResourceName(rule.name).ok(), rule.name);
    FUZZ_CHECK(!rule.path.empty(), text);
    FUZZ_CHECK(rule.position.line >= 1 && static_cast<size_t>(rule.position.line) <= lineCount(text), text);
    if (rule.match.model) {
        Result<Glob> again = Glob::compile(rule.match.model->pattern(), Glob::Sets::Literal);
        FUZZ_CHECK(again.ok(), rule.match.model->pattern());
    }
    for (int numa : rule.match.numaNodes)
        FUZZ_CHECK(numa >= -1, text);
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***)
{
    fuzz::quietLogs();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *bytes, size_t size)
{
    std::string text(reinterpret_cast<const char *>(bytes), size);
    Result<ResourceConfig, ConfigError> parsed = parseResourceConfig(text);
    if (!parsed) {
        const ConfigError &error = parsed.failure();
        FUZZ_CHECK(!error.message.empty(), text);
        fuzz::checkLogLine("error", error.message);
        if (error.position.line > 0) {
            FUZZ_CHECK(static_cast<size_t>(error.position.line) <= lineCount(text) + 1, error.message);
            std::string where = "line " + std::to_string(error.position.line) + ", column ";
            FUZZ_CHECK(error.message.rfind(where, 0) == 0, error.message);
        }
        return 0;
    }
    const ResourceConfig &config = *parsed;
    std::map<std::string, std::string> bySocket;
    auto checkAll = [&](const std::vector<ResourceRule> &rules) {
        for (const ResourceRule &rule : rules) {
            checkRule(rule, text);
            if (rule.exclude)
                continue;
            auto [it, fresh] = bySocket.emplace(socketFileName(rule.name), rule.name);
            FUZZ_CHECK(fresh || it->second == rule.name, it->second + " and " + rule.name);
        }
    };
    checkAll(config.resources);
    for (const NodeSection &section : config.nodes) {
        FUZZ_CHECK(!section.resources.empty(), text);
        FUZZ_CHECK(Glob::compile(section.name.pattern()).ok(), section.name.pattern());
        checkAll(section.resources);
    }

    // Matching takes any device; a device that a rule takes is taken by the
    // same rule every time, and the node's rules come before the global ones.
    DeviceFacts gpu{.kind = DeviceKind::Passthrough, .pciId = {0x10de, 0x20f1}, .model = "GA100 [A100 PCIe 40GB]",
                    .address = "0000:3b:00.0", .numaNode = 1};
    DeviceFacts vgpu{.kind = DeviceKind::Vgpu, .pciId = {0x10de, 0x2236}, .model = "NVIDIA A10-4Q",
                     .address = "aa618089-8b16-4d01-a136-25a0f3c73123", .parentAddress = "0000:86:00.0"};
    for (const std::string node : {"", "gpu-a-1", "worker"}) {
        NodeRules rules = rulesForNode(config, node);
        FUZZ_CHECK(rules.rules.size() >= config.resources.size(), text);
        for (const ResourceRule &rule : rules.rules)
            FUZZ_CHECK(rule.exclude || rule.api.has_value(), rule.path);
        for (const DeviceFacts &device : {gpu, vgpu}) {
            const ResourceRule *first = firstMatchingRule(rules, device);
            FUZZ_CHECK(first == firstMatchingRule(rules, device), text);
            if (first)
                FUZZ_CHECK(ruleMatches(first->match, device), first->path);
        }
    }
    return 0;
}
