"""The plugin's DRA side against a real Kubernetes, one story per process:
`dra_stories.py <story>`. Each story starts its own bench (bench.py), applies
manifests/dra/'s DeviceClasses and RBAC, and runs the plugin with a
ServiceAccount token bound to that RBAC (least privilege), the configuration
offering devices through DRA, and a CDI directory the test reads.

Timings printed with "figure:" are information, never asserted.
"""

import fnmatch
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import (DRA_ALL, DRA_DRIVER, WAIT, StoryFailure, log, run_story)  # noqa: E402

DRV = DRA_DRIVER
PASSTHROUGH_CLASS = "passthrough." + DRV
MDEV_CLASS = "mdev." + DRV
A100 = "nvidia.com/GA100_A100_PCIE_40GB"
L4_1Q_UUID = "aa618089-8b16-4d01-a136-25a0f3c73123"
L4_1Q_DEVICE = "mdev-" + L4_1Q_UUID
A100_DEVICE = "pci-0000-ca-00-0"
PCI_BUS_ID = "resource.kubernetes.io/pciBusID"
PCIE_ROOT = "resource.kubernetes.io/pcieRoot"
METADATA_BASE = "/var/run/kubernetes.io/dra-device-attributes"
METADATA_API = "metadata.resource.k8s.io/v1alpha1"
RESOURCE_API = "/apis/resource.k8s.io/v1/namespaces/default"
CDICHECK = os.path.join(os.environ.get("KVGPU_GO_CACHE", "/var/cache/kvgpu-go"), "bin", "cdicheck")

with open(os.path.join(os.environ["KVGPU_SOURCE_ROOT"], "tests", "support", "node", "demo-node.conf")) as _f:
    DEMO_NODE = _f.read()


def check(cond, msg):
    if not cond:
        raise StoryFailure(msg)


def assert_no_refusals(bench):
    """The plugin, with only rbac.yaml's rights, was refused nothing by the
    API server (its errors name the HTTP status)."""
    bench.assert_plugin_running()
    for run in range(1, bench.plugin_runs + 1):
        path = os.path.join(bench.work, f"plugin.{run}.log")
        with open(path) as f:
            refused = [l.strip() for l in f if "HTTP 403" in l or "HTTP 401" in l]
        check(not refused, f"the API server refused the plugin (run {run}): {refused[:3]}")


# -- what the slices should say ----------------------------------------------
def dra_name(kind, ident):
    """The plugin's DRA device name (src/dra/device_names.h)."""
    if kind == "mdev":
        return "mdev-" + ident.lower()
    return "pci-" + re.sub("[^a-z0-9]", "-", ident.lower())


def attr(device, key):
    """The value of a slice device's attribute (unqualified = our domain)."""
    value = (device.get("attributes") or {}).get(key)
    return None if value is None else next(iter(value.values()))


def pcie_root(bench, sysfs_path):
    """The PCIe root of a device, as the kernel's links say: the first
    component under devices/ ("pci0000:64")."""
    real = os.path.realpath(os.path.join(bench.node.sysfs_root, sysfs_path))
    return real.split("/devices/", 1)[1].split("/")[0]


def expected_devices(bench, config_text=DRA_ALL):
    """{DRA device name: attributes} for every device `list --json` shows as
    advertised through DRA, with the attributes the slices must carry."""
    listing = bench.list_json(config_text)
    kinds = {r["name"]: r["kind"] for r in listing["resources"]}
    out = {}
    for d in listing["devices"]:
        if not d["resource"] or d["api"] != "dra":
            continue
        kind = {"vgpu": "mdev"}.get(kinds[d["resource"]], kinds[d["resource"]])
        a = {"type": kind, "resourceName": d["resource"], "iommuGroup": d["iommuGroup"]}
        if d["numaNode"] is not None:
            a["numaNode"] = d["numaNode"]
        if kind == "mdev":
            a["mdevUUID"] = d["id"]
            a[PCIE_ROOT] = pcie_root(bench, f"bus/mdev/devices/{d['id']}")
        else:
            a[PCI_BUS_ID] = d["id"]
            a[PCIE_ROOT] = pcie_root(bench, f"bus/pci/devices/{d['id']}")
        if kind != "passthrough":
            a["profile"] = d["model"]
        a["healthy"] = d["health"] == "Healthy"
        out[dra_name(kind, d["id"])] = a
    return out


