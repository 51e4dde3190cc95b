#include "node_description.h"

#include "node_names.h"
#include "sysfs_files.h"

#include <fmt/format.h>

#include <cctype>
#include <charconv>
#include <map>
#include <set>

namespace kvgpu::test {

namespace {

[[noreturn]] void fail(const std::string &message) { throw DescriptionError(message); }

struct Token {
    std::string text;
    // Position of the first '=' outside quotes, which makes it a key=value field.
    std::optional<std::size_t> equals;
};

std::vector<Token> tokenize(std::string_view line) {
    std::vector<Token> tokens;
    std::size_t i = 0;
    while (i < line.size()) {
        if (line[i] == ' ' || line[i] == '\t' || line[i] == '\r') {
            ++i;
            continue;
        }
        if (line[i] == '#')
            break;
        Token token;
        while (i < line.size() && line[i] != ' ' && line[i] != '\t' && line[i] != '\r' &&
               line[i] != '#') {
            if (line[i] == '"') {
                const std::size_t open = i++;
                bool closed = false;
                while (i < line.size()) {
                    if (line[i] == '"') {
                        closed = true;
                        ++i;
                        break;
                    }
                    if (line[i] == '\\' && i + 1 < line.size() &&
                        (line[i + 1] == '"' || line[i + 1] == '\\'))
                        ++i;
                    token.text += line[i++];
                }
                if (!closed)
                    fail(fmt::format("unterminated quote starting at column {}", open + 1));
                continue;
            }
            if (line[i] == '=' && !token.equals)
                token.equals = token.text.size();
            token.text += line[i++];
        }
        tokens.push_back(std::move(token));
    }
    return tokens;
}

// key=value fields of one line, checked against the keyword's known keys.
class Fields {
public:
    Fields(std::string context, const std::vector<Token> &tokens, std::size_t first,
           std::set<std::string> known)
        : context_(std::move(context)) {
        for (std::size_t i = first; i < tokens.size(); ++i) {
            const Token &token = tokens[i];
            if (!token.equals)
                fail(fmt::format("{}: expected key=value, got '{}'", context_, token.text));
            std::string key = token.text.substr(0, *token.equals);
            std::string value = token.text.substr(*token.equals + 1);
            if (!known.count(key)) {
                std::string names;
                for (const std::string &name : known)
                    names += (names.empty() ? "" : ", ") + name;
                fail(fmt::format("{}: unknown field '{}' (known: {})", context_, key, names));
            }
            if (values_.count(key))
                fail(fmt::format("{}: {}= given twice", context_, key));
            values_[key] = std::move(value);
        }
    }

    const std::string &context() const { return context_; }
    std::optional<std::string> get(const std::string &key) const {
        auto found = values_.find(key);
        return found == values_.end() ? std::nullopt : std::optional(found->second);
    }
    std::string require(const std::string &key, std::string_view example) const {
        auto value = get(key);
        if (!value)
            fail(fmt::format("{}: missing {}={}", context_, key, example));
        return *value;
    }
    [[noreturn]] void bad(const std::string &key, const std::string &value, std::string_view expected) const {
        fail(fmt::format("{}: {}={} is not {}", context_, key, value, expected));
    }

private:
    std::string context_;
    std::map<std::string, std::string> values_;
};

std::optional<long> parseDecimal(std::string_view text) {
    long value = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || error != std::errc() || end != text.data() + text.size())
        return std::nullopt;
    return value;
}

std::optional<std::uint32_t> parseHex(std::string_view text, std::size_t maxDigits) {
    if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X'))
        text.remove_prefix(2);
    if (text.empty() || text.size() > maxDigits)
        return std::nullopt;
    std::uint32_t value = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value, 16);
    if (error != std::errc() || end != text.data() + text.size())
        return std::nullopt;
    return value;
}

int intField(const Fields &fields, const std::string &key, const std::string &value, long min,
             std::string_view expected) {
    auto number = parseDecimal(value);
    if (!number || *number < min || *number > 1'000'000)
        fields.bad(key, value, expected);
    return static_cast<int>(*number);
}

// "10de:1eb8" -> {0x10de, 0x1eb8}
std::pair<std::uint16_t, std::uint16_t> idPair(const Fields &fields, const std::string &key,
                                               const std::string &value) {
    bool wellFormed = value.size() == 9 && value[4] == ':';
    for (std::size_t i = 0; wellFormed && i < value.size(); ++i)
        wellFormed = i == 4 || std::isxdigit(static_cast<unsigned char>(value[i]));
    if (!wellFormed)
        fields.bad(key, value, "a vendor:device pair like 10de:1eb8");
    const auto vendor = parseHex(std::string_view(value).substr(0, 4), 4);
    const auto device = parseHex(std::string_view(value).substr(5), 4);
    return {static_cast<std::uint16_t>(vendor.value_or(0)), static_cast<std::uint16_t>(device.value_or(0))};
}

