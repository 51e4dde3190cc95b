"""The plugin against a real Kubernetes (issue 17's stories), one story per
process: `stories.py <story>`. Each story starts its own bench (bench.py).

Timings printed with "figure:" are information, never asserted.
"""

import os
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import WAIT, Skip, StoryFailure, log, run_story  # noqa: E402

NV = "nvidia.com/"
T4 = NV + "TU104GL_TESLA_T4"
A100 = NV + "GA100_A100_PCIE_40GB"
L4_1Q = NV + "NVIDIA_L4-1Q"
L4_2Q = NV + "NVIDIA_L4-2Q"
H200_VF = NV + "NVIDIA_H200X-1-18C"

with open(os.path.join(os.environ["KVGPU_SOURCE_ROOT"], "tests", "support", "node", "demo-node.conf")) as _f:
    DEMO_NODE = _f.read()

# Four T4s, two on each NUMA node, each alone in its IOMMU group and under a
# switch port of its own; the order of addresses interleaves the NUMA nodes so
# that a choice by address alone would span both.
NUMA_NODE = """
bridge pci0000:20/0000:20:00.0 id=8086:347a
bridge pci0000:20/0000:20:00.0/0000:21:00.0 id=10b5:9781
bridge pci0000:20/0000:20:00.0/0000:21:00.0/0000:22:08.0 id=10b5:9781
bridge pci0000:20/0000:20:00.0/0000:21:00.0/0000:22:10.0 id=10b5:9781
bridge pci0000:a0/0000:a0:00.0 id=8086:347a
bridge pci0000:a0/0000:a0:00.0/0000:a1:00.0 id=10b5:9781
bridge pci0000:a0/0000:a0:00.0/0000:a1:00.0/0000:a2:08.0 id=10b5:9781
bridge pci0000:a0/0000:a0:00.0/0000:a1:00.0/0000:a2:10.0 id=10b5:9781
gpu 0000:23:00.0 id=10de:1eb8 subsys=10de:12a2 group=30 numa=0 parent=pci0000:20/0000:20:00.0/0000:21:00.0/0000:22:08.0
gpu 0000:a3:00.0 id=10de:1eb8 subsys=10de:12a2 group=31 numa=1 parent=pci0000:a0/0000:a0:00.0/0000:a1:00.0/0000:a2:08.0
gpu 0000:24:00.0 id=10de:1eb8 subsys=10de:12a2 group=32 numa=0 parent=pci0000:20/0000:20:00.0/0000:21:00.0/0000:22:10.0
gpu 0000:a4:00.0 id=10de:1eb8 subsys=10de:12a2 group=33 numa=1 parent=pci0000:a0/0000:a0:00.0/0000:a1:00.0/0000:a2:10.0
"""

NO_GPU_NODE = """
device 0000:00:1f.3 id=8086:a348 class=0x040300 group=5 driver=snd_hda_intel parent=pci0000:00
"""


def env_key(resource):
    return resource.upper().replace("/", "_").replace(".", "_")


def nvidia_allocatable(node):
    return {k: int(v) for k, v in node["status"].get("allocatable", {}).items() if k.startswith(NV)}


def nvidia_capacity(node):
    return {k: int(v) for k, v in node["status"].get("capacity", {}).items() if k.startswith(NV)}


def check(cond, msg):
    if not cond:
        raise StoryFailure(msg)


def only_record(bench, pod):
    recs = bench.container_records(pod)
    check(len(recs) == 1, f"pod {pod}: expected one CreateContainer of 'compute', the fake CRI saw {len(recs)}")
    return recs[0]


def vfio_devices(rec):
    """The device nodes the container got, as (container path, host path, permissions)."""
    return [(d["container_path"], d["host_path"], d["permissions"]) for d in rec["devices"]]


def expect_devices(rec, groups):
    want = sorted([("/dev/vfio/vfio", "/dev/vfio/vfio", "mrw")] +
                  [(f"/dev/vfio/{g}", f"/dev/vfio/{g}", "mrw") for g in groups])
    got = sorted(vfio_devices(rec))
    check(got == want, f"pod {rec['pod']}: devices {got}, expected exactly {want}")


