#!/usr/bin/python3
"""The DRA manifests and examples fit the plugin: the DeviceClasses select the
driver the plugin publishes by default and only attributes and values it
publishes; the DaemonSet patch mounts the kubelet's registry, the driver's
plugin directory and the CDI directory at the host paths the plugin's
defaults name; the RBAC grants exactly what the DRA side uses; every example
VM names a claim whose request exists, through a class that exists."""

import re

from deploy_common import Findings, check_parses, load_documents, objects_of_kind, plugin_binary, run, source_path

f = Findings("dra")
binary = plugin_binary()
help_text = run([binary, "--help"]).stdout


def default_of(flag):
    """The default --help prints for a flag ("--cdi-dir TEXT=/var/run/cdi")."""
    m = re.search(re.escape(flag) + r"\s+[A-Z]+=(\S+)", help_text)
    f.check(m, f"--help shows a default for {flag}")
    return m.group(1) if m else ""


driver = default_of("--dra-driver-name")
registry = default_of("--kubelet-registry-dir")
plugins = default_of("--kubelet-plugins-dir")
cdi = default_of("--cdi-dir")

check_parses(f, ["manifests/dra", "examples/dra"])

# What the plugin publishes (src/dra/slices.h).
ATTRIBUTES = {"type", "resourceName", "productName", "vendorID", "deviceID", "profile", "iommuGroup", "numaNode",
              "mdevUUID", "parentPciBusID"}
TYPES = {"passthrough", "mdev", "sriov-vgpu"}


def check_cel(where, expression, needs_driver):
    if needs_driver:
        f.check(f"device.driver == '{driver}'" in expression, f"{where}: selects driver {driver}")
    for domain, name in re.findall(r"device\.attributes\['([^']+)'\]\.(\w+)", expression):
        f.check(domain == driver, f"{where}: attributes of domain {domain}, not {driver}")
        f.check(name in ATTRIBUTES, f"{where}: attribute {name} is one the plugin publishes")
    for value in re.findall(r"\.type == '([^']+)'", expression):
        f.check(value in TYPES, f"{where}: type '{value}' is one of {sorted(TYPES)}")


classes = {}
for file, dc in objects_of_kind("DeviceClass", ["manifests/dra", "examples/dra"]):
    name = dc["metadata"]["name"]
    classes[name] = dc
    f.check(dc.get("apiVersion") == "resource.k8s.io/v1", f"{file}: {name} is resource.k8s.io/v1")
    for selector in dc.get("spec", {}).get("selectors", []):
        check_cel(f"{file}: {name}", selector.get("cel", {}).get("expression", ""), True)
kinds = {m for dc in classes.values() for s in dc["spec"]["selectors"]
         for m in re.findall(r"\.type == '([^']+)'", s["cel"]["expression"])}
f.check(kinds >= TYPES, f"manifests/dra has a DeviceClass for each kind (has {sorted(kinds)})")

# The DaemonSet patch: host directories at their own paths, as the plugin's defaults name them.
patch = load_documents("manifests/dra/daemonset-dra.yaml")[0]
pod = patch["spec"]["template"]["spec"]
mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0].get("volumeMounts", [])}
volumes = {v["name"]: v.get("hostPath", {}).get("path") for v in pod.get("volumes", [])}
for path in (registry, f"{plugins}/{driver}", cdi):
    names = [n for n, p in mounts.items() if p == path]
    f.check(names, f"daemonset-dra.yaml mounts {path}")
    for n in names:
        f.check(volumes.get(n) == path, f"daemonset-dra.yaml: {path} is the host's own {path}, not {volumes.get(n)}")
f.check(pod.get("automountServiceAccountToken") is True and pod.get("serviceAccountName"),
        "daemonset-dra.yaml gives the pod its service account token")

# RBAC: exactly what the DRA side calls.
roles = objects_of_kind("ClusterRole", ["manifests/dra"])
f.check(len(roles) == 1, "manifests/dra has one ClusterRole")
if roles:
    granted = {(g, r, v) for rule in roles[0][1]["rules"] for g in rule["apiGroups"] for r in rule["resources"]
               for v in rule["verbs"]}
    wanted = {("resource.k8s.io", "resourceslices", v) for v in ("get", "list", "watch", "create", "update", "delete")}
    wanted |= {("resource.k8s.io", "resourceclaims", "get"), ("", "nodes", "get")}
    f.check(granted == wanted, f"the ClusterRole grants exactly {sorted(wanted)} (extra: {sorted(granted - wanted)}, "
                               f"missing: {sorted(wanted - granted)})")
kustomization = load_documents("manifests/dra/kustomization.yaml")[0]
for entry in kustomization.get("resources", []) + [p["path"] for p in kustomization.get("patches", [])]:
    f.check(entry == "../" or load_documents(f"manifests/dra/{entry}"), f"kustomization.yaml: {entry} exists")

# The example VMs: every gpus/hostDevices entry names a claim and a request that exist.
templates = {t["metadata"]["name"]: t for _, t in objects_of_kind("ResourceClaimTemplate", ["examples/dra"])}
vms = objects_of_kind("VirtualMachine", ["examples/dra"])
seen_kinds = set()
for file, vm in vms:
    spec = vm["spec"]["template"]["spec"]
    claims = {c["name"]: c for c in spec.get("resourceClaims", [])}
    devices = spec["domain"]["devices"]
    entries = devices.get("gpus", []) + devices.get("hostDevices", [])
    f.check(entries, f"{file}: the VM asks for a GPU")
    for e in entries:
        f.check("deviceName" not in e, f"{file}: {e.get('name')} uses claimName/requestName, not deviceName")
        claim = claims.get(e.get("claimName"))
        f.check(claim, f"{file}: claim {e.get('claimName')} is in spec.resourceClaims")
        template = templates.get((claim or {}).get("resourceClaimTemplateName"))
        f.check(template, f"{file}: the claim's template is in examples/dra")
        if not template:
            continue
        requests = {r["name"]: r for r in template["spec"]["spec"]["devices"]["requests"]}
        request = requests.get(e.get("requestName"))
        f.check(request, f"{file}: request {e.get('requestName')} is in the template")
        if not request:
            continue
        cls = request["exactly"]["deviceClassName"]
        f.check(cls in classes, f"{file}: DeviceClass {cls} exists in manifests/dra or examples/dra")
        for selector in request["exactly"].get("selectors", []):
            check_cel(f"{file}: request {request['name']}", selector["cel"]["expression"], False)
        for dc_selector in classes.get(cls, {}).get("spec", {}).get("selectors", []):
            seen_kinds |= set(re.findall(r"\.type == '([^']+)'", dc_selector["cel"]["expression"]))
f.check(seen_kinds == TYPES, f"examples/dra has a VM for each kind (has {sorted(seen_kinds)})")

f.finish()
