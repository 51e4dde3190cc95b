#include "dra/slices.h"

#include "base/strings.h"
#include "dra/device_names.h"
#include "model/device_address.h"

#include <algorithm>

#include <fmt/format.h>

namespace kvgpu::dra {

namespace {

using nlohmann::json;

constexpr const char *kPciBusIdAttribute = "resource.kubernetes.io/pciBusID";
constexpr const char *kPcieRootAttribute = "resource.kubernetes.io/pcieRoot";
// What the API server appends to a generateName.
constexpr std::size_t kGeneratedSuffix = 5;
constexpr std::size_t kMaxDnsSubdomain = 253;

// A display string cut to the API's 64-character limit without splitting a
// UTF-8 sequence, and without trailing blanks left by the cut.
std::string cutToAttributeValue(std::string_view text)
{
    if (text.size() <= kMaxAttributeValue)
        return std::string(text);
    std::size_t end = kMaxAttributeValue;
    while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80)
        --end; // text[end] continues a sequence: cut before its start
    return std::string(trim(text.substr(0, end)));
}

class Attributes {
public:
    explicit Attributes(std::vector<std::string> &omitted) : omitted_(omitted) {}

    void addString(const std::string &name, std::string value) { add(name, json{{"string", std::move(value)}}); }
    void addInt(const std::string &name, std::int64_t value) { add(name, json{{"int", value}}); }
    json take() { return std::move(attributes_); }

private:
    void add(const std::string &name, json value)
    {
        // The kinds above publish at most a dozen; the check keeps a future
        // addition from producing a slice the API server refuses.
        if (attributes_.size() >= kMaxAttributesPerDevice) {
            omitted_.push_back(fmt::format("attribute {} exceeds the API's limit of {} attributes per device: not published",
                                           name, kMaxAttributesPerDevice));
            return;
        }
        attributes_[name] = std::move(value);
    }

    json attributes_ = json::object();
    std::vector<std::string> &omitted_;
};

std::string hex16(std::uint16_t value) { return fmt::format("0x{:04x}", value); }

} // namespace

const char *draTypeOf(DeviceKind kind)
{
    switch (kind) {
    case DeviceKind::Passthrough: return "passthrough";
    case DeviceKind::Vgpu: return "mdev";
    case DeviceKind::SriovVgpu: return "sriov-vgpu";
    }
    return "passthrough";
}

std::string unhealthyTaintKey(const std::string &driver) { return driver + "/unhealthy"; }

SliceDevice sliceDevice(const DraDevice &device, const std::string &driver)
{
    const AdvertisedDevice &d = device.device;
    SliceDevice out;
    Attributes attributes(out.omitted);

    attributes.addString("type", draTypeOf(device.kind));
    if (device.resource.size() <= kMaxAttributeValue)
        attributes.addString("resourceName", device.resource);
    else
        out.omitted.push_back(fmt::format("resourceName {} is longer than {} characters, the API's limit: not published",
                                          device.resource, kMaxAttributeValue));
    if (!d.product.empty())
        attributes.addString("productName", cutToAttributeValue(d.product));
    if (d.vendorId != 0)
        attributes.addString("vendorID", hex16(d.vendorId));
    if (d.deviceId != 0)
        attributes.addString("deviceID", hex16(d.deviceId));
    if (device.kind != DeviceKind::Passthrough && !d.profile.empty())
        attributes.addString("profile", cutToAttributeValue(d.profile));
    if (d.iommuGroup >= 0)
        attributes.addInt("iommuGroup", d.iommuGroup);
    if (d.numaNode >= 0)
        attributes.addInt("numaNode", d.numaNode);
    if (device.kind == DeviceKind::Vgpu) {
        attributes.addString("mdevUUID", toLowerAscii(d.id));
    } else if (isPciAddress(d.id)) {
        attributes.addString(kPciBusIdAttribute, toLowerAscii(d.id));
    }
    if (device.kind != DeviceKind::Passthrough && isPciAddress(d.parent))
        attributes.addString("parentPciBusID", toLowerAscii(d.parent));
    if (!d.pciePath.empty() && d.pciePath.front().rfind("pci", 0) == 0 &&
        d.pciePath.front().size() <= kMaxAttributeValue)
        attributes.addString(kPcieRootAttribute, d.pciePath.front());

    out.entry = json{{"name", draDeviceName(device)}, {"attributes", attributes.take()}};
    if (!d.healthy)
        out.entry["taints"] = json::array({json{{"key", unhealthyTaintKey(driver)},
                                                {"value", labelValueOf(d.healthReason)},
                                                {"effect", "NoSchedule"}}});
    return out;
}

json deviceEntry(const DraDevice &device, const std::string &driver) { return sliceDevice(device, driver).entry; }

std::vector<json> splitDevices(std::vector<json> devices)
{
    auto nameOf = [](const json &device) -> std::string {
        auto name = device.find("name");
        return name != device.end() && name->is_string() ? name->get<std::string>() : std::string();
    };
    std::stable_sort(devices.begin(), devices.end(),
                     [&](const json &a, const json &b) { return nameOf(a) < nameOf(b); });
    bool tainted = std::any_of(devices.begin(), devices.end(), [](const json &device) {
        auto taints = device.find("taints");
        return taints != device.end() && taints->is_array() && !taints->empty();
    });
    const std::size_t perSlice = tainted ? kMaxDevicesPerSliceWithTaints : kMaxDevicesPerSlice;

    std::vector<json> slices;
    for (std::size_t start = 0; start < devices.size(); start += perSlice) {
        json chunk = json::array();
        for (std::size_t i = start; i < std::min(devices.size(), start + perSlice); ++i)
            chunk.push_back(std::move(devices[i]));
        slices.push_back(std::move(chunk));
    }
    if (slices.empty())
        slices.push_back(json::array());
    return slices;
}

std::string sliceGenerateName(const std::string &driver, const std::string &nodeName, std::size_t index)
{
    std::string base = fmt::format("{:05x}-{}-{}", index, driver, nodeName);
    // Room for the final '-' and the generated suffix.
    const std::size_t max = kMaxDnsSubdomain - kGeneratedSuffix - 1;
    if (base.size() > max)
        base.resize(max);
    // A cut may end on '.' or '-'; "-." and ".-" are not DNS subdomains.
    while (!base.empty() && (base.back() == '.' || base.back() == '-'))
        base.pop_back();
    return base + "-";
}

json sliceObject(const std::string &driver, const std::string &nodeName, const std::string &nodeUid,
                 const std::string &poolName, std::int64_t generation, std::int64_t sliceCount, std::size_t index,
                 const json &devices)
{
    return json{
        {"apiVersion", "resource.k8s.io/v1"},
        {"kind", "ResourceSlice"},
        {"metadata",
         {{"generateName", sliceGenerateName(driver, nodeName, index)},
          {"ownerReferences",
           json::array({json{{"apiVersion", "v1"},
                             {"kind", "Node"},
                             {"name", nodeName},
                             {"uid", nodeUid},
                             {"controller", true}}})}}},
        {"spec",
         {{"driver", driver},
          {"nodeName", nodeName},
          {"pool", {{"name", poolName}, {"generation", generation}, {"resourceSliceCount", sliceCount}}},
          {"devices", devices}}},
    };
}

} // namespace kvgpu::dra
