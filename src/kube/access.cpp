#include "kube/access.h"

#include "base/regular_file.h"
#include "base/strings.h"

#include <array>
#include <cstdlib>
#include <filesystem>
#include <optional>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

namespace kvgpu::kube {

namespace {

// A kubeconfig holds a few certificates at most; anything larger is not one.
constexpr std::size_t kMaxKubeconfigBytes = 4 << 20;
constexpr std::size_t kMaxSmallFileBytes = 1 << 20;

// Decodes standard base64 (RFC 4648, padding optional, whitespace ignored);
// nullopt when the text holds anything else.
std::optional<std::string> decodeBase64(std::string_view text)
{
    std::array<int, 256> value{};
    value.fill(-1);
    const std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (std::size_t i = 0; i < alphabet.size(); ++i)
        value[static_cast<unsigned char>(alphabet[i])] = static_cast<int>(i);

    std::string out;
    unsigned bits = 0;
    int bitCount = 0;
    bool padding = false;
    for (char c : text) {
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
            continue;
        if (c == '=') {
            padding = true;
            continue;
        }
        int v = value[static_cast<unsigned char>(c)];
        if (v < 0 || padding)
            return std::nullopt;
        bits = (bits << 6) | static_cast<unsigned>(v);
        bitCount += 6;
        if (bitCount >= 8) {
            bitCount -= 8;
            out.push_back(static_cast<char>((bits >> bitCount) & 0xff));
        }
    }
    // Six leftover bits cannot end a valid encoding.
    if (bitCount >= 6)
        return std::nullopt;
    return out;
}

// Reads a kubeconfig's sections for one file, keeping the file's name for
// every message.
class Kubeconfig {
public:
    Kubeconfig(std::string path, YAML::Node root) : path_(std::move(path)), root_(std::move(root)) {}

    Error error(const std::string &what) const { return Error{fmt::format("kubeconfig {}: {}", path_, what)}; }

    // The scalar at `key` of `map`; nullopt when absent or null, an error
    // when present but not a string.
    Result<std::optional<std::string>> scalar(const YAML::Node &map, const char *key, const std::string &where) const
    {
        const YAML::Node node = map[key];
        if (!node || node.IsNull())
            return std::optional<std::string>();
        if (!node.IsScalar())
            return error(fmt::format("{}: {} is not a string", where, key));
        return std::optional<std::string>(node.Scalar());
    }

    // The `field` mapping of the entry of list `section` named `name`.
    Result<YAML::Node> named(const char *section, const char *field, const std::string &name,
                             const std::string &referrer) const
    {
        const YAML::Node list = root_[section];
        if (list && !list.IsNull() && !list.IsSequence())
            return error(fmt::format("{} is not a list", section));
        if (list && list.IsSequence()) {
            for (const YAML::Node &entry : list) {
                if (!entry.IsMap())
                    return error(fmt::format("an entry of {} is not a mapping", section));
                const YAML::Node entryName = entry["name"];
                if (!entryName || !entryName.IsScalar() || entryName.Scalar() != name)
                    continue;
                const YAML::Node body = entry[field];
                if (!body || body.IsNull())
                    return YAML::Node(YAML::NodeType::Map);
                if (!body.IsMap())
                    return error(fmt::format("{} \"{}\": {} is not a mapping", section, name, field));
                return body;
            }
        }
        return error(fmt::format("{} names {} \"{}\", which is not in {}", referrer, field, name, section));
    }

    // A file path as written, made relative to the kubeconfig's directory.
    std::string resolve(const std::string &file) const
    {
        if (file.empty() || file.front() == '/')
            return file;
        std::filesystem::path dir = std::filesystem::path(path_).parent_path();
        return (dir.empty() ? std::filesystem::path(".") : dir).append(file).string();
    }

    // Base64 data at `key`, decoded; empty when absent.
    Result<std::string> data(const YAML::Node &map, const char *key, const std::string &where) const
    {
        Result<std::optional<std::string>> text = scalar(map, key, where);
        if (!text)
            return text.failure();
        if (!*text)
            return std::string();
        std::optional<std::string> decoded = decodeBase64(**text);
        if (!decoded)
            return error(fmt::format("{}: {} is not valid base64", where, key));
        return *decoded;
    }

