// The resource configuration: the issue's example as written, every key, and
// every refusal with its line and column; then which rule decides a device.
#include "config/config_parser.h"
#include "config/rule_match.h"

#include <doctest/doctest.h>

using namespace kvgpu;

namespace {

const char *kIssueExample = R"(version: 1
resources:                      # rules, first match wins; unmatched devices keep today's names
  - name: nvidia.com/passthrough-gpu
    match:
      kind: passthrough         # passthrough | vgpu (mdev)
      deviceIds: ["10de:20b1", "10de:20f1"]
  - name: nvidia.com/A10-4Q
    match: { model: "*A10-4Q" } # glob on the pci.ids name or the vGPU profile name
  - exclude: true               # not advertised; `list` says which rule excluded it
    match: { addresses: ["0000:3b:00.0"], numaNodes: [1] }   # all given keys must match
nodes:                          # per node, chosen by --node-name (default: $NODE_NAME)
  - name: "gpu-a-*"             # glob on the node name; its rules come before the global ones
    resources:
      - exclude: true
        match: { addresses: ["0000:86:00.0"] }
)";

ResourceConfig parse(const std::string &text)
{
    Result<ResourceConfig, ConfigError> parsed = parseResourceConfig(text);
    REQUIRE_MESSAGE(parsed.ok(), parsed.error());
    return *parsed;
}

std::string refusalOf(const std::string &text)
{
    Result<ResourceConfig, ConfigError> parsed = parseResourceConfig(text);
    REQUIRE_MESSAGE(!parsed.ok(), text);
    return parsed.error();
}

DeviceFacts gpu(const std::string &address, std::uint16_t device, const std::string &model, int numa = 0)
{
    return DeviceFacts{.kind = DeviceKind::Passthrough, .pciId = {0x10de, device}, .model = model,
                       .address = address, .numaNode = numa};
}

DeviceFacts vgpu(const std::string &uuid, const std::string &parent, const std::string &profile)
{
    return DeviceFacts{.kind = DeviceKind::Vgpu, .pciId = {0x10de, 0x2236}, .model = profile, .address = uuid,
                       .parentAddress = parent};
}

std::string decision(const NodeRules &rules, const DeviceFacts &device)
{
    const ResourceRule *rule = firstMatchingRule(rules, device);
    if (!rule)
        return "default";
    return (rule->exclude ? std::string("excluded") : rule->name) + " by " + rule->path;
}

} // namespace

TEST_CASE("the issue's example parses as written, every key in place")
{
    ResourceConfig config = parse(kIssueExample);
    REQUIRE(config.resources.size() == 3);
    const ResourceRule &generic = config.resources[0];
    CHECK(generic.name == "nvidia.com/passthrough-gpu");
    CHECK(generic.match.kind == DeviceKind::Passthrough);
    CHECK(generic.match.deviceIds == std::vector<PciDeviceId>{{0x10de, 0x20b1}, {0x10de, 0x20f1}});
    CHECK(generic.position.line == 3);
    CHECK(generic.describe() == "resources[0] (line 3)");
    CHECK(config.resources[1].match.model->pattern() == "*A10-4Q");
    CHECK(config.resources[2].exclude);
    CHECK(config.resources[2].match.addresses == std::vector<std::string>{"0000:3b:00.0"});
    CHECK(config.resources[2].match.numaNodes == std::vector<int>{1});
    REQUIRE(config.nodes.size() == 1);
    CHECK(config.nodes[0].name.pattern() == "gpu-a-*");
    CHECK(config.nodes[0].resources.at(0).path == "nodes[0].resources[0]");
}

TEST_CASE("first match wins, node rules come first, unmatched devices keep their default names")
{
    ResourceConfig config = parse(kIssueExample);
    NodeRules onA = rulesForNode(config, "gpu-a-7");
    NodeRules onB = rulesForNode(config, "gpu-b-1");
    CHECK(onA.rules.size() == 4);
    CHECK(onB.rules.size() == 3);

    CHECK(decision(onB, gpu("0000:ca:00.0", 0x20f1, "GA100 [A100 PCIe 40GB]")) ==
          "nvidia.com/passthrough-gpu by resources[0]");
    CHECK(decision(onB, gpu("0000:67:00.0", 0x1eb8, "TU104GL [Tesla T4]")) == "default");
    CHECK(decision(onB, vgpu("aa618089-8b16-4d01-a136-25a0f3c73123", "0000:e1:00.0", "NVIDIA A10-4Q")) ==
          "nvidia.com/A10-4Q by resources[1]");
    // addresses and numaNodes must both match.
    CHECK(decision(onB, gpu("0000:3b:00.0", 0x1eb8, "TU104GL [Tesla T4]", 1)) == "excluded by resources[2]");
    CHECK(decision(onB, gpu("0000:3b:00.0", 0x1eb8, "TU104GL [Tesla T4]", 0)) == "default");
    // The node's own rule excludes a GPU the global rules would rename.
    CHECK(decision(onA, gpu("0000:86:00.0", 0x20f1, "GA100 [A100 PCIe 40GB]")) ==
          "excluded by nodes[0].resources[0]");
    CHECK(decision(onB, gpu("0000:86:00.0", 0x20f1, "GA100 [A100 PCIe 40GB]")) ==
          "nvidia.com/passthrough-gpu by resources[0]");
    // Without a node name only the global rules apply.
    CHECK(rulesForNode(config, "").rules.size() == 3);
}