def mismatches(devices, expected):
    """What differs between published slice devices and expected_devices."""
    out = []
    if set(devices) != set(expected):
        out.append(f"devices {sorted(devices)} != expected {sorted(expected)}")
    for name in sorted(set(devices) & set(expected)):
        dev, want = devices[name], expected[name]
        for key, value in want.items():
            if key == "healthy":
                if bool(dev.get("taints")) == value:
                    out.append(f"{name}: taints {dev.get('taints')} for a device list calls "
                               f"{'healthy' if value else 'unhealthy'}")
            elif attr(dev, key) != value:
                out.append(f"{name}: attribute {key} = {attr(dev, key)!r}, expected {value!r}")
        if want["type"] == "mdev" and attr(dev, PCI_BUS_ID) is not None:
            out.append(f"{name}: an mdev with {PCI_BUS_ID}")
        if want["type"] != "mdev" and attr(dev, "mdevUUID") is not None:
            out.append(f"{name}: a PCI function with mdevUUID")
        if want["type"] == "passthrough" and attr(dev, "profile") is not None:
            out.append(f"{name}: a passthrough GPU with a profile")
    return out


def start_dra(bench, node_text=DEMO_NODE, config_text=DRA_ALL):
    """The simulated node and the plugin with DRA; returns (node, the
    expected devices, seconds from start to the slices published)."""
    node = bench.start_node(node_text)
    bench.setup_dra()
    expected = expected_devices(bench, config_text)
    t0 = bench.start_dra_plugin(config_text)
    bench.wait_slices(lambda devs: set(devs) == set(expected), "every device list shows via DRA")
    return node, expected, time.monotonic() - t0


def unhealthy_taint(device):
    for t in device.get("taints") or []:
        if t.get("key") == DRV + "/unhealthy" and t.get("effect") == "NoSchedule":
            return t
    return None


# -- claims and pods -------------------------------------------------------------
def request_spec(name, device_class, cel=None):
    exactly = {"deviceClassName": device_class, "allocationMode": "ExactCount", "count": 1}
    if cel:
        exactly["selectors"] = [{"cel": {"expression": cel}}]
    return {"name": name, "exactly": exactly}


def our_attr(name):
    return f"device.attributes['{DRV}'].{name}"


def create_template(bench, name, request):
    bench.api.create(f"{RESOURCE_API}/resourceclaimtemplates", {
        "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaimTemplate",
        "metadata": {"name": name}, "spec": {"spec": {"devices": {"requests": [request]}}}})


def create_claim(bench, name, request):
    bench.api.create(f"{RESOURCE_API}/resourceclaims", {
        "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
        "metadata": {"name": name}, "spec": {"devices": {"requests": [request]}}})


def create_claim_pod(bench, pod, pod_claim, request, template=None, claim=None):
    source = {"resourceClaimTemplateName": template} if template else {"resourceClaimName": claim}
    bench.create_pod(pod, {}, resource_claims=[{"name": pod_claim, **source}],
                     container_claims=[{"name": pod_claim, "request": request}])


def claim_of(bench, pod, pod_claim):
    """The ResourceClaim a pod's claim resolved to (generated or named)."""
    p = bench.api.get(f"/api/v1/namespaces/default/pods/{pod}")
    for rc in p["spec"].get("resourceClaims") or []:
        if rc["name"] == pod_claim and rc.get("resourceClaimName"):
            return bench.api.get(f"{RESOURCE_API}/resourceclaims/{rc['resourceClaimName']}")
    for st in p.get("status", {}).get("resourceClaimStatuses") or []:
        if st["name"] == pod_claim:
            return bench.api.get(f"{RESOURCE_API}/resourceclaims/{st['resourceClaimName']}")
    raise StoryFailure(f"pod {pod} has no ResourceClaim for {pod_claim}: {p.get('status')}")


def allocated(claim):
    results = (((claim.get("status") or {}).get("allocation") or {}).get("devices") or {}).get("results") or []
    return [(r["request"], r["driver"], r["pool"], r["device"]) for r in results]


def only_record(bench, pod):
    recs = bench.container_records(pod)
    check(len(recs) == 1, f"pod {pod}: expected one CreateContainer of 'compute', the fake CRI saw {len(recs)}")
    return recs[0]