def start_plugin_and_wait(bench, expected):
    t0 = bench.start_plugin()
    bench.wait_allocatable(expected, "the plugin's resources in the node's allocatable")
    return time.monotonic() - t0


# -- 1 -----------------------------------------------------------------------
def story_registers(bench):
    """Every resource `list` shows appears in `kubectl get node` with its count."""
    bench.start_node(DEMO_NODE)
    listed = bench.list_resources()
    check({T4, A100, L4_1Q, L4_2Q, H200_VF} <= set(listed),
          f"list shows {listed}: the demo node should have passthrough, mdev and SR-IOV VF resources")
    took = start_plugin_and_wait(bench, listed)
    log(f"figure: plugin start -> resources in allocatable: {took:.2f} s "
        f"(kubelet nodeStatusUpdateFrequency 1s)")
    node = bench.api.get(f"/api/v1/nodes/{bench.node_name}")
    check(nvidia_allocatable(node) == listed, f"allocatable {nvidia_allocatable(node)} != list {listed}")
    check(nvidia_capacity(node) == listed, f"capacity {nvidia_capacity(node)} != list {listed}")
    # The same through kubectl, as a user would look.
    out = bench.kubectl("get", "node", bench.node_name, "-o",
                        "go-template={{range $k, $v := .status.allocatable}}{{$k}}={{$v}}\n{{end}}")
    shown = {k: int(v) for k, v in (l.split("=", 1) for l in out.splitlines()) if k.startswith(NV)}
    check(shown == listed, f"kubectl get node shows {shown}, list shows {listed}")
    bench.assert_plugin_running()


# -- 2 -----------------------------------------------------------------------
def story_virt_launcher(bench):
    """virt-launcher-shaped pods get the env KubeVirt reads and exactly their
    groups' device nodes; a passthrough GPU, a vGPU and an SR-IOV VF."""
    node = bench.start_node(DEMO_NODE)
    listed = bench.list_resources()
    start_plugin_and_wait(bench, listed)

    bench.create_pod("launcher-a100", {A100: 1})
    bench.create_pod("launcher-l4", {L4_1Q: 1})
    bench.create_pod("launcher-vf", {H200_VF: 2})
    for pod in ("launcher-a100", "launcher-l4", "launcher-vf"):
        bench.wait_pod_running(pod)

    rec = only_record(bench, "launcher-a100")
    check(rec["env"].get("PCI_RESOURCE_" + env_key(A100)) == "0000:ca:00.0",
          f"launcher-a100 env: {sorted(rec['env'].items())}")
    expect_devices(rec, [40])

    rec = only_record(bench, "launcher-l4")
    check(rec["env"].get("MDEV_PCI_RESOURCE_" + env_key(L4_1Q)) == "aa618089-8b16-4d01-a136-25a0f3c73123",
          f"launcher-l4 env: {sorted(rec['env'].items())}")
    check(not any(k.startswith("PCI_RESOURCE_") for k in rec["env"]), f"launcher-l4 env: {rec['env']}")
    expect_devices(rec, [51])

    rec = only_record(bench, "launcher-vf")
    vfs = rec["env"].get("PCI_RESOURCE_" + env_key(H200_VF), "")
    check(sorted(vfs.split(",")) == ["0000:41:00.5", "0000:41:00.6"], f"launcher-vf env: {rec['env']}")
    expect_devices(rec, [62, 63])
    check(rec["cdi_devices"] == [], f"launcher-vf: CDI devices {rec['cdi_devices']} from a device plugin without CDI")
    node.stop()