std::optional<int> groupField(const Fields &fields, const std::string &value) {
    if (value == "none")
        return std::nullopt;
    return intField(fields, "group", value, 0, "an IOMMU group number or none");
}

std::string driverField(const Fields &fields, const std::string &value) {
    if (value == "none")
        return "";
    if (!isDriverName(value))
        fields.bad("driver", value, "a driver name or none");
    return value;
}

std::string positional(const std::vector<Token> &tokens, std::size_t index,
                       const std::string &keyword, std::string_view what) {
    if (index >= tokens.size())
        fail(fmt::format("{}: missing {}", keyword, what));
    if (tokens[index].equals)
        fail(fmt::format("{}: expected {} before the key=value fields, got '{}'", keyword, what,
                         tokens[index].text));
    return tokens[index].text;
}

PciFunctionSpec parseFunction(const std::vector<Token> &tokens, const std::string &keyword) {
    const std::string address = positional(tokens, 1, keyword, "a PCI address like 0000:65:00.0");
    if (!isPciAddress(address))
        fail(fmt::format("{}: '{}' is not a PCI address like 0000:65:00.0", keyword, address));
    const bool gpu = keyword == "gpu";
    Fields fields(keyword + " " + address, tokens, 2,
                  {"id", "class", "group", "numa", "driver", "parent", "subsys", "vfio-dev", "sriov-vfs",
                   "vf-offset"});
    PciFunctionSpec spec;
    spec.address = address;
    std::tie(spec.vendor, spec.device) = idPair(fields, "id", fields.require("id", "vvvv:dddd"));
    const std::string classText = gpu ? fields.get("class").value_or("0x030200")
                                      : fields.require("class", "0x040300");
    auto classCode = parseHex(classText, 6);
    if (!classCode)
        fields.bad("class", classText, "a class code like 0x030200");
    spec.classCode = *classCode;
    spec.iommuGroup = groupField(fields, fields.require("group", "N (or none)"));
    if (auto numa = fields.get("numa"))
        spec.numaNode = intField(fields, "numa", *numa, -1, "a NUMA node (-1 for unknown)");
    spec.driver = driverField(fields, fields.get("driver").value_or(gpu ? "vfio-pci" : "none"));
    if (auto parent = fields.get("parent")) {
        if (!isParentPath(*parent))
            fields.bad("parent", *parent, "a path like pci0000:64/0000:64:00.0");
        spec.parentPath = *parent;
    }
    if (auto subsys = fields.get("subsys"))
        std::tie(spec.subsystemVendor, spec.subsystemDevice) = idPair(fields, "subsys", *subsys);
    if (auto index = fields.get("vfio-dev"))
        spec.vfioDevIndex = intField(fields, "vfio-dev", *index, 0, "a vfio-dev index");
    if (auto vfs = fields.get("sriov-vfs"))
        spec.sriovTotalVfs = intField(fields, "sriov-vfs", *vfs, 1, "a VF count (sriov_totalvfs)");
    if (auto offset = fields.get("vf-offset"))
        spec.sriovVfOffset = intField(fields, "vf-offset", *offset, 1, "the first VF's devfn offset");
    return spec;
}

std::string pciPositional(const std::vector<Token> &tokens, std::size_t index, const std::string &keyword,
                          std::string_view what) {
    const std::string address = positional(tokens, index, keyword, what);
    if (!isPciAddress(address))
        fail(fmt::format("{}: '{}' is not a PCI address like 0000:41:00.0", keyword, address));
    return address;
}

std::uint32_t profileId(const std::vector<Token> &tokens, std::size_t index, const std::string &keyword) {
    const std::string text = positional(tokens, index, keyword, "a vGPU type id like 1414");
    auto id = parseDecimal(text);
    if (!id || *id < 0 || *id > 0xffffffffL)
        fail(fmt::format("{}: '{}' is not a vGPU type id like 1414", keyword, text));
    return static_cast<std::uint32_t>(*id);
}

SriovProfileSpec parseSriovProfile(const std::vector<Token> &tokens) {
    SriovProfileSpec spec;
    spec.pfAddress = pciPositional(tokens, 1, "sriov-profile", "the PF's PCI address");
    spec.id = profileId(tokens, 2, "sriov-profile");
    Fields fields(fmt::format("sriov-profile {}", spec.id), tokens, 3, {"name", "instances"});
    spec.name = fields.require("name", "\"NVIDIA H200X-1-18C\"");
    spec.instances = intField(fields, "instances", fields.get("instances").value_or("1"), 0, "an instance count");
    return spec;
}