def resolve_cdi(bench, ids):
    """The CDI ids resolved against --cdi-dir by the CDI reference library
    (tests/cluster/cdicheck): {"devices": {id: {deviceNodes, mounts, env}},
    "specs": [files], "errors": [...]}."""
    check(os.access(CDICHECK, os.X_OK), f"{CDICHECK} is missing (scripts/cluster.sh build builds it)")
    r = subprocess.run([CDICHECK, "--spec-dir", bench.cdi_dir, *ids], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    check(r.returncode == 0, f"cdicheck failed ({r.returncode}): {r.stderr}{r.stdout}")
    return json.loads(r.stdout)


def spec_files(bench):
    return sorted(f for f in os.listdir(bench.cdi_dir) if not f.startswith("."))


def read_metadata_stream(text):
    """The objects of a metadata.json (a stream of JSON documents)."""
    dec, objs, i = json.JSONDecoder(), [], 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return objs
        obj, i = dec.raw_decode(text, i)
        objs.append(obj)


def virt_launcher_metadata(bench, mounts, kind_dir, claim_dir, request):
    """What KubeVirt's virt-launcher reads: glob
    <base>/<kind_dir>/<claim_dir>/<request>/*-metadata.json among the
    container's mounts (container path -> host path), exactly one match; the
    first object of apiVersion v1alpha1; its request named `request`, with
    exactly one device. Returns (host path, that device)."""
    directory = f"{METADATA_BASE}/{kind_dir}/{claim_dir}/{request}"
    pattern = directory + "/*-metadata.json"
    matches = [c for c in mounts
               if os.path.dirname(c) == directory and fnmatch.fnmatch(os.path.basename(c), "*-metadata.json")]
    check(len(matches) == 1, f"{pattern} matches {matches} among the container's mounts {sorted(mounts)}")
    host = mounts[matches[0]]
    with open(bench.host_path(host)) as f:
        objs = read_metadata_stream(f.read())
    docs = [o for o in objs if o.get("apiVersion") == METADATA_API]
    check(docs, f"{host} holds no {METADATA_API} object: {objs}")
    reqs = [r for r in docs[0].get("requests") or [] if r.get("name") == request]
    check(len(reqs) == 1 and len(reqs[0].get("devices") or []) == 1,
          f"{host}: request {request} with exactly one device expected, got {docs[0].get('requests')}")
    return host, reqs[0]["devices"][0], docs[0]


def wait_gone(bench, paths, what, timeout=WAIT):
    """Waits until none of `paths` exists (the kubelet's unprepare is
    asynchronous to the pod's deletion; nothing announces it but the files)."""
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p in paths if os.path.exists(p)]
        if not left:
            return
        if time.monotonic() > deadline:
            raise StoryFailure(f"timed out waiting for {what}: {left} still there")
        time.sleep(0.05)


def delete_pod_and_wait_gone(bench, pod):
    bench.api.delete(f"/api/v1/namespaces/default/pods/{pod}")
    bench.api.watch_collection_until("/api/v1/namespaces/default/pods", lambda objs: pod not in objs, WAIT,
                                     f"pod {pod} deleted", selector=f"metadata.name={pod}")


# -- 1 ---------------------------------------------------------------------------
def story_slices(bench):
    """The node's ResourceSlices hold exactly what `list` shows via DRA, with
    the attributes a claim selects on; they follow a vGPU created, a VF given
    a profile and a vGPU removed."""
    node, expected, took = start_dra(bench)
    log(f"figure: plugin start -> slices published: {took:.2f} s")
    kinds = {a["type"] for a in expected.values()}
    check({"passthrough", "mdev", "sriov-vgpu"} <= kinds, f"the demo node offers {kinds} via DRA")
    devices = bench.wait_slices(lambda devs: True, "the slices as published")
    bad = mismatches(devices, expected)
    check(not bad, "the slices differ from list --json:\n  " + "\n  ".join(bad))
    slices = bench.api.get(f"{bench.slice_collection()}?fieldSelector="
                           f"{urllib.parse.quote(bench.dra_slice_selector())}")["items"]
    for s in slices:
        owners = s["metadata"].get("ownerReferences") or []
        check(any(o["kind"] == "Node" and o["name"] == bench.node_name and o.get("controller") for o in owners),
              f"slice {s['metadata']['name']} is not owned by the Node: {owners}")

    # A vGPU created through sysfs.
    new = str(uuid.uuid4())
    create = os.path.join(node.sysfs_root, "bus/pci/devices/0000:e1:00.0/mdev_supported_types/nvidia-592/create")
    t0 = time.monotonic()
    with open(create, "w") as f:
        f.write(new + "\n")
    devices = bench.wait_slices(lambda devs: "mdev-" + new in devs, f"the new vGPU {new}")
    log(f"figure: vGPU created (write to create) -> slice entry (watch): {time.monotonic() - t0:.2f} s")
    expected = expected_devices(bench)
    check("mdev-" + new in expected, f"list does not show the new vGPU {new}")
    bad = mismatches(devices, expected)
    check(not bad, "after the vGPU's creation:\n  " + "\n  ".join(bad))
    check(attr(devices["mdev-" + new], "profile") == "NVIDIA L4-1Q", f"new vGPU: {devices['mdev-' + new]}")

    # A VF given a profile (no uevent: the plugin's profile watch sees it).
    vf = os.path.join(node.sysfs_root, "bus/pci/devices/0000:41:00.7/nvidia/current_vgpu_type")
    t0 = time.monotonic()
    with open(vf, "w") as f:
        f.write("1414\n")
    devices = bench.wait_slices(lambda devs: "pci-0000-41-00-7" in devs, "the VF 0000:41:00.7 with its profile")
    log(f"figure: VF profile written -> slice entry (watch): {time.monotonic() - t0:.2f} s")
    vfdev = devices["pci-0000-41-00-7"]
    check(attr(vfdev, "type") == "sriov-vgpu" and attr(vfdev, "profile") == "NVIDIA H200X-1-18C"
          and attr(vfdev, PCI_BUS_ID) == "0000:41:00.7" and attr(vfdev, "parentPciBusID") == "0000:41:00.0",
          f"the VF's entry: {vfdev}")
    bad = mismatches(devices, expected_devices(bench))
    check(not bad, "after the VF's profile:\n  " + "\n  ".join(bad))

    # The vGPU removed.
    t0 = time.monotonic()
    with open(os.path.join(node.sysfs_root, f"bus/mdev/devices/{new}/remove"), "w") as f:
        f.write("1\n")
    devices = bench.wait_slices(lambda devs: "mdev-" + new not in devs, f"the vGPU {new} gone")
    log(f"figure: vGPU removed -> slice entry gone (watch): {time.monotonic() - t0:.2f} s")
    bad = mismatches(devices, expected_devices(bench))
    check(not bad, "after the vGPU's removal:\n  " + "\n  ".join(bad))
    assert_no_refusals(bench)


