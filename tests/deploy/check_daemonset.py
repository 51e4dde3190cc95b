#!/usr/bin/python3
"""The DaemonSet in manifests/ is what a real cluster needs, least-privileged,
and consistent with the binary: every flag it passes exists, and the host
paths those flags point at are mounted."""

import os
import re
import tempfile

from deploy_common import (Findings, check_parses, load_documents, meson_project, objects_of_kind, plugin_binary,
                           run, source_path, yaml_files)

KUBELET_PLUGIN_DIR = "/var/lib/kubelet/device-plugins"

f = Findings("daemonset")
binary = plugin_binary()


def quantity(value, unit_table):
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value))
    if not match or match.group(2) not in unit_table:
        return None
    return float(match.group(1)) * unit_table[match.group(2)]


def cpu(value):
    return quantity(value, {"": 1.0, "m": 0.001})


def memory(value):
    return quantity(value, {"": 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 1e3, "M": 1e6, "G": 1e9})


def covers(mount_path, path):
    mount_path = mount_path.rstrip("/") or "/"
    return path == mount_path or path.startswith(mount_path.rstrip("/") + "/")


# --- the objects --------------------------------------------------------------
check_parses(f, ["manifests"])
daemonsets = objects_of_kind("DaemonSet", ["manifests"])
namespaces = objects_of_kind("Namespace", ["manifests"])
f.check(len(daemonsets) == 1, f"manifests/ holds exactly one DaemonSet (found {len(daemonsets)})")
f.check(len(namespaces) == 1, f"manifests/ holds exactly one Namespace (found {len(namespaces)})")
if len(daemonsets) != 1 or len(namespaces) != 1:
    f.finish()
ds_file, ds = daemonsets[0]
ns_file, ns = namespaces[0]
ns_name = ns["metadata"]["name"]

f.check(ds.get("apiVersion") == "apps/v1", f"{ds_file}: apiVersion apps/v1")
f.check(ns_name == "kubevirt-gpu-device-plugin", f"{ns_file}: the namespace is kubevirt-gpu-device-plugin")
f.check(ds["metadata"].get("namespace") == ns_name, f"{ds_file}: the DaemonSet is in namespace {ns_name}")
# hostPath volumes are allowed only at the "privileged" Pod Security level.
f.check(ns["metadata"].get("labels", {}).get("pod-security.kubernetes.io/enforce") == "privileged",
        f"{ns_file}: pod-security.kubernetes.io/enforce=privileged (hostPath volumes need it)")

spec = ds["spec"]
template = spec["template"]
pod = template["spec"]
selector = spec.get("selector", {}).get("matchLabels", {})
labels = template.get("metadata", {}).get("labels", {})
f.check(selector and all(labels.get(k) == v for k, v in selector.items()),
        f"{ds_file}: selector.matchLabels {selector} match the template labels {labels}")

strategy = spec.get("updateStrategy", {})
f.check(strategy.get("type") == "RollingUpdate" and strategy.get("rollingUpdate", {}).get("maxUnavailable") == 1,
        f"{ds_file}: updateStrategy RollingUpdate with maxUnavailable 1")

# --- scheduling -----------------------------------------------------------------
f.check(pod.get("priorityClassName") == "system-node-critical", f"{ds_file}: priorityClassName system-node-critical")
tolerations = pod.get("tolerations", [])


def tolerates(key, effect=None):
    return any(t.get("key") == key and t.get("operator") == "Exists" and (effect is None or t.get("effect") == effect)
               for t in tolerations)


f.check(tolerates("CriticalAddonsOnly"), f"{ds_file}: tolerates CriticalAddonsOnly (operator Exists)")
f.check(tolerates("nvidia.com/gpu", "NoSchedule"), f"{ds_file}: tolerates nvidia.com/gpu (Exists, NoSchedule)")
with open(source_path(ds_file), encoding="utf-8") as text:
    raw = text.read()
f.check(re.search(r"#.*nvidia\.com/gpu\.workload\.config", raw) and "vm-passthrough" in raw and "vm-vgpu" in raw,
        f"{ds_file}: a commented node selection on nvidia.com/gpu.workload.config (vm-passthrough / vm-vgpu)")

# --- least privilege --------------------------------------------------------------
for field in ("hostNetwork", "hostPID", "hostIPC"):
    f.check(not pod.get(field), f"{ds_file}: {field} is not set")
f.check(pod.get("automountServiceAccountToken") is False,
        f"{ds_file}: automountServiceAccountToken false (the plugin never calls the API server)")

