// The shared vocabulary (src/model): how devices are named on a node, the
// kinds of device and their spellings, and which resource names the kubelet
// takes. The sysfs readers, the vGPU name book, EGM and the configuration all
// check names through these, so an edge here is an edge everywhere.
#include "config/config_parser.h"
#include "model/device_address.h"
#include "model/device_kind.h"
#include "model/resource_name.h"

#include <doctest/doctest.h>

using namespace kvgpu;

TEST_CASE("PCI addresses and UUIDs are recognised exactly")
{
    CHECK(isPciAddress("0000:65:00.0"));
    CHECK(isPciAddress("ABCD:ff:1f.7"));
    CHECK_FALSE(isPciAddress("65:00.0"));
    CHECK_FALSE(isPciAddress("0000:65:00.0 "));
    CHECK_FALSE(isPciAddress("g000:65:00.0"));
    CHECK_FALSE(isPciAddress("0000-65:00.0"));
    CHECK(isUuid("aa618089-8b16-4d01-a136-25a0f3c73123"));
    CHECK(isUuid("AA618089-8B16-4D01-A136-25A0F3C73123"));
    CHECK_FALSE(isUuid("aa618089-8b16-4d01-a136-25a0f3c7312"));
    CHECK_FALSE(isUuid("aa618089x8b16-4d01-a136-25a0f3c73123"));
    CHECK_FALSE(isUuid("zz618089-8b16-4d01-a136-25a0f3c73123"));
    CHECK_FALSE(isUuid("0000:65:00.0"));
}

TEST_CASE("a PCI function is 0 to 7: 8 and up are no address, in sysfs or in the configuration")
{
    for (char function : std::string("01234567"))
        CHECK(isPciAddress(std::string("0000:65:00.") + function));
    for (char function : std::string("89abcdefABCDEF"))
        CHECK_FALSE(isPciAddress(std::string("0000:65:00.") + function));

    auto addressRule = [](const std::string &address) {
        return parseResourceConfig("version: 1\nresources:\n  - exclude: true\n    match: {addresses: [\"" + address +
                                   "\"]}\n");
    };
    CHECK(addressRule("0000:3b:00.7").ok());
    CHECK(addressRule("0000:3B:00.7").ok());
    for (const std::string address : {"0000:3b:00.8", "0000:3b:00.f", "0000:3B:00.F"}) {
        Result<ResourceConfig, ConfigError> refused = addressRule(address);
        REQUIRE_FALSE(refused.ok());
        CHECK_MESSAGE(refused.error().find("is neither a PCI address with its domain") != std::string::npos,
                      refused.error());
    }
}

TEST_CASE("each kind has one word, read back as the same kind; other words are no kind")
{
    for (DeviceKind kind : {DeviceKind::Passthrough, DeviceKind::Vgpu, DeviceKind::SriovVgpu})
        CHECK(deviceKindOfWord(deviceKindWord(kind)) == kind);
    CHECK(std::string(deviceKindWord(DeviceKind::SriovVgpu)) == "sriov-vgpu");
    CHECK(std::string(deviceKindName(DeviceKind::SriovVgpu)) == "SR-IOV vGPU");
    CHECK_FALSE(deviceKindOfWord("vGPU"));
    CHECK_FALSE(deviceKindOfWord("gpu"));
    CHECK_FALSE(deviceKindOfWord(""));
    CHECK(deviceKindWords() == "passthrough, vgpu, sriov-vgpu");
}

TEST_CASE("a resource name is split into its domain and its part, or refused with the reason")
{
    Result<ResourceName> name = parseResourceName("example.com/passthrough-gpu");
    REQUIRE(name.ok());
    CHECK(name->domain == "example.com");
    CHECK(name->part == "passthrough-gpu");
    CHECK(parseResourceName("nvidia.com/" + std::string(63, 'A')).ok());
    CHECK(parseResourceName("nvidia.com/" + std::string(64, 'A')).error().find("is not a name the kubelet accepts") !=
          std::string::npos);
    CHECK(parseResourceName("nvidia.com/a/b").error().find("must be <domain>/<name>") != std::string::npos);
    CHECK(parseResourceName("gpu.k8s.io/x").error().find("refuses extended resources in the gpu.k8s.io domain") !=
          std::string::npos);
}