TEST_CASE("a vGPU matches by its parent's address and id, or by its own UUID")
{
    ResourceConfig config = parse(R"(version: 1
resources:
  - exclude: true
    match: { kind: vgpu, addresses: ["0000:E1:00.0"] }
  - name: example.com/kept-vgpu
    match: { addresses: ["5B0C6A1E-7D2F-4C3B-9E8A-1F2D3C4B5A69"] }
  - name: nvidia.com/l4-vgpu
    match: { kind: vgpu, deviceIds: ["10de:2236"] }
)");
    NodeRules rules = rulesForNode(config, "n");
    CHECK(decision(rules, vgpu("aa618089-8b16-4d01-a136-25a0f3c73123", "0000:e1:00.0", "NVIDIA L4-1Q")) ==
          "excluded by resources[0]");
    CHECK(decision(rules, vgpu("5b0c6a1e-7d2f-4c3b-9e8a-1f2d3c4b5a69", "0000:e2:00.0", "NVIDIA L4-2Q")) ==
          "example.com/kept-vgpu by resources[1]");
    CHECK(decision(rules, vgpu("11111111-2222-3333-4444-555555555555", "0000:e2:00.0", "NVIDIA L4-2Q")) ==
          "nvidia.com/l4-vgpu by resources[2]");
    // The passthrough GPU at the parent's address is not a vGPU.
    CHECK(decision(rules, gpu("0000:e1:00.0", 0x2236, "GA102GL [A10]")) == "default");
}

TEST_CASE("numaNodes -1 matches devices without a NUMA node; a rule without match takes every device")
{
    ResourceConfig config = parse("version: 1\nresources:\n  - name: nvidia.com/far\n    match: {numaNodes: [-1]}\n"
                                  "  - name: nvidia.com/gpu\n");
    NodeRules rules = rulesForNode(config, "");
    CHECK(decision(rules, gpu("0000:65:00.0", 0x1eb8, "T4", -1)) == "nvidia.com/far by resources[0]");
    CHECK(decision(rules, gpu("0000:65:00.0", 0x1eb8, "T4", 0)) == "nvidia.com/gpu by resources[1]");
}

