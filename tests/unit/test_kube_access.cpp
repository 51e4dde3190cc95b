#include "kube/access.h"

#include "temp_tree.h"

#include <doctest/doctest.h>

using namespace kvgpu;
using namespace kvgpu::kube;
using kvgpu::test::TempTree;

namespace {

// A kubeconfig with one context "dev" on cluster "lab" as user "admin"; the
// cluster's and the user's fields are the caller's.
std::string kubeconfig(const std::string &clusterFields, const std::string &userFields,
                       const std::string &currentContext = "dev")
{
    return "apiVersion: v1\n"
           "kind: Config\n"
           "current-context: " + currentContext + "\n"
           "contexts:\n"
           "- name: other\n"
           "  context: {cluster: elsewhere, user: nobody}\n"
           "- name: dev\n"
           "  context:\n"
           "    cluster: lab\n"
           "    user: admin\n"
           "clusters:\n"
           "- name: elsewhere\n"
           "  cluster: {server: 'https://10.9.9.9:6443'}\n"
           "- name: lab\n"
           "  cluster:\n"
           "    server: https://api.lab.example:6443/\n" +
           clusterFields +
           "users:\n"
           "- name: admin\n"
           "  user:\n" +
           userFields;
}

} // namespace

TEST_CASE("the current context's cluster and token are what a kubeconfig with a token yields")
{
    TempTree tree;
    tree.write("kubeconfig", kubeconfig("    certificate-authority: /etc/lab/ca.crt\n", "    token: abc.def\n"));
    Result<ClusterAccess> access = loadKubeconfig(tree.path("kubeconfig"));
    REQUIRE_MESSAGE(access.ok(), access.error());
    CHECK(access->server == "https://api.lab.example:6443");
    CHECK(access->caFile == "/etc/lab/ca.crt");
    CHECK(access->caPem.empty());
    CHECK_FALSE(access->insecure);
    CHECK(access->token == "abc.def");
    CHECK(access->tokenFile.empty());
    CHECK(access->clientCertFile.empty());
    CHECK(access->clientCertPem.empty());
}

TEST_CASE("relative file paths are taken from the kubeconfig's directory")
{
    TempTree tree;
    tree.write("conf/kubeconfig", kubeconfig("    certificate-authority: pki/ca.crt\n",
                                             "    tokenFile: secrets/token\n"
                                             "    client-certificate: pki/admin.crt\n"
                                             "    client-key: /abs/admin.key\n"));
    Result<ClusterAccess> access = loadKubeconfig(tree.path("conf/kubeconfig"));
    REQUIRE_MESSAGE(access.ok(), access.error());
    CHECK(access->caFile == tree.path("conf/pki/ca.crt"));
    CHECK(access->tokenFile == tree.path("conf/secrets/token"));
    CHECK(access->clientCertFile == tree.path("conf/pki/admin.crt"));
    CHECK(access->clientKeyFile == "/abs/admin.key");
}

TEST_CASE("inline certificate data is decoded from base64 and wins over a file of the same role")
{
    TempTree tree;
    // "CA PEM\n", "CERT PEM" and "KEY PEM!" in base64, the first wrapped over two lines.
    tree.write("kubeconfig", kubeconfig("    certificate-authority: ca.crt\n"
                                        "    certificate-authority-data: Q0EgUE\n      VNCg==\n",
                                        "    client-certificate-data: Q0VSVCBQRU0=\n"
                                        "    client-key: admin.key\n"
                                        "    client-key-data: S0VZIFBFTSE\n"));
    Result<ClusterAccess> access = loadKubeconfig(tree.path("kubeconfig"));
    REQUIRE_MESSAGE(access.ok(), access.error());
    CHECK(access->caPem == "CA PEM\n");
    CHECK(access->caFile.empty());
    CHECK(access->clientCertPem == "CERT PEM");
    CHECK(access->clientKeyPem == "KEY PEM!");
    CHECK(access->clientKeyFile.empty());
    CHECK(access->token.empty());
}