def story_numa(bench):
    """Two of four T4s (two per NUMA node) come from one NUMA node: the kubelet
    asked GetPreferredAllocation and followed it."""
    bench.start_node(NUMA_NODE)
    start_plugin_and_wait(bench, {T4: 4})
    bench.create_pod("launcher-pair", {T4: 2})
    bench.wait_pod_running("launcher-pair")
    rec = only_record(bench, "launcher-pair")
    addrs = sorted(rec["env"].get("PCI_RESOURCE_" + env_key(T4), "").split(","))
    numa0, numa1 = ["0000:23:00.0", "0000:24:00.0"], ["0000:a3:00.0", "0000:a4:00.0"]
    check(addrs in (numa0, numa1), f"launcher-pair got {addrs}: not two GPUs of one NUMA node")
    groups = {"0000:23:00.0": 30, "0000:a3:00.0": 31, "0000:24:00.0": 32, "0000:a4:00.0": 33}
    expect_devices(rec, [groups[a] for a in addrs])
    # The kubelet says so at -v 4 (cluster.sh's default for the bench).
    with open(os.path.join(bench.logs, "kubelet.log")) as f:
        asked = [l for l in f if "Issuing a GetPreferredAllocation call" in l and T4 in l]
    check(asked, "the kubelet's log shows no GetPreferredAllocation call for " + T4)
    # The other pair is what is left.
    bench.create_pod("launcher-rest", {T4: 2})
    bench.wait_pod_running("launcher-rest")
    rest = sorted(only_record(bench, "launcher-rest")["env"]["PCI_RESOURCE_" + env_key(T4)].split(","))
    check(rest == (numa1 if addrs == numa0 else numa0), f"launcher-rest got {rest} after {addrs}")


# -- 3 -----------------------------------------------------------------------
def story_hot_add(bench):
    """A vGPU made through sysfs raises allocatable; removing it lowers it."""
    node = bench.start_node(DEMO_NODE)
    listed = bench.list_resources()
    start_plugin_and_wait(bench, listed)
    new = str(uuid.uuid4())
    create = os.path.join(node.sysfs_root, "bus/pci/devices/0000:e1:00.0/mdev_supported_types/nvidia-592/create")
    t0 = time.monotonic()
    with open(create, "w") as f:
        f.write(new + "\n")
    bench.wait_allocatable({L4_1Q: listed[L4_1Q] + 1}, "the hot-added vGPU in allocatable")
    log(f"figure: hot-add (write to create) -> allocatable: {time.monotonic() - t0:.2f} s")
    # The new vGPU is allocatable, and allocated by name.
    bench.create_pod("launcher-new-a", {L4_1Q: 2})
    bench.wait_pod_running("launcher-new-a")
    got = sorted(only_record(bench, "launcher-new-a")["env"]["MDEV_PCI_RESOURCE_" + env_key(L4_1Q)].split(","))
    check(got == sorted(["aa618089-8b16-4d01-a136-25a0f3c73123", new]), f"launcher-new-a got {got}")
    bench.api.delete("/api/v1/namespaces/default/pods/launcher-new-a")
    remove = os.path.join(node.sysfs_root, f"bus/mdev/devices/{new}/remove")
    t0 = time.monotonic()
    with open(remove, "w") as f:
        f.write("1\n")
    bench.wait_allocatable({L4_1Q: listed[L4_1Q]}, "allocatable lowered after the vGPU's removal")
    log(f"figure: removal -> allocatable: {time.monotonic() - t0:.2f} s")
    check(bench.list_resources()[L4_1Q] == listed[L4_1Q], "list disagrees after the removal")
    bench.assert_plugin_running()