TEST_CASE("every problem is refused with its line and column")
{
    struct Row {
        const char *yaml;
        const char *refusal;
    };
    for (Row row : {
             Row{"", "the configuration is empty"},
             Row{"resources: []\n", "\"version: 1\" is missing"},
             Row{"version: 2\n", "line 1, column 10: version 2 is not known"},
             Row{"version: 1\nresource: []\n", "line 2, column 1: unknown key \"resource\" in the configuration "
                                               "(known: version, api, resources, nodes)"},
             Row{"version: 1\nresources:\n  - name: nvidia.com/x\n    macth: {}\n",
                 "line 4, column 5: unknown key \"macth\" in a rule (resources[0]) (known: name, exclude, match, api)"},
             Row{"version: 1\nresources:\n  - name: nvidia.com/x\n    match: {modle: x}\n",
                 "line 4, column 13: unknown key \"modle\" in match"},
             Row{"version: 1\nresources:\n  - name: nvidia.com/x\n    match: {model: \"A10\\\\\"}\n",
                 "line 4, column 20: model: bad glob \"A10\\\": a '\\' at the end escapes nothing"},
             Row{"version: 1\nresources:\n  - name: nvidia.com/x\n    match: {model: \"\"}\n",
                 "an empty pattern matches nothing"},
             Row{"version: 1\nnodes:\n  - name: \"gpu-[\"\n    resources: [{exclude: true}]\n",
                 "line 3, column 11: nodes[0].name: bad glob"},
             Row{"version: 1\nresources:\n  - name: nvidia.com/bad name\n",
                 "line 3, column 11: resource name \"nvidia.com/bad name\": \"bad name\" is not a name the kubelet "
                 "accepts"},
             Row{"version: 1\nresources:\n  - name: passthrough-gpu\n", "must be <domain>/<name>"},
             Row{"version: 1\nresources:\n  - name: Nvidia.com/x\n", "\"Nvidia.com\" is not a domain name"},
             Row{"version: 1\nresources:\n  - name: kubernetes.io/gpu\n", "refuses extended resources"},
             Row{"version: 1\nresources:\n  - match: {kind: vgpu}\n",
                 "line 3, column 5: resources[0] needs a name (the resource its devices get) or exclude: true"},
             Row{"version: 1\nresources:\n  - name: nvidia.com/x\n    exclude: true\n",
                 "line 3, column 11: resources[0] has both a name and exclude: true"},
             Row{"version: 1\nresources:\n  - exclude: yes\n", "exclude must be true or false, not \"yes\""},
             Row{"version: 1\nresources:\n  - name: nvidia.com/x\n    match: {kind: gpu}\n",
                 "unknown kind \"gpu\" (known: passthrough, vgpu, sriov-vgpu)"},
             Row{"version: 1\nresources:\n  - name: nvidia.com/x\n    match: {deviceIds: [\"10de-20b1\"]}\n",
                 "line 4, column 25: deviceIds entry \"10de-20b1\" is not a vendor:device id"},
             Row{"version: 1\nresources:\n  - name: nvidia.com/x\n    match: {deviceIds: []}\n",
                 "deviceIds is an empty list, which matches nothing"},
             Row{"version: 1\nresources:\n  - exclude: true\n    match: {addresses: [\"3b:00.0\"]}\n",
                 "addresses entry \"3b:00.0\" is neither a PCI address with its domain"},
             Row{"version: 1\nresources:\n  - exclude: true\n    match: {numaNodes: [one]}\n",
                 "numaNodes entry \"one\" is not a NUMA node number"},
             Row{"version: 1\nresources:\n  - exclude: true\n    match: {numaNodes: 1}\n",
                 "numaNodes must be a list, not a scalar"},
             Row{"version: 1\nversion: 1\n", "line 2, column 1: key \"version\" appears twice in the configuration"},
             Row{"version: 1\nresources: {name: x}\n", "resources must be a list of rules, not a mapping"},
             Row{"version: 1\nnodes:\n  - resources: [{exclude: true}]\n", "nodes[0] needs a name"},
             Row{"version: 1\nnodes:\n  - name: a\n", "line 3, column 5: nodes[0] has neither resources nor api"},
             Row{"version: 1\napi: DRA\n", "line 2, column 6: unknown api \"DRA\" (known: device-plugin, dra)"},
             Row{"version: 1\nresources:\n  - exclude: true\n    api: dra\n",
                 "line 4, column 10: resources[0] has both api and exclude: true"},
             Row{"version: 1\nresources:\n  - name: [nvidia.com/x\n", "not valid YAML"},
             Row{"version: 1\n---\nversion: 1\n", "line 2, column 1: more than one YAML document"},
             Row{"version: 1\n...\n", "more than one YAML document"},
             // Names that differ but would meet on the node.
             Row{"version: 1\nresources:\n  - name: nvidia.com/gpu\n  - name: example.com/gpu\n",
                 "line 4, column 5: resource name example.com/gpu of resources[1] collides with nvidia.com/gpu of "
                 "resources[0] (line 3): both would be served on the socket kvgpu-gpu.sock"},
             Row{"version: 1\nresources:\n  - name: nvidia.com/a.b\n  - name: nvidia.com/a_b\n",
                 "both would give KubeVirt the variable PCI_RESOURCE_NVIDIA_COM_A_B"},
             // A passthrough GPU and a vGPU cannot share a resource.
             Row{"version: 1\nresources:\n  - name: nvidia.com/gpu\n    match: {kind: passthrough}\n"
                 "nodes:\n  - name: b\n    resources:\n      - name: nvidia.com/gpu\n        match: {kind: vgpu}\n",
                 "resources[0] gives passthrough devices the name nvidia.com/gpu, which nodes[0].resources[0] "
                 "(line 8) gives vgpu devices"},
         }) {
        std::string yaml = row.yaml;
        CAPTURE(yaml);
        std::string refusal = refusalOf(row.yaml);
        CHECK_MESSAGE(refusal.find(row.refusal) != std::string::npos, refusal);
    }
}