containers = pod.get("containers", [])
f.check(len(containers) == 1, f"{ds_file}: one container")
container = containers[0]
sc = container.get("securityContext", {})
pod_sc = pod.get("securityContext", {})
f.check(sc.get("runAsUser") == 0 and sc.get("runAsNonRoot") is False, f"{ds_file}: runAsUser 0, runAsNonRoot false")
f.check(sc.get("allowPrivilegeEscalation") is False, f"{ds_file}: allowPrivilegeEscalation false")
f.check(sc.get("readOnlyRootFilesystem") is True, f"{ds_file}: readOnlyRootFilesystem true")
f.check(not sc.get("privileged"), f"{ds_file}: not privileged")
caps = sc.get("capabilities", {})
f.check(caps.get("drop") == ["ALL"] and not caps.get("add"), f"{ds_file}: capabilities drop ALL and add none")
seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {}))
f.check(seccomp.get("type") == "RuntimeDefault", f"{ds_file}: seccompProfile RuntimeDefault")

resources = container.get("resources", {})
for kind in ("cpu", "memory"):
    parse = cpu if kind == "cpu" else memory
    request = parse(resources.get("requests", {}).get(kind))
    limit = parse(resources.get("limits", {}).get(kind))
    if f.check(request is not None and limit is not None, f"{ds_file}: {kind} request and limit are set"):
        f.check(0 < request <= limit, f"{ds_file}: {kind} request {request} is positive and within the limit {limit}")
f.check((memory(resources.get("limits", {}).get("memory")) or 1e18) <= 256 * 2**20,
        f"{ds_file}: the memory limit is small (at most 256Mi)")
f.check((cpu(resources.get("limits", {}).get("cpu")) or 1e18) <= 0.5,
        f"{ds_file}: the CPU limit is small (at most 500m)")

# --- the image ------------------------------------------------------------------------
version, _ = meson_project()
image = container.get("image", "")
f.check(image == f"kubevirt-gpu-device-plugin:{version}",
        f"{ds_file}: image {image!r} is the name the README's build one-liner gives "
        f"(kubevirt-gpu-device-plugin:{version})")
kustomizations = [p for p in yaml_files("manifests")
                  if os.path.basename(p) in ("kustomization.yaml", "kustomization.yml")]
if kustomizations:
    kustomization = load_documents(kustomizations[0])[0]
    listed = set(kustomization.get("resources", []))
    others = {os.path.basename(p) for p in yaml_files("manifests")} - {os.path.basename(kustomizations[0])}
    f.check(listed == others,
            f"{kustomizations[0]}: resources {sorted(listed)} are every other manifest {sorted(others)}")
    for entry in kustomization.get("images", []):
        f.check(entry.get("name") == image.split(":")[0] and entry.get("newTag", version) == version,
                f"{kustomizations[0]}: images entry {entry} refers to the DaemonSet's image at version {version}")

# --- flags: every one exists, and the binary accepts the exact argument list ------------
args = list(container.get("command", [])[1:]) + list(container.get("args", []))
help_text = run([binary, "--help"]).stdout
known = {}
for line in help_text.splitlines():
    match = re.match(r"^\s*(?:-\w,)?(--[\w-]+)(?:\s+[A-Z]+(?::[^=]*)?=(\S+))?", line)
    if match:
        known[match.group(1)] = match.group(2)
f.check("--plugin-dir" in known and "--dev-root" in known, "the binary's --help lists its flags")

given = {}
i = 0
while i < len(args):
    arg = args[i]
    if not f.check(arg.startswith("--"), f"{ds_file}: argument {arg!r} is a --flag"):
        i += 1
        continue
    name, eq, value = arg.partition("=")
    if not eq and i + 1 < len(args) and not args[i + 1].startswith("--"):
        value = args[i + 1]
        i += 1
    f.check(name in known, f"{ds_file}: flag {name} appears in `kubevirt-gpu-device-plugin --help`")
    given[name] = value
    i += 1

# The configuration file --config names comes from a ConfigMap of manifests/.
configmaps = {doc["metadata"]["name"]: doc for _, doc in objects_of_kind("ConfigMap", ["manifests"])}


def configmap_file(path):
    """The text a ConfigMap volume mounted over `path` puts there, or None."""
    for m in container.get("volumeMounts", []):
        volume = {v["name"]: v for v in pod.get("volumes", [])}.get(m["name"], {})
        if "configMap" in volume and covers(m["mountPath"], path) and not m.get("subPath"):
            key = path[len(m["mountPath"].rstrip("/")) + 1:]
            return configmaps.get(volume["configMap"]["name"], {}).get("data", {}).get(key)
    return None


