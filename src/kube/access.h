// How to reach the Kubernetes API server: its address, how to trust it and
// how to authenticate to it, read from a kubeconfig file (for running outside
// the cluster, and for tests) or from a Pod's service-account mount.
// Client (kube/client.h) takes a ClusterAccess and does the talking.
//
// Thread safety: free functions with no shared state; reentrant.
// ClusterAccess is a plain value type.
#pragma once

#include "base/result.h"

#include <map>
#include <string>

namespace kvgpu::kube {

// Where a Pod finds its service-account token, CA bundle and namespace.
inline constexpr const char *kServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";

// Everything Client needs to connect. A PEM blob, when set, wins over the file
// of the same role; tokenFile, when set, wins over token and is re-read by the
// client whenever it changes (the kubelet rotates projected tokens).
struct ClusterAccess {
    std::string server; // "https://host:port", no trailing slash
    std::string caFile;
    std::string caPem;
    bool insecure = false; // skip verifying the server's certificate
    std::string token;
    std::string tokenFile;
    std::string clientCertFile;
    std::string clientKeyFile;
    std::string clientCertPem;
    std::string clientKeyPem;
};

// The cluster and user of the current context of the kubeconfig at `path`.
// Understands certificate-authority(-data), insecure-skip-tls-verify,
// client-certificate(-data), client-key(-data), token and tokenFile; relative
// file paths are relative to the kubeconfig's directory. A user that needs an
// exec plugin or an auth provider is refused. Every error names the file and
// what is missing or wrong ("kubeconfig /x: context \"a\" names cluster \"b\",
// which is not in clusters").
Result<ClusterAccess> loadKubeconfig(const std::string &path);

// The access a Pod has: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT
// (an IPv6 host in brackets), the CA bundle `ca.crt` and the token file
// `token` of `serviceAccountDir`. `env` holds at least those two variables
// (environmentForInCluster() reads them from the process). An error says
// which variable or file is missing.
Result<ClusterAccess> inClusterAccess(const std::map<std::string, std::string> &env,
                                      const std::string &serviceAccountDir = kServiceAccountDir);

// KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT of this process, those
// that are set.
std::map<std::string, std::string> environmentForInCluster();

// The Pod's namespace from the `namespace` file of `serviceAccountDir`, trimmed.
Result<std::string> inClusterNamespace(const std::string &serviceAccountDir = kServiceAccountDir);

} // namespace kvgpu::kube