VfsSetting parseVfs(const std::vector<Token> &tokens) {
    VfsSetting setting;
    setting.pfAddress = pciPositional(tokens, 1, "vfs", "the PF's PCI address");
    Fields fields("vfs " + setting.pfAddress, tokens, 2, {"count"});
    setting.count = intField(fields, "count", fields.require("count", "N"), 0, "a VF count");
    return setting;
}

VfProfileSetting parseVfProfile(const std::vector<Token> &tokens) {
    VfProfileSetting setting;
    setting.vfAddress = pciPositional(tokens, 1, "vf-profile", "the VF's PCI address");
    setting.id = profileId(tokens, 2, "vf-profile");
    if (tokens.size() > 3)
        fail(fmt::format("vf-profile: unexpected '{}'", tokens[3].text));
    return setting;
}

EgmRegionSpec parseEgm(const std::vector<Token> &tokens) {
    EgmRegionSpec spec;
    spec.name = positional(tokens, 1, "egm", "a region name like egm4");
    Fields fields("egm " + spec.name, tokens, 2, {"gpus", "layout", "node"});
    std::string gpus = fields.get("gpus").value_or("");
    for (std::size_t start = 0; start < gpus.size();) {
        std::size_t comma = std::min(gpus.find(',', start), gpus.size());
        std::string gpu = gpus.substr(start, comma - start);
        if (!isPciAddress(gpu))
            fields.bad("gpus", gpus, "comma-separated PCI addresses");
        spec.gpus.push_back(gpu);
        start = comma + 1;
    }
    const std::string layout = fields.get("layout").value_or("file");
    if (layout != "file" && layout != "links")
        fields.bad("layout", layout, "file or links");
    spec.linkLayout = layout == "links";
    const std::string node = fields.get("node").value_or("yes");
    if (node != "yes" && node != "no")
        fields.bad("node", node, "yes or no");
    spec.deviceNode = node == "yes";
    return spec;
}

BridgeSpec parseBridge(const std::vector<Token> &tokens) {
    const std::string path = positional(tokens, 1, "bridge", "a path like pci0000:64/0000:64:00.0");
    if (!isParentPath(path) || path.find('/') == std::string::npos)
        fail(fmt::format("bridge: '{}' is not a path like pci0000:64/0000:64:00.0", path));
    Fields fields("bridge " + path, tokens, 2, {"id", "group", "driver"});
    BridgeSpec spec;
    spec.path = path;
    if (auto id = fields.get("id"))
        std::tie(spec.vendor, spec.device) = idPair(fields, "id", *id);
    if (auto group = fields.get("group"))
        spec.iommuGroup = groupField(fields, *group);
    if (auto driver = fields.get("driver"))
        spec.driver = driverField(fields, *driver);
    return spec;
}

VgpuTypeSpec parseVgpuType(const std::vector<Token> &tokens) {
    const std::string parent = positional(tokens, 1, "vgpu-type", "the parent's PCI address");
    if (!isPciAddress(parent))
        fail(fmt::format("vgpu-type: '{}' is not a PCI address like 0000:b1:00.0", parent));
    const std::string typeId = positional(tokens, 2, "vgpu-type", "a type id like nvidia-222");
    if (!isTypeId(typeId))
        fail(fmt::format("vgpu-type: '{}' is not a type id like nvidia-222", typeId));
    Fields fields("vgpu-type " + typeId, tokens, 3, {"name", "instances", "description"});
    VgpuTypeSpec spec;
    spec.parentAddress = parent;
    spec.typeId = typeId;
    spec.name = fields.get("name");
    spec.availableInstances =
        intField(fields, "instances", fields.require("instances", "N"), 0, "an instance count");
    spec.description = fields.get("description").value_or("");
    return spec;
}

VgpuSpec parseVgpu(const std::vector<Token> &tokens) {
    const std::string uuid = positional(tokens, 1, "vgpu", "a UUID");
    if (!isUuid(uuid))
        fail(fmt::format("vgpu: '{}' is not a UUID", uuid));
    Fields fields("vgpu " + uuid, tokens, 2, {"parent", "type"});
    VgpuSpec spec;
    spec.uuid = toLower(uuid);
    spec.parentAddress = fields.require("parent", "0000:b1:00.0");
    if (!isPciAddress(spec.parentAddress))
        fields.bad("parent", spec.parentAddress, "a PCI address like 0000:b1:00.0");
    spec.typeId = fields.require("type", "nvidia-222");
    return spec;
}