# `list` parses the same flags (it falls through to the top-level ones), then
# scans once and exits: a value the binary refuses fails here, and so does a
# configuration the binary refuses. It scans an empty tree unless the
# DaemonSet names a sysfs root itself.
with tempfile.TemporaryDirectory(prefix="kvgpu-deploy-") as empty:
    os.makedirs(os.path.join(empty, "bus/pci/devices"))
    scan = [] if "--sysfs-root" in given else ["--sysfs-root", empty]
    listed_args = list(args)
    if "--config" in given:
        text = configmap_file(given["--config"])
        if f.check(text is not None, f"{ds_file}: --config {given['--config']} is a key of a ConfigMap mounted as a "
                                     "directory (no subPath: updates must reach the pod)"):
            local = os.path.join(empty, "config.yaml")
            with open(local, "w", encoding="utf-8") as out:
                out.write(text)
            listed_args = [a.replace(given["--config"], local) if a.startswith("--config") or a == given["--config"]
                           else a for a in args]
    accepted = run([binary] + listed_args + ["list", "--json"] + scan, timeout=60)
f.check(accepted.returncode == 0,
        f"the binary accepts the DaemonSet's arguments {args}: exit {accepted.returncode}: {accepted.stderr.strip()}")


def effective(flag):
    return given.get(flag, known.get(flag))


# --- mounts cover every path the flags point at -----------------------------------
volumes = {v["name"]: v for v in pod.get("volumes", [])}
mounts = container.get("volumeMounts", [])
for m in mounts:
    f.check(m["name"] in volumes, f"{ds_file}: volumeMount {m['name']} has a volume")
for name, volume in volumes.items():
    f.check(any(m["name"] == name for m in mounts), f"{ds_file}: volume {name} is mounted")


def host_mount_for(path):
    """(mount, hostPath) of the deepest hostPath mount covering `path`."""
    best = None
    for m in mounts:
        volume = volumes.get(m["name"], {})
        if "hostPath" in volume and covers(m["mountPath"], path):
            if best is None or len(m["mountPath"]) > len(best[0]["mountPath"]):
                best = (m, volume["hostPath"])
    return best


plugin_dir = effective("--plugin-dir")
found = host_mount_for(plugin_dir)
if f.check(found, f"{ds_file}: --plugin-dir {plugin_dir} is on a hostPath mount"):
    m, host = found
    host_path = host["path"].rstrip("/") + plugin_dir[len(m["mountPath"].rstrip("/")):]
    f.check(host_path == KUBELET_PLUGIN_DIR, f"{ds_file}: --plugin-dir {plugin_dir} is the host's {KUBELET_PLUGIN_DIR}")
    f.check(not m.get("readOnly"), f"{ds_file}: the plugin directory is writable (the plugin serves sockets there)")
    f.check(host.get("type") == "Directory",
            f"{ds_file}: the plugin directory is hostPath type Directory (a wrong kubelet path fails visibly)")

# The plugin reads device nodes under --dev-root, which must be the host's
# whole /dev mounted read-only somewhere other than the container's own /dev
# (Allocate names nodes by their host path, /dev/..., whatever --dev-root is).
dev_root = effective("--dev-root")
found = host_mount_for(dev_root)
if f.check(found, f"{ds_file}: --dev-root {dev_root} is on a hostPath mount"):
    m, host = found
    f.check(m["mountPath"].rstrip("/") == dev_root.rstrip("/") and host["path"].rstrip("/") == "/dev",
            f"{ds_file}: the host's /dev is mounted at --dev-root {dev_root}")
    f.check(m.get("readOnly") is True, f"{ds_file}: the host's /dev is mounted read-only")
    f.check(m["mountPath"].rstrip("/") != "/dev", f"{ds_file}: the host's /dev does not replace the container's /dev")