TEST_CASE("api: a rule's own, else the first matching node entry's, else the file's, else device-plugin")
{
    ResourceConfig config = parse(R"(version: 1
api: dra
resources:
  - name: nvidia.com/passthrough-gpu
    match: {kind: passthrough}
  - name: nvidia.com/legacy-vgpu
    api: device-plugin
    match: {kind: vgpu}
nodes:
  - name: "old-*"
    api: device-plugin
  - name: "gpu-*"
    resources:
      - name: nvidia.com/fast
        api: dra
        match: {numaNodes: [0]}
)");
    auto apiOf = [](const NodeRules &rules, const std::string &name) {
        for (const ResourceRule &rule : rules.rules)
            if (rule.name == name)
                return deviceApiWord(*rule.api);
        return "none";
    };
    NodeRules onOld = rulesForNode(config, "old-1");
    CHECK(deviceApiWord(onOld.api) == std::string("device-plugin"));
    CHECK(apiOf(onOld, "nvidia.com/passthrough-gpu") == std::string("device-plugin"));
    CHECK(apiOf(onOld, "nvidia.com/legacy-vgpu") == std::string("device-plugin"));

    NodeRules onGpu = rulesForNode(config, "gpu-1");
    CHECK(deviceApiWord(onGpu.api) == std::string("dra"));
    CHECK(apiOf(onGpu, "nvidia.com/fast") == std::string("dra"));
    CHECK(apiOf(onGpu, "nvidia.com/passthrough-gpu") == std::string("dra"));
    CHECK(apiOf(onGpu, "nvidia.com/legacy-vgpu") == std::string("device-plugin"));

    // Without `api` anywhere, everything stays with the device plugin API.
    NodeRules plain = rulesForNode(parse("version: 1\nresources:\n  - name: nvidia.com/gpu\n"), "n");
    CHECK(plain.api == DeviceApi::DevicePlugin);
    CHECK(*plain.rules[0].api == DeviceApi::DevicePlugin);
}

TEST_CASE("a leading document marker is fine; input that once hung yaml-cpp's LoadAll is refused at once")
{
    CHECK(parseResourceConfig("# the plugin's rules\n---\nversion: 1\n").ok());
    // Found by fuzz_config: yaml-cpp 0.7's LoadAll loops forever on it.
    Result<ResourceConfig, ConfigError> hang = parseResourceConfig("\n , - name: nvidia.com/paind: passt\x16hroughu\n");
    CHECK_FALSE(hang.ok());
}

TEST_CASE("the same name in two rules merges their devices into one resource")
{
    ResourceConfig config = parse("version: 1\nresources:\n  - name: nvidia.com/big\n    match: {deviceIds: "
                                  "[\"10de:20f1\"]}\n  - name: nvidia.com/big\n    match: {model: \"*T4*\"}\n");
    NodeRules rules = rulesForNode(config, "x");
    CHECK(decision(rules, gpu("0000:ca:00.0", 0x20f1, "GA100")) == "nvidia.com/big by resources[0]");
    CHECK(decision(rules, gpu("0000:67:00.0", 0x1eb8, "TU104GL [Tesla T4]")) == "nvidia.com/big by resources[1]");
}

TEST_CASE("globs: stars, single characters, sets, ranges, escapes")
{
    struct Row {
        const char *pattern;
        const char *text;
        bool matches;
    };
    for (Row row : {Row{"*", "", true}, Row{"*A10-4Q", "NVIDIA A10-4Q", true}, Row{"*A10-4Q", "NVIDIA A10-4QX", false},
                    Row{"gpu-a-*", "gpu-a-", true}, Row{"gpu-a-*", "gpu-b-1", false}, Row{"g?u", "gpu", true},
                    Row{"g?u", "gu", false}, Row{"node-[0-9]", "node-7", true}, Row{"node-[!0-9]", "node-7", false},
                    Row{"node-[!0-9]", "node-x", true}, Row{"[]]", "]", true}, Row{"a\\*", "a*", true},
                    Row{"a\\*", "ab", false}, Row{"*a*b*c*", "xxaxxbxxcxx", true}, Row{"*a*b*c*", "xxaxxcxxbxx", false},
                    Row{"***x", "abx", true}, Row{"T4", "t4", false}}) {
        CAPTURE(row.pattern);
        CAPTURE(row.text);
        Result<Glob> glob = Glob::compile(row.pattern);
        REQUIRE(glob.ok());
        CHECK(glob->matches(row.text) == row.matches);
    }
    CHECK(Glob::compile("[z-a]").error().find("backwards") != std::string::npos);
    CHECK(Glob::compile("gpu-[a").error().find("never closed") != std::string::npos);
    // In model names brackets are plain characters: pci.ids names are full of them.
    Result<Glob> model = Glob::compile("GA100 [A100*", Glob::Sets::Literal);
    REQUIRE(model.ok());
    CHECK(model->matches("GA100 [A100 PCIe 40GB]"));
    CHECK_FALSE(model->matches("GA100 A"));
    CHECK(Glob::compile("abc\\").error().find("escapes nothing") != std::string::npos);
}

TEST_CASE("the configuration's fingerprint changes with its text")
{
    CHECK(configHash("version: 1\n") == configHash("version: 1\n"));
    CHECK(configHash("version: 1\n") != configHash("version: 1\n# edited\n"));
    CHECK(configHash("").size() == 16);
}