# -- 4 -----------------------------------------------------------------------
def story_health(bench):
    """An unhealthy GPU lowers allocatable and shows in the holding pod's
    allocatedResourcesStatus; recovery raises it again."""
    node = bench.start_node(DEMO_NODE)
    listed = bench.list_resources()
    start_plugin_and_wait(bench, listed)
    bench.create_pod("launcher-health", {A100: 1})
    bench.wait_pod_running("launcher-health")

    def health(pod):
        for cs in pod.get("status", {}).get("containerStatuses") or []:
            for res in cs.get("allocatedResourcesStatus") or []:
                if res.get("name") == A100:
                    return {r["resourceID"]: r.get("health") for r in res.get("resources", [])}
        return {}

    node.command("delete-vfio-node 40")
    bench.wait_allocatable({A100: 0}, "the A100 out of allocatable after its /dev/vfio/40 went")
    bench.wait_pod("launcher-health", lambda p: health(p).get("0000:ca:00.0") == "Unhealthy",
                   "allocatedResourcesStatus shows the A100 Unhealthy")
    node.command("create-vfio-node 40")
    bench.wait_allocatable({A100: 1}, "the A100 back in allocatable")
    bench.wait_pod("launcher-health", lambda p: health(p).get("0000:ca:00.0") == "Healthy",
                   "allocatedResourcesStatus shows the A100 Healthy again")
    pod = bench.api.get("/api/v1/namespaces/default/pods/launcher-health")
    check(pod["status"]["containerStatuses"][0]["restartCount"] == 0, "the pod's container restarted")
    bench.assert_plugin_running()


# -- 5 and 6 ---------------------------------------------------------------------
def holds_and_rest(bench, listed, tag):
    """After a restart: the running pod kept its container and device, the
    other T4 goes to a new pod, and a third request does not fit."""
    first = only_record(bench, "holder")["env"]["PCI_RESOURCE_" + env_key(T4)]
    pod = bench.api.get("/api/v1/namespaces/default/pods/holder")
    check(pod["status"]["phase"] == "Running", f"holder is {pod['status']['phase']} after the {tag}")
    check(pod["status"]["containerStatuses"][0]["restartCount"] == 0, f"holder's container restarted ({tag})")
    bench.create_pod("second", {T4: 1})
    bench.wait_pod_running("second")
    second = only_record(bench, "second")["env"]["PCI_RESOURCE_" + env_key(T4)]
    check({first, second} == {"0000:67:00.0", "0000:68:00.0"},
          f"after the {tag} holder has {first} and second got {second}: one T4 allocated twice")
    bench.create_pod("third", {T4: 1})

    def unschedulable(p):
        return any(c["type"] == "PodScheduled" and c["status"] == "False" and c.get("reason") == "Unschedulable"
                   for c in p.get("status", {}).get("conditions") or [])
    bench.wait_pod("third", unschedulable, "Unschedulable: both T4s are taken")
    check(bench.container_records("third") == [], "third got a container")
    check(len(bench.container_records("holder")) == 1, "holder's container was created again")


def story_kubelet_restart(bench):
    bench.start_node(DEMO_NODE)
    listed = bench.list_resources()
    start_plugin_and_wait(bench, listed)
    bench.create_pod("holder", {T4: 1})
    bench.wait_pod_running("holder")
    with open(os.path.join(bench.logs, "kubelet.log")) as f:
        before = f.read().count("Got registration request from device plugin")
    t0 = time.monotonic()
    bench.cluster("restart-kubelet")

    def registrations():
        with open(os.path.join(bench.logs, "kubelet.log")) as f:
            return f.read().count("Got registration request from device plugin")
    # The restarted kubelet writes its log anew; every resource registers again.
    deadline = time.monotonic() + WAIT
    while registrations() < len(listed):
        if time.monotonic() > deadline:
            raise StoryFailure(f"{registrations()} registrations after the kubelet restart, "
                               f"expected {len(listed)} (before: {before})")
        time.sleep(0.05)
    log(f"figure: kubelet restart -> every resource re-registered: {time.monotonic() - t0:.2f} s")
    bench.wait_allocatable(listed, "allocatable after the kubelet restart")
    bench.assert_plugin_running()
    holds_and_rest(bench, listed, "kubelet restart")