# What that mount makes the plugin see: a host /dev with iommufd, a VFIO cdev
# and an EGM node, laid out where the manifest's hostPath mounts would put it,
# read by the binary with the manifest's own flags.
with tempfile.TemporaryDirectory(prefix="kvgpu-deploy-") as root:
    def in_container(path):
        """Where `path` (inside the container) lands in the fake host under root."""
        found = host_mount_for(path)
        if not found:
            return os.path.join(root, "container" + path)
        m, host = found
        return os.path.join(root, "host" + host["path"].rstrip("/") + path[len(m["mountPath"].rstrip("/")):])

    host_dev = os.path.join(root, "host/dev")
    for node in ("iommu", "vfio/vfio", "vfio/devices/vfio0", "vfio/devices/vfio1", "egm4"):
        os.makedirs(os.path.dirname(os.path.join(host_dev, node)), exist_ok=True)
        open(os.path.join(host_dev, node), "w").close()
    sys_root = os.path.join(root, "sys")
    os.makedirs(os.path.join(sys_root, "bus/pci/devices"))
    os.makedirs(os.path.join(sys_root, "class/egm/egm4"))
    with open(os.path.join(sys_root, "class/egm/egm4/gpu_devices"), "w") as gpus:
        gpus.write("0009:01:00.0\n")
    # The configuration is checked above with the ConfigMap's own text.
    mapped = [a for a in args if not a.startswith(("--dev-root", "--state-dir", "--plugin-dir", "--config"))]
    seen = run([binary] + mapped + ["list", "--sysfs-root", sys_root, "--dev-root", in_container(dev_root)], timeout=60)
    f.check(seen.returncode == 0, f"list with the manifest's flags runs: {seen.stderr.strip()}")
    f.check("iommu present (2 vfio/devices cdevs)" in seen.stdout,
            f"{ds_file}: through the manifest's mounts the plugin finds /dev/iommu and /dev/vfio/devices/*: "
            f"{seen.stdout.strip()[-300:]}")
    f.check(re.search(r"egm4 +0009:01:00\.0 +/dev/egm4", seen.stdout) is not None,
            f"{ds_file}: through the manifest's mounts the plugin finds /dev/egm4")

state_dir = effective("--state-dir")
if state_dir:
    found = host_mount_for(state_dir)
    f.check(found and not found[0].get("readOnly"), f"{ds_file}: --state-dir {state_dir} is a writable hostPath mount")

# The runtime mounts the host kernel's sysfs read-only at /sys in every
# container; another root needs a mount, and a host /sys mount must be read-only.
sysfs_root = effective("--sysfs-root")
found = host_mount_for(sysfs_root)
if sysfs_root.rstrip("/") != "/sys":
    f.check(found, f"{ds_file}: --sysfs-root {sysfs_root} is on a hostPath mount")
if found:
    f.check(found[0].get("readOnly") is True, f"{ds_file}: the sysfs mount at {found[0]['mountPath']} is read-only")

pci_ids = effective("--pci-ids")
owner = run(["dpkg", "-S", pci_ids])
f.check(host_mount_for(pci_ids) or (owner.returncode == 0 and owner.stdout.startswith("pci.ids:")),
        f"{ds_file}: --pci-ids {pci_ids} is in the image (package pci.ids) or mounted")

# --- probes ---------------------------------------------------------------------------
probe_port = effective("--probe-port")
f.check(probe_port not in (None, "0"), f"{ds_file}: the probe port is enabled (--probe-port {probe_port})")
for kind, service in (("livenessProbe", "liveness"), ("readinessProbe", "readiness")):
    probe = container.get(kind, {})
    grpc = probe.get("grpc", {})
    f.check(grpc.get("service") == service, f"{ds_file}: {kind} is a gRPC probe of service {service!r}")
    f.check(str(grpc.get("port")) == str(probe_port),
            f"{ds_file}: {kind} port {grpc.get('port')} is --probe-port {probe_port}")
    f.check(isinstance(probe.get("periodSeconds"), int) and 1 <= probe["periodSeconds"] <= 60,
            f"{ds_file}: {kind} has a sensible periodSeconds")
    f.check(isinstance(probe.get("timeoutSeconds"), int) and probe["timeoutSeconds"] >= 2,
            f"{ds_file}: {kind} timeoutSeconds leaves room for the liveness check's one second")
ports = [p.get("containerPort") for p in container.get("ports", [])]
f.check(str(probe_port) in [str(p) for p in ports], f"{ds_file}: containerPort {probe_port} is declared")

# --- metrics and the node name --------------------------------------------------------
metrics_port = effective("--metrics-port")
if metrics_port not in (None, "0"):
    named = {str(p.get("containerPort")): p.get("name") for p in container.get("ports", [])}
    f.check(named.get(str(metrics_port)) == "metrics",
            f"{ds_file}: --metrics-port {metrics_port} is declared as the container port named 'metrics'")
env = {e["name"]: e for e in container.get("env", [])}
node_name = env.get("NODE_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
f.check(node_name == "spec.nodeName", f"{ds_file}: NODE_NAME comes from the downward API (spec.nodeName)")

f.finish()