IommufdSetting parseIommufd(const std::vector<Token> &tokens) {
    const std::string value = positional(tokens, 1, "iommufd", "on or off");
    if (value != "on" && value != "off")
        fail(fmt::format("iommufd: expected on or off, got '{}'", value));
    if (tokens.size() > 2)
        fail(fmt::format("iommufd: unexpected '{}'", tokens[2].text));
    return IommufdSetting{value == "on"};
}

} // namespace

std::optional<DescriptionItem> parseDescriptionLine(std::string_view line) {
    const std::vector<Token> tokens = tokenize(line);
    if (tokens.empty())
        return std::nullopt;
    const std::string &keyword = tokens[0].text;
    if (keyword == "bridge")
        return parseBridge(tokens);
    if (keyword == "gpu" || keyword == "function" || keyword == "device")
        return parseFunction(tokens, keyword);
    if (keyword == "vgpu-type")
        return parseVgpuType(tokens);
    if (keyword == "vgpu")
        return parseVgpu(tokens);
    if (keyword == "iommufd")
        return parseIommufd(tokens);
    if (keyword == "sriov-profile")
        return parseSriovProfile(tokens);
    if (keyword == "vfs")
        return parseVfs(tokens);
    if (keyword == "vf-profile")
        return parseVfProfile(tokens);
    if (keyword == "egm")
        return parseEgm(tokens);
    fail(fmt::format("unknown item '{}' (known: bridge, gpu, function, device, vgpu-type, vgpu, "
                     "iommufd, sriov-profile, vfs, vf-profile, egm)",
                     keyword));
}

std::vector<DescriptionLine> parseNodeDescription(std::string_view text) {
    std::vector<DescriptionLine> lines;
    int lineNumber = 0;
    int iommufdLine = 0;
    while (!text.empty()) {
        ++lineNumber;
        const std::size_t end = text.find('\n');
        const std::string_view line = text.substr(0, end);
        text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
        std::optional<DescriptionItem> item;
        try {
            item = parseDescriptionLine(line);
        } catch (const DescriptionError &e) {
            fail(fmt::format("line {}: {}", lineNumber, e.what()));
        }
        if (!item)
            continue;
        if (std::holds_alternative<IommufdSetting>(*item)) {
            if (iommufdLine)
                fail(fmt::format("line {}: iommufd is already set on line {}", lineNumber,
                                 iommufdLine));
            iommufdLine = lineNumber;
        }
        lines.push_back(DescriptionLine{lineNumber, std::move(*item)});
    }
    return lines;
}

void applyDescriptionItem(SimNode &node, const DescriptionItem &item) {
    if (const auto *bridge = std::get_if<BridgeSpec>(&item))
        node.addBridge(*bridge);
    else if (const auto *function = std::get_if<PciFunctionSpec>(&item))
        node.addPciFunction(*function);
    else if (const auto *type = std::get_if<VgpuTypeSpec>(&item))
        node.addVgpuType(*type);
    else if (const auto *vgpu = std::get_if<VgpuSpec>(&item))
        node.createVgpu(vgpu->parentAddress, vgpu->typeId, vgpu->uuid);
    else if (const auto *profile = std::get_if<SriovProfileSpec>(&item))
        node.addSriovProfile(*profile);
    else if (const auto *vfs = std::get_if<VfsSetting>(&item))
        node.setNumVfs(vfs->pfAddress, vfs->count);
    else if (const auto *vfProfile = std::get_if<VfProfileSetting>(&item))
        node.setVgpuProfile(vfProfile->vfAddress, vfProfile->id);
    else if (const auto *egm = std::get_if<EgmRegionSpec>(&item))
        node.addEgmRegion(*egm);
    else
        fail("iommufd is a node-wide setting and cannot be changed on a running node");
}

std::unique_ptr<SimNode> SimNode::fromDescription(std::string_view text, SimNodeOptions options) {
    const std::vector<DescriptionLine> lines = parseNodeDescription(text);
    for (const DescriptionLine &line : lines)
        if (const auto *iommufd = std::get_if<IommufdSetting>(&line.item))
            options.iommufd = iommufd->enabled;
    auto node = std::make_unique<SimNode>(options);
    for (const DescriptionLine &line : lines) {
        if (std::holds_alternative<IommufdSetting>(line.item))
            continue;
        try {
            applyDescriptionItem(*node, line.item);
        } catch (const std::exception &e) {
            fail(fmt::format("line {}: {}", line.lineNumber, e.what()));
        }
    }
    return node;
}

std::unique_ptr<SimNode> SimNode::fromDescriptionFile(const std::string &path) {
    std::string text;
    try {
        text = readFile(path);
    } catch (const std::exception &e) {
        fail(e.what());
    }
    try {
        return fromDescription(text);
    } catch (const DescriptionError &e) {
        fail(fmt::format("{}: {}", path, e.what()));
    }
}

} // namespace kvgpu::test
