#include "model/resource_name.h"

#include "base/strings.h"

#include <fmt/format.h>

namespace kvgpu {

namespace {

bool isDnsLabel(std::string_view label)
{
    if (label.empty() || label.size() > 63)
        return false;
    auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
    if (!alnum(label.front()) || !alnum(label.back()))
        return false;
    for (char c : label)
        if (!alnum(c) && c != '-')
            return false;
    return true;
}

} // namespace

bool isResourceNameEnd(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

bool isResourceNameChar(char c) { return isResourceNameEnd(c) || c == '-' || c == '_' || c == '.'; }

bool isValidResourceNamePart(std::string_view part)
{
    if (part.empty() || part.size() > kMaxResourceNamePart)
        return false;
    if (!isResourceNameEnd(part.front()) || !isResourceNameEnd(part.back()))
        return false;
    for (char c : part)
        if (!isResourceNameChar(c))
            return false;
    return true;
}

std::string resourceName(std::string_view part) { return fmt::format("{}/{}", kResourceDomain, part); }

Result<ResourceName> parseResourceName(std::string_view name)
{
    size_t slash = name.find('/');
    if (slash == std::string_view::npos || name.find('/', slash + 1) != std::string_view::npos)
        return Error{fmt::format("resource name \"{}\" must be <domain>/<name>, such as nvidia.com/passthrough-gpu",
                                 name)};
    std::string_view domain = name.substr(0, slash);
    std::string_view part = name.substr(slash + 1);
    bool domainOk = !domain.empty() && domain.size() <= 253;
    for (const std::string &label : split(domain, '.'))
        domainOk = domainOk && isDnsLabel(label);
    if (!domainOk)
        return Error{fmt::format("resource name \"{}\": \"{}\" is not a domain name (lower case letters, digits, "
                                 "'-' and '.')", name, domain)};
    if (domain == "kubernetes.io" || domain.ends_with(".kubernetes.io") || domain == "k8s.io" ||
        domain.ends_with(".k8s.io"))
        return Error{fmt::format("resource name \"{}\": the kubelet refuses extended resources in the {} domain",
                                 name, domain)};
    if (!isValidResourceNamePart(part))
        return Error{fmt::format("resource name \"{}\": \"{}\" is not a name the kubelet accepts (1 to 63 letters, "
                                 "digits, '-', '_' or '.', starting and ending with a letter or digit)", name, part)};
    return ResourceName{std::string(domain), std::string(part)};
}

std::string envKey(DeviceKind kind, std::string_view resource)
{
    std::string key = toUpperAscii(resource);
    for (char &c : key)
        if (c == '/' || c == '.')
            c = '_';
    return fmt::format("{}_{}", kind == DeviceKind::Vgpu ? "MDEV_PCI_RESOURCE" : "PCI_RESOURCE", key);
}

std::string socketFileName(std::string_view resource)
{
    return fmt::format("kvgpu-{}.sock", baseName(resource));
}

} // namespace kvgpu