TEST_CASE("insecure-skip-tls-verify is read as a boolean")
{
    TempTree tree;
    tree.write("yes", kubeconfig("    insecure-skip-tls-verify: true\n", "    token: t\n"));
    tree.write("no", kubeconfig("    insecure-skip-tls-verify: false\n", "    token: t\n"));
    tree.write("bad", kubeconfig("    insecure-skip-tls-verify: maybe\n", "    token: t\n"));
    CHECK(loadKubeconfig(tree.path("yes"))->insecure);
    CHECK_FALSE(loadKubeconfig(tree.path("no"))->insecure);
    Result<ClusterAccess> bad = loadKubeconfig(tree.path("bad"));
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error() == "kubeconfig " + tree.path("bad") +
                             ": cluster \"lab\": insecure-skip-tls-verify is \"maybe\", not true or false");
}

TEST_CASE("a missing context, cluster or user is an error naming the file and what is missing")
{
    TempTree tree;
    tree.write("no-context", kubeconfig("", "    token: t\n", "prod"));
    Result<ClusterAccess> noContext = loadKubeconfig(tree.path("no-context"));
    REQUIRE_FALSE(noContext.ok());
    CHECK(noContext.error() == "kubeconfig " + tree.path("no-context") +
                                   ": current-context names context \"prod\", which is not in contexts");

    tree.write("no-cluster", "current-context: a\n"
                             "contexts: [{name: a, context: {cluster: b, user: u}}]\n"
                             "clusters: [{name: c, cluster: {server: 'https://x'}}]\n"
                             "users: [{name: u, user: {token: t}}]\n");
    Result<ClusterAccess> noCluster = loadKubeconfig(tree.path("no-cluster"));
    REQUIRE_FALSE(noCluster.ok());
    CHECK(noCluster.error() == "kubeconfig " + tree.path("no-cluster") +
                                   ": context \"a\" names cluster \"b\", which is not in clusters");

    tree.write("no-user", "current-context: a\n"
                          "contexts: [{name: a, context: {cluster: c, user: v}}]\n"
                          "clusters: [{name: c, cluster: {server: 'https://x'}}]\n"
                          "users: [{name: u, user: {token: t}}]\n");
    Result<ClusterAccess> noUser = loadKubeconfig(tree.path("no-user"));
    REQUIRE_FALSE(noUser.ok());
    CHECK(noUser.error() == "kubeconfig " + tree.path("no-user") +
                                ": context \"a\" names user \"v\", which is not in users");

    tree.write("no-current", "contexts: []\n");
    CHECK(loadKubeconfig(tree.path("no-current")).error() ==
          "kubeconfig " + tree.path("no-current") + ": current-context is not set");

    tree.write("no-server", "current-context: a\n"
                            "contexts: [{name: a, context: {cluster: c}}]\n"
                            "clusters: [{name: c, cluster: {certificate-authority: ca.crt}}]\n");
    CHECK(loadKubeconfig(tree.path("no-server")).error() ==
          "kubeconfig " + tree.path("no-server") + ": cluster \"c\" has no server");
}

TEST_CASE("a context without a user connects anonymously")
{
    TempTree tree;
    tree.write("kubeconfig", "current-context: a\n"
                             "contexts: [{name: a, context: {cluster: c}}]\n"
                             "clusters: [{name: c, cluster: {server: 'https://x:1'}}]\n");
    Result<ClusterAccess> access = loadKubeconfig(tree.path("kubeconfig"));
    REQUIRE_MESSAGE(access.ok(), access.error());
    CHECK(access->server == "https://x:1");
    CHECK(access->token.empty());
    CHECK(access->tokenFile.empty());
}

TEST_CASE("credentials this client cannot use are refused with what to use instead")
{
    TempTree tree;
    tree.write("exec", kubeconfig("", "    exec:\n      command: aws\n"));
    CHECK(loadKubeconfig(tree.path("exec")).error() ==
          "kubeconfig " + tree.path("exec") +
              ": user \"admin\" authenticates with exec, which this plugin does not support; "
              "use a token, a token file or a client certificate");
    tree.write("half-cert", kubeconfig("", "    client-certificate: admin.crt\n"));
    CHECK(loadKubeconfig(tree.path("half-cert")).error() ==
          "kubeconfig " + tree.path("half-cert") + ": user \"admin\" has a client certificate but no client key");
    tree.write("bad-base64", kubeconfig("    certificate-authority-data: 'not base64!'\n", ""));
    CHECK(loadKubeconfig(tree.path("bad-base64")).error() ==
          "kubeconfig " + tree.path("bad-base64") + ": cluster \"lab\": certificate-authority-data is not valid base64");
}