    const YAML::Node &root() const { return root_; }

private:
    std::string path_;
    YAML::Node root_;
};

Result<ClusterAccess> readKubeconfig(const Kubeconfig &config)
{
    const YAML::Node &root = config.root();
    if (!root.IsMap())
        return config.error("not a kubeconfig: the document is not a mapping");

    Result<std::optional<std::string>> current = config.scalar(root, "current-context", "top level");
    if (!current)
        return current.failure();
    if (!*current || (*current)->empty())
        return config.error("current-context is not set");
    const std::string contextName = **current;

    Result<YAML::Node> context = config.named("contexts", "context", contextName, "current-context");
    if (!context)
        return context.failure();
    const std::string contextWhere = fmt::format("context \"{}\"", contextName);
    Result<std::optional<std::string>> clusterName = config.scalar(*context, "cluster", contextWhere);
    if (!clusterName)
        return clusterName.failure();
    if (!*clusterName || (*clusterName)->empty())
        return config.error(contextWhere + " names no cluster");
    Result<std::optional<std::string>> userName = config.scalar(*context, "user", contextWhere);
    if (!userName)
        return userName.failure();

    Result<YAML::Node> cluster = config.named("clusters", "cluster", **clusterName, contextWhere);
    if (!cluster)
        return cluster.failure();
    const std::string clusterWhere = fmt::format("cluster \"{}\"", **clusterName);

    ClusterAccess access;
    Result<std::optional<std::string>> server = config.scalar(*cluster, "server", clusterWhere);
    if (!server)
        return server.failure();
    if (!*server || (*server)->empty())
        return config.error(clusterWhere + " has no server");
    access.server = std::string(trim(**server));
    while (!access.server.empty() && access.server.back() == '/')
        access.server.pop_back();

    Result<std::optional<std::string>> caFile = config.scalar(*cluster, "certificate-authority", clusterWhere);
    if (!caFile)
        return caFile.failure();
    Result<std::string> caPem = config.data(*cluster, "certificate-authority-data", clusterWhere);
    if (!caPem)
        return caPem.failure();
    access.caPem = *caPem;
    if (access.caPem.empty() && *caFile)
        access.caFile = config.resolve(**caFile);

    Result<std::optional<std::string>> insecure = config.scalar(*cluster, "insecure-skip-tls-verify", clusterWhere);
    if (!insecure)
        return insecure.failure();
    if (*insecure) {
        if (**insecure == "true")
            access.insecure = true;
        else if (**insecure != "false")
            return config.error(fmt::format("{}: insecure-skip-tls-verify is \"{}\", not true or false", clusterWhere,
                                            **insecure));
    }

    // A context without a user connects anonymously, as kubectl does.
    if (!*userName || (*userName)->empty())
        return access;
    Result<YAML::Node> user = config.named("users", "user", **userName, contextWhere);
    if (!user)
        return user.failure();
    const std::string userWhere = fmt::format("user \"{}\"", **userName);
    for (const char *unsupported : {"exec", "auth-provider"}) {
        if ((*user)[unsupported])
            return config.error(fmt::format("{} authenticates with {}, which this plugin does not support; "
                                            "use a token, a token file or a client certificate",
                                            userWhere, unsupported));
    }

    Result<std::optional<std::string>> token = config.scalar(*user, "token", userWhere);
    if (!token)
        return token.failure();
    if (*token)
        access.token = std::string(trim(**token));
    Result<std::optional<std::string>> tokenFile = config.scalar(*user, "tokenFile", userWhere);
    if (!tokenFile)
        return tokenFile.failure();
    if (*tokenFile)
        access.tokenFile = config.resolve(**tokenFile);

    Result<std::optional<std::string>> certFile = config.scalar(*user, "client-certificate", userWhere);
    if (!certFile)
        return certFile.failure();
    Result<std::string> certPem = config.data(*user, "client-certificate-data", userWhere);
    if (!certPem)
        return certPem.failure();
    access.clientCertPem = *certPem;
    if (access.clientCertPem.empty() && *certFile)
        access.clientCertFile = config.resolve(**certFile);

    Result<std::optional<std::string>> keyFile = config.scalar(*user, "client-key", userWhere);
    if (!keyFile)
        return keyFile.failure();
    Result<std::string> keyPem = config.data(*user, "client-key-data", userWhere);
    if (!keyPem)
        return keyPem.failure();
    access.clientKeyPem = *keyPem;
    if (access.clientKeyPem.empty() && *keyFile)
        access.clientKeyFile = config.resolve(**keyFile);

    const bool hasCert = !access.clientCertPem.empty() || !access.clientCertFile.empty();
    const bool hasKey = !access.clientKeyPem.empty() || !access.clientKeyFile.empty();
    if (hasCert != hasKey)
        return config.error(fmt::format("{} has a client {} but no client {}", userWhere,
                                        hasCert ? "certificate" : "key", hasCert ? "key" : "certificate"));
    return access;
}

} // namespace

Result<ClusterAccess> loadKubeconfig(const std::string &path)
{
    Result<std::string> text = readRegularFile(path, kMaxKubeconfigBytes, LastLink::Follow);
    if (!text)
        return Error{fmt::format("kubeconfig {}: {}", path, text.error())};
    YAML::Node root;
    try {
        root = YAML::Load(*text);
    } catch (const YAML::Exception &e) {
        return Error{fmt::format("kubeconfig {}: not valid YAML: {}", path, e.what())};
    }
    try {
        return readKubeconfig(Kubeconfig(path, root));
    } catch (const YAML::Exception &e) {
        // yaml-cpp throws on some malformed shapes (a sequence indexed as a map).
        return Error{fmt::format("kubeconfig {}: malformed: {}", path, e.what())};
    }
}

Result<ClusterAccess> inClusterAccess(const std::map<std::string, std::string> &env,
                                      const std::string &serviceAccountDir)
{
    auto variable = [&](const char *name) -> std::string {
        auto it = env.find(name);
        return it == env.end() ? std::string() : std::string(trim(it->second));
    };
    const std::string host = variable("KUBERNETES_SERVICE_HOST");
    const std::string port = variable("KUBERNETES_SERVICE_PORT");
    if (host.empty() || port.empty())
        return Error{fmt::format("not running in a Pod: {} is not set (use a kubeconfig outside the cluster)",
                                 host.empty() ? "KUBERNETES_SERVICE_HOST" : "KUBERNETES_SERVICE_PORT")};
    if (!parseDecimal(port) || *parseDecimal(port) <= 0 || *parseDecimal(port) > 65535)
        return Error{fmt::format("KUBERNETES_SERVICE_PORT is \"{}\", not a port number", port)};

    ClusterAccess access;
    const bool ipv6 = host.find(':') != std::string::npos && host.front() != '[';
    access.server = fmt::format("https://{}{}{}:{}", ipv6 ? "[" : "", host, ipv6 ? "]" : "", port);
    access.caFile = serviceAccountDir + "/ca.crt";
    access.tokenFile = serviceAccountDir + "/token";
    for (const std::string &file : {access.tokenFile, access.caFile}) {
        Result<std::string> readable = readRegularFile(file, kMaxSmallFileBytes, LastLink::Follow);
        if (!readable)
            return Error{fmt::format("in-cluster service account: {}", readable.error())};
    }
    return access;
}

std::map<std::string, std::string> environmentForInCluster()
{
    std::map<std::string, std::string> env;
    for (const char *name : {"KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"}) {
        if (const char *value = std::getenv(name))
            env[name] = value;
    }
    return env;
}

Result<std::string> inClusterNamespace(const std::string &serviceAccountDir)
{
    const std::string file = serviceAccountDir + "/namespace";
    Result<std::string> text = readRegularFile(file, kMaxSmallFileBytes, LastLink::Follow);
    if (!text)
        return Error{fmt::format("in-cluster service account: {}", text.error())};
    std::string name(trim(*text));
    if (name.empty())
        return Error{fmt::format("in-cluster service account: {} is empty", file)};
    return name;
}

} // namespace kvgpu::kube