# -- 2 ---------------------------------------------------------------------------
def claim_story(bench, direct):
    """A virt-launcher-shaped pod with a claim (from a template, or named
    directly) runs with our CDI devices; the CDI specs resolve through the CDI
    library to exactly the device nodes; virt-launcher's metadata lookup
    finds the device; deleting the pod unprepares (files gone)."""
    start_dra(bench)
    if direct:
        pod, pod_claim, request, claim_name = "launcher-a100", "gpu-claim", "gpu", "a100"
        create_claim(bench, claim_name, request_spec(request, PASSTHROUGH_CLASS,
                                                     f"{our_attr('resourceName')} == '{A100}'"))
        create_claim_pod(bench, pod, pod_claim, request, claim=claim_name)
        want_device, want_groups = A100_DEVICE, [40]
        kind_dir, claim_dir = "resourceclaims", claim_name
    else:
        pod, pod_claim, request = "launcher-vgpu", "gpu-claim", "vgpu"
        create_template(bench, "l4-1q", request_spec(request, MDEV_CLASS, f"{our_attr('profile')} == 'NVIDIA L4-1Q'"))
        create_claim_pod(bench, pod, pod_claim, request, template="l4-1q")
        want_device, want_groups = L4_1Q_DEVICE, [51]
        kind_dir, claim_dir = "resourceclaimtemplates", pod_claim
    t0 = time.monotonic()
    bench.wait_pod_running(pod)
    log(f"figure: pod created -> Running (schedule, allocate, prepare): {time.monotonic() - t0:.2f} s")

    claim = claim_of(bench, pod, pod_claim)
    uid = claim["metadata"]["uid"]
    check(allocated(claim) == [(request, DRV, bench.node_name, want_device)],
          f"claim {claim['metadata']['name']} allocated {allocated(claim)}, expected {want_device}")
    rec = only_record(bench, pod)
    vm_gpu = f"{DRV}/vm-gpu={uid}-{want_device}"
    metadata_id = f"{DRV}/metadata={uid}_{request}"
    check(sorted(rec["cdi_devices"]) == sorted([vm_gpu, metadata_id]),
          f"the compute container's CDI devices: {rec['cdi_devices']}, expected {[vm_gpu, metadata_id]}")
    check(not rec["devices"], f"device nodes outside CDI: {rec['devices']}")
    files = spec_files(bench)
    check(files == sorted([f"{DRV}-vm-gpu_{uid}.json", f"{DRV}_metadata_{uid}_{request}.json"]),
          f"CDI dir holds {files}")

    resolved = resolve_cdi(bench, rec["cdi_devices"])
    check(not resolved["errors"], f"the CDI library refused specs: {resolved['errors']}")
    nodes = sorted((n["path"], n.get("hostPath") or n["path"]) for n in resolved["devices"][vm_gpu]["deviceNodes"])
    want_nodes = sorted([("/dev/vfio/vfio", "/dev/vfio/vfio")] + [(f"/dev/vfio/{g}", f"/dev/vfio/{g}")
                                                                 for g in want_groups])
    check(nodes == want_nodes, f"{vm_gpu} resolves to device nodes {nodes}, expected {want_nodes}")
    check(not resolved["devices"][vm_gpu]["mounts"], f"{vm_gpu} mounts: {resolved['devices'][vm_gpu]['mounts']}")
    meta_edits = resolved["devices"][metadata_id]
    check(not meta_edits["deviceNodes"] and len(meta_edits["mounts"]) == 1, f"{metadata_id}: {meta_edits}")
    check(sorted(meta_edits["mounts"][0].get("options") or []) == ["bind", "ro"],
          f"the metadata mount is not read-only: {meta_edits['mounts'][0]}")

    # The container's mounts as the runtime makes them: the CRI's plus the CDI edits.
    mounts = {m["container_path"]: m["host_path"] for m in rec["mounts"]}
    for dev in resolved["devices"].values():
        for m in dev["mounts"]:
            mounts[m["containerPath"]] = m["hostPath"]
    host, device, doc = virt_launcher_metadata(bench, mounts, kind_dir, claim_dir, request)
    log(f"the compute container's CDI devices {rec['cdi_devices']} resolve to device nodes {nodes} and "
        f"mounts {meta_edits['mounts']}; virt-launcher's metadata device: {device}")
    check(device.get("driver") == DRV and device.get("pool") == bench.node_name and device.get("name") == want_device,
          f"metadata device {device}")
    check(doc["metadata"].get("uid") == uid, f"metadata names claim uid {doc['metadata'].get('uid')}, not {uid}")
    if direct:
        check(device["attributes"] == {PCI_BUS_ID: {"string": "0000:ca:00.0"}},
              f"metadata attributes {device['attributes']}: virt-launcher wants pciBusID alone")
        check("podClaimName" not in doc, f"a directly named claim's metadata has podClaimName: {doc}")
    else:
        check(device["attributes"] == {"mdevUUID": {"string": L4_1Q_UUID}},
              f"metadata attributes {device['attributes']}: virt-launcher wants mdevUUID alone")
        check(doc.get("podClaimName") == pod_claim, f"podClaimName {doc.get('podClaimName')}")

    # Unprepare: the kubelet calls it once the pod's containers are gone.
    t0 = time.monotonic()
    bench.api.delete(f"/api/v1/namespaces/default/pods/{pod}")
    wait_gone(bench, [os.path.join(bench.cdi_dir, f) for f in files] + [bench.host_path(host)],
              "the CDI specs and the metadata file removed at unprepare")
    log(f"figure: pod deleted -> CDI specs and metadata gone: {time.monotonic() - t0:.2f} s")
    assert_no_refusals(bench)


