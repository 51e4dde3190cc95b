#!/usr/bin/python3
"""The image is a drop-in for the NVIDIA GPU Operator's sandboxDevicePlugin.

The operator renders its own DaemonSet around the image: no command and no
args (the image's entrypoint and the binary's defaults must serve),
privileged (the pod sees the host's /dev and sysfs), NODE_NAME from the
downward API, and hostPath mounts of /var/lib/kubelet/device-plugins and
/dev/vfio. This check renders that shape with our image, then runs the
entrypoint exactly so, with no arguments, in a private mount and network
namespace where the DaemonSet's hostPath volumes are bind-mounted from a
stand-in host (a kubelet directory served by sim-kubelet, /dev/vfio with a
group node, a sysfs with one GPU): the plugin must find the kubelet
directory (it registers), the VFIO nodes (the GPU is Healthy) and the node
name (it logs it)."""

import os
import queue
import shlex
import signal
import subprocess
import tempfile
import threading
import time

from deploy_common import Findings, meson_project, plugin_binary, source_path

SKIP = 77
NODE = "gpu-node-7"
GPU = "0000:3b:00.0"
GROUP = 31

f = Findings("gpu-operator")
binary = plugin_binary()
sim_kubelet = os.environ.get("KVGPU_SIM_KUBELET", "")
version, _ = meson_project()
image = f"kubevirt-gpu-device-plugin:{version}"

# --- the image: an entrypoint and no default arguments ------------------------------------
with open(source_path("container/Containerfile"), encoding="utf-8") as text:
    lines = [line.strip() for line in text if line.strip() and not line.lstrip().startswith("#")]
entrypoints = [line for line in lines if line.upper().startswith("ENTRYPOINT")]
f.check(entrypoints == ['ENTRYPOINT ["/usr/bin/kubevirt-gpu-device-plugin"]'],
        f"container/Containerfile: the entrypoint is the plugin, exec form ({entrypoints})")
f.check(not any(line.upper().startswith("CMD") for line in lines),
        "container/Containerfile: no CMD, so a pod without args runs the plugin's defaults")
entrypoint = ["/usr/bin/kubevirt-gpu-device-plugin"]

# --- the operator's DaemonSet, as its sandbox-device-plugin state renders it ------------------
daemonset = {
    "apiVersion": "apps/v1",
    "kind": "DaemonSet",
    "metadata": {"name": "nvidia-sandbox-device-plugin-daemonset", "namespace": "gpu-operator"},
    "spec": {"template": {"spec": {
        "containers": [{
            "name": "nvidia-sandbox-device-plugin-ctr",
            "image": image,  # sandboxDevicePlugin.repository/image:version
            "securityContext": {"privileged": True},
            "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
            "volumeMounts": [
                {"name": "device-plugin", "mountPath": "/var/lib/kubelet/device-plugins"},
                {"name": "vfio", "mountPath": "/dev/vfio"},
            ],
        }],
        "volumes": [
            {"name": "device-plugin", "hostPath": {"path": "/var/lib/kubelet/device-plugins"}},
            {"name": "vfio", "hostPath": {"path": "/dev/vfio"}},
        ],
    }}},
}
container = daemonset["spec"]["template"]["spec"]["containers"][0]
argv = entrypoint + container.get("command", [])[1:] + container.get("args", [])
f.check(argv == entrypoint, f"the operator's container runs the entrypoint with no arguments ({argv})")

if os.geteuid() != 0 or not os.access(sim_kubelet, os.X_OK):
    print("skipped: needs root (mount namespaces) and sim-kubelet", flush=True)
    raise SystemExit(SKIP)
probe = subprocess.run(["unshare", "-m", "-n", "true"], capture_output=True)
if probe.returncode != 0:
    print(f"skipped: cannot create mount and network namespaces: {probe.stderr.decode().strip()}", flush=True)
    raise SystemExit(SKIP)


def write(path, content=""):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as out:
        out.write(content)


def link(path, target):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.symlink(target, path)


def lines_of(stream, into):
    for line in iter(stream.readline, ""):
        into.put(line.rstrip("\n"))