def story_plugin_restart(bench):
    bench.start_node(DEMO_NODE)
    listed = bench.list_resources()
    start_plugin_and_wait(bench, listed)
    bench.create_pod("holder", {T4: 1})
    bench.wait_pod_running("holder")
    rc = bench.stop_plugin()
    check(rc == 0, f"the plugin exited with {rc} on SIGTERM")
    bench.wait_allocatable({r: 0 for r in listed}, "allocatable 0 while the plugin is away")
    took = start_plugin_and_wait(bench, listed)
    log(f"figure: plugin restart -> allocatable again: {took:.2f} s")
    holds_and_rest(bench, listed, "plugin restart")


# -- 8 -----------------------------------------------------------------------
def story_no_gpus_then_kubelet_late(bench):
    """A node without GPUs: the plugin runs and serves nothing; a GPU added
    later appears. A plugin started while the kubelet is down: its resources
    appear when the kubelet comes."""
    node = bench.start_node(NO_GPU_NODE)
    check(bench.list_resources() == {}, "list shows resources on a node without NVIDIA devices")
    bench.start_plugin()
    node.command("add-gpu 0000:cb:00.0 id=10de:20f1 group=41 numa=1", expect="0000:cb:00.0")
    bench.wait_allocatable({A100: 1}, "a GPU added to the GPU-less node in allocatable")
    bench.assert_plugin_running()
    check(bench.stop_plugin() == 0, "the plugin did not exit cleanly")

    bench.wait_allocatable({A100: 0}, "allocatable 0 once the plugin is gone")
    bench.cluster("stop-kubelet")
    bench.start_plugin()
    # The plugin waits for kubelet.sock; the kubelet then starts and must
    # find it.
    t0 = time.monotonic()
    bench.cluster("start-kubelet")
    bench.wait_node(lambda n: any(c["type"] == "Ready" and c["status"] == "True"
                                  for c in n["status"].get("conditions", [])), "node Ready again")
    bench.wait_allocatable({A100: 1}, "the resources once the kubelet came")
    log(f"figure: kubelet start -> plugin's resources allocatable: {time.monotonic() - t0:.2f} s")
    bench.assert_plugin_running()


# -- 7 (on the fake CRI) ----------------------------------------------------------
def story_daemonset(bench):
    daemonset(bench, lambda: bench.start_plugin(daemonset_ports=True))


def story_daemonset_image(bench):
    """Story 7 with the plugin run from the image scripts/image.sh builds."""
    import subprocess
    r = subprocess.run([os.path.join(os.environ["KVGPU_SOURCE_ROOT"], "scripts", "image.sh")],
                       stdout=subprocess.PIPE, text=True)
    if r.returncode == 77:
        raise Skip("scripts/image.sh skipped (see its reason above)")
    check(r.returncode == 0, f"scripts/image.sh failed with {r.returncode}")
    image = [l.split("=", 1)[1] for l in r.stdout.splitlines() if l.startswith("IMAGE=")][0]
    daemonset(bench, lambda: bench.start_plugin_image(image))