def story_claim_template(bench):
    claim_story(bench, direct=False)


def story_claim_direct(bench):
    claim_story(bench, direct=True)


# -- 3 ---------------------------------------------------------------------------
def story_health(bench):
    """A held device turns unhealthy: its slice entry is tainted NoSchedule,
    the holding pod's allocatedResourcesStatus says Unhealthy, and once it is
    free no new claim gets it; recovery lifts the taint and the waiting claim
    gets it."""
    node, _, _ = start_dra(bench)
    a100_cel = f"{our_attr('resourceName')} == '{A100}'"
    create_template(bench, "a100", request_spec("gpu", PASSTHROUGH_CLASS, a100_cel))
    create_claim_pod(bench, "holder", "gpu-claim", "gpu", template="a100")
    bench.wait_pod_running("holder")
    held = claim_of(bench, "holder", "gpu-claim")
    check(allocated(held) == [("gpu", DRV, bench.node_name, A100_DEVICE)], f"holder got {allocated(held)}")

    def health(pod):
        for cs in pod.get("status", {}).get("containerStatuses") or []:
            for res in cs.get("allocatedResourcesStatus") or []:
                if res.get("name", "").startswith("claim:gpu-claim"):
                    return [r.get("health") for r in res.get("resources", [])]
        return []

    t0 = time.monotonic()
    node.command("delete-vfio-node 40")
    devices = bench.wait_slices(lambda devs: A100_DEVICE in devs and unhealthy_taint(devs[A100_DEVICE]),
                                "the A100 tainted unhealthy")
    log(f"figure: /dev/vfio/40 deleted -> NoSchedule taint in the slice (watch): {time.monotonic() - t0:.2f} s")
    taint = unhealthy_taint(devices[A100_DEVICE])
    check(re.fullmatch(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?", taint.get("value", "x")) is not None,
          f"taint value {taint}")
    bench.wait_pod("holder", lambda p: health(p) == ["Unhealthy"],
                   "allocatedResourcesStatus shows the claim's device Unhealthy")
    log(f"figure: /dev/vfio/40 deleted -> pod status Unhealthy: {time.monotonic() - t0:.2f} s")

    # The A100 freed while tainted: a new claim for it is not allocated.
    bench.api.delete(f"/api/v1/namespaces/default/pods/holder")
    held_name = held["metadata"]["name"]
    bench.api.watch_collection_until(f"{RESOURCE_API}/resourceclaims", lambda objs: held_name not in objs, WAIT,
                                     f"the holder's claim {held_name} deleted with its pod",
                                     selector=f"metadata.name={held_name}")
    create_claim_pod(bench, "waiter", "gpu-claim", "gpu", template="a100")

    def unschedulable(p):
        return any(c["type"] == "PodScheduled" and c["status"] == "False" and c.get("reason") == "Unschedulable"
                   for c in p.get("status", {}).get("conditions") or [])
    p = bench.wait_pod("waiter", unschedulable, "Unschedulable: the only A100 is tainted")
    check(not p["spec"].get("nodeName"), "waiter was bound")
    waiting = claim_of(bench, "waiter", "gpu-claim")
    check(allocated(waiting) == [], f"the waiter's claim was allocated {allocated(waiting)} despite the taint")

    t0 = time.monotonic()
    node.command("create-vfio-node 40")
    bench.wait_slices(lambda devs: A100_DEVICE in devs and not devs[A100_DEVICE].get("taints"),
                      "the A100's taint lifted")
    log(f"figure: /dev/vfio/40 back -> taint lifted (watch): {time.monotonic() - t0:.2f} s")
    bench.wait_pod_running("waiter")
    log(f"figure: /dev/vfio/40 back -> waiting pod Running: {time.monotonic() - t0:.2f} s")
    check(allocated(claim_of(bench, "waiter", "gpu-claim")) == [("gpu", DRV, bench.node_name, A100_DEVICE)],
          "the waiter did not get the A100")
    assert_no_refusals(bench)


# -- 4 ---------------------------------------------------------------------------
def prepared_files(bench, pod, request):
    """The CDI spec files and the metadata host file of a running pod's claim."""
    claim = claim_of(bench, pod, "gpu-claim")
    uid = claim["metadata"]["uid"]
    specs = [os.path.join(bench.cdi_dir, f"{DRV}-vm-gpu_{uid}.json"),
             os.path.join(bench.cdi_dir, f"{DRV}_metadata_{uid}_{request}.json")]
    for s in specs:
        check(os.path.exists(s), f"{s} missing for the running pod {pod}")
    with open(specs[1]) as f:
        meta_host = json.load(f)["devices"][0]["containerEdits"]["mounts"][0]["hostPath"]
    check(os.path.exists(bench.host_path(meta_host)), f"metadata file {meta_host} missing")
    return specs + [bench.host_path(meta_host)]


def story_restarts(bench):
    """Plugin restart with a claim prepared: unprepare still cleans up.
    Kubelet restart: the kubelet wipes the node's slices, ours come back, and
    a pod prepared before it is unprepared after it."""
    start_dra(bench)
    create_template(bench, "l4-1q", request_spec("vgpu", MDEV_CLASS, f"{our_attr('profile')} == 'NVIDIA L4-1Q'"))
    create_claim_pod(bench, "before-restart", "gpu-claim", "vgpu", template="l4-1q")
    bench.wait_pod_running("before-restart")
    files = prepared_files(bench, "before-restart", "vgpu")

    rc = bench.stop_plugin()
    check(rc == 0, f"the plugin exited with {rc} on SIGTERM")
    check(all(os.path.exists(f) for f in files), "a prepared claim's files went with the plugin's stop")
    t0 = bench.start_dra_plugin()
    bench.wait_slices(lambda devs: L4_1Q_DEVICE in devs, "the slices after the plugin's restart")
    bench.api.delete("/api/v1/namespaces/default/pods/before-restart")
    wait_gone(bench, files, "the files of a claim prepared before the plugin's restart")
    log(f"figure: plugin restart -> pod deleted and its claim unprepared: {time.monotonic() - t0:.2f} s")

    # A claim prepared by this run, then the kubelet restarts.
    create_claim_pod(bench, "across-kubelet", "gpu-claim", "vgpu", template="l4-1q")
    bench.wait_pod_running("across-kubelet")
    files = prepared_files(bench, "across-kubelet", "vgpu")
    before = bench.api.get(f"{bench.slice_collection()}?fieldSelector="
                           f"{urllib.parse.quote(bench.dra_slice_selector())}")["items"]
    old_uids = {s["metadata"]["uid"] for s in before}
    check(old_uids, "no slices before the kubelet restart")
    want = set(bench.wait_slices(lambda devs: True, "the slices before the kubelet restart"))
    t0 = time.monotonic()
    bench.cluster("restart-kubelet")
    seen = {}

    def republished(objects):
        uids = {o["metadata"]["uid"] for o in objects.values()}
        seen["uids"] = uids
        return bool(uids) and not (uids & old_uids)

    bench.api.watch_collection_until(bench.slice_collection(), republished, WAIT,
                                     "the slices wiped by the kubelet's start and published anew",
                                     selector=bench.dra_slice_selector())
    devices = bench.wait_slices(lambda devs: set(devs) == want, "every device published again")
    log(f"figure: kubelet restart -> slices published anew: {time.monotonic() - t0:.2f} s")
    check(set(devices) == want, f"after the kubelet restart {sorted(devices)} != {sorted(want)}")
    pod = bench.api.get("/api/v1/namespaces/default/pods/across-kubelet")
    check(pod["status"]["phase"] == "Running", f"across-kubelet is {pod['status']['phase']}")
    # Deleted only once the restarted kubelet has the pod from the API server
    # (its log is written anew): a pod deleted before that is an orphan to it,
    # torn down without unprepare, which only its 60 s reconcile loop catches.
    deadline = time.monotonic() + WAIT
    while True:
        with open(os.path.join(bench.logs, "kubelet.log")) as f:
            if any("SyncLoop ADD" in line and "default/across-kubelet" in line for line in f):
                break
        if time.monotonic() > deadline:
            raise StoryFailure("the restarted kubelet never added the pod across-kubelet")
        time.sleep(0.05)
    t0 = time.monotonic()
    bench.api.delete("/api/v1/namespaces/default/pods/across-kubelet")
    wait_gone(bench, files, "the files of a claim prepared before the kubelet's restart")
    log(f"figure: kubelet restart, then pod deleted -> its claim unprepared: {time.monotonic() - t0:.2f} s")
    assert_no_refusals(bench)


# -- 5 ---------------------------------------------------------------------------
A100_ON_DEVICE_PLUGIN = f"""version: 1
api: dra
resources:
  - name: {A100}
    api: device-plugin
    match: {{ addresses: ["0000:ca:00.0"] }}
"""


class FirstChange(threading.Thread):
    """Watches a collection from a resourceVersion taken before a change and
    records the resourceVersion of the first event after which
    predicate(objects) holds (a single etcd: resourceVersions are ordered)."""

    def __init__(self, api, collection, selector, predicate):
        super().__init__(daemon=True)
        self.api, self.collection, self.selector, self.predicate = api, collection, selector, predicate
        q = urllib.parse.quote(selector)
        listed = api.get(f"{collection}?fieldSelector={q}")
        self.objects = {o["metadata"]["name"]: o for o in listed["items"]}
        self.rv = listed["metadata"]["resourceVersion"]
        self.result = None
        self.error = None

    def run(self):
        q = urllib.parse.quote(self.selector)
        url = (f"{self.collection}?fieldSelector={q}&watch=1&resourceVersion={self.rv}"
               f"&timeoutSeconds={int(WAIT)}&allowWatchBookmarks=false")
        try:
            with self.api._open(url, WAIT + 5) as stream:
                for line in stream:
                    event = json.loads(line)
                    if event["type"] == "ERROR":
                        self.error = f"watch error: {event['object']}"
                        return
                    name = event["object"]["metadata"]["name"]
                    if event["type"] == "DELETED":
                        self.objects.pop(name, None)
                    else:
                        self.objects[name] = event["object"]
                    if self.predicate(self.objects):
                        self.result = (int(event["object"]["metadata"]["resourceVersion"]), time.monotonic())
                        return
        except Exception as e:  # reported by the story
            self.error = repr(e)

    def wait(self, what):
        self.join(WAIT + 10)
        if self.result is None:
            raise StoryFailure(f"timed out waiting for {what} ({self.error or 'no such event'})")
        return self.result


def story_move(bench):
    """A reload moves the A100 from DRA to the device plugin API: its slice
    entry goes no later than the node's allocatable shows it; and back."""
    start_dra(bench)
    node_obj = bench.api.get(f"/api/v1/nodes/{bench.node_name}")
    check(int(node_obj["status"].get("allocatable", {}).get(A100, "0")) == 0,
          "the A100 is allocatable through the device plugin while offered via DRA")
    want_dp = bench.list_resources(A100_ON_DEVICE_PLUGIN)
    check(want_dp.get(A100) == 1, f"list with the A100 rule shows {want_dp}")

    def a100_in_slices(present):
        def pred(objects):
            devs = published_devices_of(objects)
            return devs is not None and (A100_DEVICE in devs) == present
        return pred

    def allocatable_a100(n):
        def pred(objects):
            node = objects.get(bench.node_name)
            return node is not None and int(node["status"].get("allocatable", {}).get(A100, "0")) == n
        return pred

    slices = FirstChange(bench.api, bench.slice_collection(), bench.dra_slice_selector(), a100_in_slices(False))
    nodes = FirstChange(bench.api, "/api/v1/nodes", f"metadata.name={bench.node_name}", allocatable_a100(1))
    slices.start()
    nodes.start()
    t0 = time.monotonic()
    bench.write_config(A100_ON_DEVICE_PLUGIN)
    slice_rv, slice_t = slices.wait("the A100's slice entry withdrawn")
    node_rv, node_t = nodes.wait("the A100 in the node's allocatable")
    log(f"figure: config reload -> A100 out of the slices: {slice_t - t0:.2f} s, "
        f"in allocatable: {node_t - t0:.2f} s")
    check(slice_rv < node_rv, f"the node showed the A100 allocatable (resourceVersion {node_rv}) before its slice "
          f"entry was withdrawn ({slice_rv}): offered by both APIs at once")
    devices = bench.wait_slices(lambda devs: True, "the slices after the move")
    check(A100_DEVICE not in devices and L4_1Q_DEVICE in devices, f"slices after the move: {sorted(devices)}")

    # And back to DRA.
    slices = FirstChange(bench.api, bench.slice_collection(), bench.dra_slice_selector(), a100_in_slices(True))
    nodes = FirstChange(bench.api, "/api/v1/nodes", f"metadata.name={bench.node_name}", allocatable_a100(0))
    slices.start()
    nodes.start()
    t0 = time.monotonic()
    bench.write_config(DRA_ALL)
    _, slice_t = slices.wait("the A100's slice entry back")
    _, node_t = nodes.wait("the A100 out of the node's allocatable")
    log(f"figure: config reload back -> A100 in the slices: {slice_t - t0:.2f} s, "
        f"out of allocatable: {node_t - t0:.2f} s")
    devices = bench.wait_slices(lambda devs: True, "the slices after the move back")
    bad = mismatches(devices, expected_devices(bench))
    check(not bad, "after the move back:\n  " + "\n  ".join(bad))
    assert_no_refusals(bench)


def published_devices_of(objects):
    from bench import published_devices
    return published_devices(objects.values())


# -- 4, continued -------------------------------------------------------------------
SPLIT_CONFIG = f"""version: 1
api: dra
resources:
  - name: {A100}
    api: device-plugin
    match: {{deviceIds: ["10de:20f1"]}}
"""


def story_api_outage(bench):
    """The API server stops answering for a while (SIGSTOP): the device
    plugin side goes on at once (the A100, offered through it, is withdrawn
    when its group node goes, and the kubelet has it after the outage), and
    the DRA pool is correct once the server answers again (a vGPU created
    during the outage is in the slices)."""
    node, _, _ = start_dra(bench, config_text=SPLIT_CONFIG)
    bench.wait_allocatable({A100: 1}, "the A100 allocatable through the device plugin API")
    with open(bench.plugin_log) as f:
        lines_before = len(f.readlines())
    bench.cluster("pause-apiserver")
    resumed = False
    try:
        t0 = time.monotonic()
        node.command("delete-vfio-node 40")
        new = str(uuid.uuid4())
        with open(os.path.join(node.sysfs_root, "bus/pci/devices/0000:e1:00.0/mdev_supported_types/nvidia-592/create"),
                  "w") as f:
            f.write(new + "\n")
        # The device plugin side does not wait for the API server: the A100's
        # health reaches the plugin's log (and its ListAndWatch) at once.
        deadline = time.monotonic() + WAIT
        while True:
            with open(bench.plugin_log) as f:
                tail = f.readlines()[lines_before:]
            if any('msg="device unhealthy"' in l and "0000:ca:00.0" in l for l in tail):
                break
            check(time.monotonic() < deadline, "the A100's health change never reached the plugin")
            time.sleep(0.02)
        log(f"figure: API server paused, /dev/vfio/40 deleted -> the device plugin side has it: "
            f"{time.monotonic() - t0:.2f} s")
        # Kept away long enough that a request made at the start times out.
        time.sleep(8)
        bench.assert_plugin_running()
        bench.cluster("resume-apiserver")
        resumed = True
        t1 = time.monotonic()
        bench.wait_slices(lambda devs: "mdev-" + new in devs, "the vGPU created during the outage in the slices")
        log(f"figure: API server back -> the vGPU created meanwhile in the slices: {time.monotonic() - t1:.2f} s")
        bench.wait_allocatable({A100: 0}, "the A100 withdrawn during the outage, as the kubelet reports it")
    finally:
        if not resumed:
            bench.cluster("resume-apiserver")
    bench.assert_plugin_running()
    assert_no_refusals(bench)


STORIES = {
    "slices": story_slices,
    "claim-template": story_claim_template,
    "claim-direct": story_claim_direct,
    "health": story_health,
    "restarts": story_restarts,
    "move": story_move,
    "api-outage": story_api_outage,
}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in STORIES:
        sys.exit(f"usage: dra_stories.py {{{'|'.join(STORIES)}}}")
    run_story(STORIES[sys.argv[1]])