def wait_for(lines, seen, needle, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(needle in line for line in seen):
            return True
        try:
            seen.append(lines.get(timeout=0.1))
        except queue.Empty:
            pass
    return any(needle in line for line in seen)


multiplier = max(1, int(os.environ.get("KVGPU_TIMEOUT_MULTIPLIER", "1") or 1))
with tempfile.TemporaryDirectory(prefix="kvgpu-operator-") as root:
    host = os.path.join(root, "host")
    # The host's side of the hostPath volumes, and a sysfs with one passthrough T4.
    os.makedirs(os.path.join(host, "var/lib/kubelet/device-plugins"))
    write(os.path.join(host, "dev/vfio/vfio"))
    write(os.path.join(host, "dev/vfio", str(GROUP)))
    sys_root = os.path.join(host, "sys")
    devpath = f"devices/pci0000:3a/{GPU}"
    gpu = os.path.join(sys_root, devpath)
    write(os.path.join(gpu, "vendor"), "0x10de\n")
    write(os.path.join(gpu, "device"), "0x1eb8\n")
    write(os.path.join(gpu, "class"), "0x030200\n")
    write(os.path.join(gpu, "numa_node"), "0\n")
    write(os.path.join(gpu, "uevent"), f"DRIVER=vfio-pci\nPCI_ID=10DE:1EB8\nPCI_SLOT_NAME={GPU}\n")
    link(os.path.join(gpu, "subsystem"), "../../../bus/pci")
    os.makedirs(os.path.join(sys_root, "bus/pci/drivers/vfio-pci"))
    link(os.path.join(gpu, "driver"), "../../../bus/pci/drivers/vfio-pci")
    os.makedirs(os.path.join(sys_root, "kernel/iommu_groups", str(GROUP), "devices"))
    link(os.path.join(gpu, "iommu_group"), f"../../../kernel/iommu_groups/{GROUP}")
    link(os.path.join(sys_root, "kernel/iommu_groups", str(GROUP), "devices", GPU), f"../../../../{devpath}")
    link(os.path.join(sys_root, "bus/pci/devices", GPU), f"../../../{devpath}")

    kubelet_lines = queue.Queue()
    kubelet = subprocess.Popen([sim_kubelet, "--plugin-dir", os.path.join(host, "var/lib/kubelet/device-plugins")],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    threading.Thread(target=lines_of, args=(kubelet.stdout, kubelet_lines), daemon=True).start()
    seen = []
    f.check(wait_for(kubelet_lines, seen, "listening", 10 * multiplier), "sim-kubelet serves the host's kubelet.sock")

    # Inside the pod's namespaces: each hostPath volume at its mountPath, the
    # privileged pod's view of sysfs, then the entrypoint with the pod's
    # environment and nothing else.
    script = ["set -eu", "mount --make-rprivate /"]
    realdev = os.path.join(root, "realdev")
    os.makedirs(realdev)
    volumes = {v["name"]: v["hostPath"]["path"] for v in daemonset["spec"]["template"]["spec"]["volumes"]}
    for mount in container["volumeMounts"]:
        target = mount["mountPath"]
        source = host + volumes[mount["name"]]
        if target == "/dev/vfio":
            # A node without VFIO loaded has no /dev/vfio to mount over: give
            # /dev a tmpfs with the few character devices a process uses.
            script += [f"if [ ! -d /dev/vfio ]; then mount --rbind /dev {realdev}; mount -t tmpfs tmpfs /dev; "
                       f"for n in null zero random urandom; do touch /dev/$n; mount --bind {realdev}/$n /dev/$n; "
                       "done; mkdir /dev/vfio; fi"]
        else:
            parent = os.path.dirname(target)
            script += [f"[ -d {shlex.quote(parent)} ] || mount -t tmpfs tmpfs /var/lib",
                       f"mkdir -p {shlex.quote(target)}"]
        script += [f"mount --bind {shlex.quote(source)} {shlex.quote(target)}"]
    script += [f"mount --bind {shlex.quote(sys_root)} /sys",
               f"exec env -i NODE_NAME={NODE} PATH=/usr/sbin:/usr/bin:/sbin:/bin {shlex.quote(binary)}"]
    log_path = os.path.join(root, "plugin.log")
    with open(log_path, "w") as log:
        plugin = subprocess.Popen(["unshare", "-m", "-n", "sh", "-c", "\n".join(script)],
                                  stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

    registered = wait_for(kubelet_lines, seen, "register resource=nvidia.com/", 15 * multiplier)
    healthy = wait_for(kubelet_lines, seen, "healthy=1", 10 * multiplier)
    plugin.send_signal(signal.SIGTERM)
    try:
        status = plugin.wait(timeout=10 * multiplier)
    except subprocess.TimeoutExpired:
        plugin.kill()
        status = plugin.wait()
    kubelet.terminate()
    kubelet.wait(timeout=10)
    with open(log_path, encoding="utf-8") as text:
        log = text.read()
    transcript = "\n".join(seen) + "\n--- plugin log ---\n" + log
    f.check(registered, "with no arguments the plugin finds /var/lib/kubelet/device-plugins and registers with "
                        "the kubelet there:\n" + transcript)
    f.check(healthy and f"{GPU}" in "\n".join(seen),
            f"with no arguments it finds /dev/vfio/{GROUP} and lists {GPU} Healthy")
    f.check(f"node={NODE}" in log, f"with no arguments it reads the node name from NODE_NAME ({NODE})")
    f.check(status == 0, f"SIGTERM stops it cleanly (exit {status})")

f.finish()