def daemonset(bench, start_plugin):
    """`kubectl apply -k manifests/` is accepted; the DaemonSet's pod is
    scheduled to the node, its container gets the DaemonSet's args, env and
    mounts, and it turns Ready through its gRPC probes, which the kubelet sends
    to the pod's address (127.0.0.1 on the fake CRI) where the plugin, started
    with the same args on the simulated node, answers."""
    import socket
    for port in (8081, 8082):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise Skip(f"port {port} of the DaemonSet's probes/metrics is taken on this machine")
        finally:
            s.close()
    bench.start_node(DEMO_NODE)
    listed = bench.list_resources()
    out = bench.kubectl("apply", "-k", os.path.join(os.environ["KVGPU_SOURCE_ROOT"], "manifests"))
    for obj in ("namespace/kubevirt-gpu-device-plugin", "configmap/kubevirt-gpu-device-plugin-config",
                "daemonset.apps/kubevirt-gpu-device-plugin"):
        check(obj in out, f"kubectl apply -k manifests/ did not create {obj}: {out}")
    ns = "kubevirt-gpu-device-plugin"
    # The DaemonSet controller names its pod; find it through the DaemonSet's status.
    bench.api.watch_until(f"/apis/apps/v1/namespaces/{ns}/daemonsets", "kubevirt-gpu-device-plugin",
                          lambda d: d.get("status", {}).get("currentNumberScheduled") == 1, WAIT,
                          "the DaemonSet's pod scheduled")
    pods = bench.api.get(f"/api/v1/namespaces/{ns}/pods")["items"]
    check(len(pods) == 1, f"DaemonSet pods: {[p['metadata']['name'] for p in pods]}")
    name = pods[0]["metadata"]["name"]
    # The DaemonSet controller creates the pod with a node affinity; the
    # scheduler binds it.
    bench.wait_pod(name, lambda p: p["spec"].get("nodeName") == bench.node_name,
                   f"bound to {bench.node_name}", namespace=ns)
    bench.wait_pod(name, lambda p: (p.get("status", {}).get("containerStatuses") or [{}])[0].get("started"),
                   "container started", namespace=ns)
    recs = [r for r in bench.container_records(name, "kubevirt-gpu-device-plugin")]
    check(len(recs) == 1, f"{len(recs)} containers created for {name}")
    rec = recs[0]
    with open(os.path.join(os.environ["KVGPU_SOURCE_ROOT"], "manifests", "daemonset.yaml")) as f:
        import yaml
        ds = yaml.safe_load(f)
    want_args = ds["spec"]["template"]["spec"]["containers"][0]["args"]
    check(rec["args"] == want_args, f"container args {rec['args']} != DaemonSet args {want_args}")
    check(rec["image"].endswith("kubevirt-gpu-device-plugin:0.1.0"), f"image {rec['image']}")
    check(rec["env"].get("NODE_NAME") == bench.node_name, f"NODE_NAME={rec['env'].get('NODE_NAME')}")
    mounts = {m["container_path"]: m for m in rec["mounts"]}
    for path, host, ro in (("/var/lib/kubelet/device-plugins", "/var/lib/kubelet/device-plugins", False),
                           ("/host/dev", "/dev", True),
                           ("/var/lib/kubevirt-gpu-device-plugin", "/var/lib/kubevirt-gpu-device-plugin", False)):
        m = mounts.get(path)
        check(m and m["host_path"] == host and m["readonly"] == ro, f"mount {path}: {m}")
    check(mounts.get("/etc/kubevirt-gpu-device-plugin", {}).get("readonly") is True,
          f"the ConfigMap mount: {mounts.get('/etc/kubevirt-gpu-device-plugin')}")
    check(not rec["devices"], f"the plugin's container got devices {rec['devices']}")

    # Not ready before the plugin serves: the kubelet's probe finds nothing.
    bench.wait_pod(name, lambda p: any(c["type"] == "Ready" and c["status"] == "False"
                                       for c in p.get("status", {}).get("conditions") or []),
                   "Ready=False before the plugin serves", namespace=ns)
    start_plugin()
    bench.wait_pod(name, lambda p: any(c["type"] == "Ready" and c["status"] == "True"
                                       for c in p.get("status", {}).get("conditions") or []),
                   "Ready through the gRPC readiness probe", namespace=ns)
    # Ready means registered; the node's status follows at the kubelet's next
    # status update.
    bench.wait_allocatable(listed, "the DaemonSet plugin's resources in allocatable")
    bench.assert_plugin_running()


STORIES = {
    "daemonset": story_daemonset,
    "daemonset-image": story_daemonset_image,
    "registers": story_registers,
    "virt-launcher": story_virt_launcher,
    "numa": story_numa,
    "hot-add": story_hot_add,
    "health": story_health,
    "kubelet-restart": story_kubelet_restart,
    "plugin-restart": story_plugin_restart,
    "no-gpus-kubelet-late": story_no_gpus_then_kubelet_late,
}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in STORIES:
        sys.exit(f"usage: stories.py {{{'|'.join(STORIES)}}}")
    run_story(STORIES[sys.argv[1]])