TEST_CASE("garbage is an error naming the file, never a crash")
{
    TempTree tree;
    const std::string prefix = "kubeconfig " + tree.path("k") + ": ";
    struct Case {
        const char *text;
        const char *error;
    };
    for (const Case &c : std::initializer_list<Case>{
             {"current-context: [unclosed\n", "not valid YAML: "},
             {"- just\n- a list\n", "not a kubeconfig: the document is not a mapping"},
             {"", "not a kubeconfig: the document is not a mapping"},
             {"current-context: {a: b}\n", "top level: current-context is not a string"},
             {"current-context: a\ncontexts: {a: b}\n", "contexts is not a list"},
             {"current-context: a\ncontexts: [plain]\n", "an entry of contexts is not a mapping"},
             {"current-context: a\ncontexts: [{name: a, context: [1]}]\n", "contexts \"a\": context is not a mapping"},
             {"current-context: a\ncontexts: [{name: a, context: {cluster: [x]}}]\n",
              "context \"a\": cluster is not a string"},
             {"current-context: a\ncontexts: [{name: a, context: {}}]\n", "context \"a\" names no cluster"},
         }) {
        CAPTURE(c.text);
        tree.write("k", c.text);
        Result<ClusterAccess> access = loadKubeconfig(tree.path("k"));
        REQUIRE_FALSE(access.ok());
        CHECK(access.error().rfind(prefix + c.error, 0) == 0);
    }
    Result<ClusterAccess> missing = loadKubeconfig(tree.path("absent"));
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.error().rfind("kubeconfig " + tree.path("absent") + ": ", 0) == 0);
}

TEST_CASE("in a Pod the server comes from the environment and the credentials from the service-account mount")
{
    TempTree tree;
    tree.write("sa/token", "tok\n");
    tree.write("sa/ca.crt", "PEM\n");
    tree.write("sa/namespace", "gpu-system\n");
    Result<ClusterAccess> access =
        inClusterAccess({{"KUBERNETES_SERVICE_HOST", "10.96.0.1"}, {"KUBERNETES_SERVICE_PORT", "443"}}, tree.path("sa"));
    REQUIRE_MESSAGE(access.ok(), access.error());
    CHECK(access->server == "https://10.96.0.1:443");
    CHECK(access->caFile == tree.path("sa/ca.crt"));
    CHECK(access->tokenFile == tree.path("sa/token"));
    CHECK(access->token.empty());
    CHECK(*inClusterNamespace(tree.path("sa")) == "gpu-system");

    Result<ClusterAccess> ipv6 =
        inClusterAccess({{"KUBERNETES_SERVICE_HOST", "fd00:10:96::1"}, {"KUBERNETES_SERVICE_PORT", "6443"}}, tree.path("sa"));
    REQUIRE_MESSAGE(ipv6.ok(), ipv6.error());
    CHECK(ipv6->server == "https://[fd00:10:96::1]:6443");
}

TEST_CASE("outside a Pod, or with the mount incomplete, in-cluster access says what is missing")
{
    TempTree tree;
    tree.write("sa/ca.crt", "PEM\n");
    CHECK(inClusterAccess({{"KUBERNETES_SERVICE_PORT", "443"}}, tree.path("sa")).error() ==
          "not running in a Pod: KUBERNETES_SERVICE_HOST is not set (use a kubeconfig outside the cluster)");
    CHECK(inClusterAccess({{"KUBERNETES_SERVICE_HOST", "10.96.0.1"}}, tree.path("sa")).error() ==
          "not running in a Pod: KUBERNETES_SERVICE_PORT is not set (use a kubeconfig outside the cluster)");
    CHECK(inClusterAccess({{"KUBERNETES_SERVICE_HOST", "10.96.0.1"}, {"KUBERNETES_SERVICE_PORT", "https"}},
                          tree.path("sa"))
              .error() == "KUBERNETES_SERVICE_PORT is \"https\", not a port number");

    Result<ClusterAccess> noToken =
        inClusterAccess({{"KUBERNETES_SERVICE_HOST", "10.96.0.1"}, {"KUBERNETES_SERVICE_PORT", "443"}}, tree.path("sa"));
    REQUIRE_FALSE(noToken.ok());
    CHECK(noToken.error().find(tree.path("sa/token")) != std::string::npos);
    Result<std::string> noNamespace = inClusterNamespace(tree.path("sa"));
    REQUIRE_FALSE(noNamespace.ok());
    CHECK(noNamespace.error().find(tree.path("sa/namespace")) != std::string::npos);
}
