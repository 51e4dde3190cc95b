"""The cluster bench as a test fixture: a real Kubernetes (scripts/cluster.sh),
a simulated GPU node (sim-node) and the plugin, started as the DaemonSet
starts it, in the bench's mount namespace.

Every wait is on an event (a watch on the API server, a line in a log or on a
pipe) with a deadline; a wait that runs out prints the plugin's log and the
tails of the components' logs. The bench is torn down in every case, also on
SIGTERM (meson's timeout).
"""

import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import yaml

SOURCE_ROOT = os.environ["KVGPU_SOURCE_ROOT"]
PLUGIN = os.environ["KVGPU_PLUGIN_BINARY"]
SIM_NODE = os.environ["KVGPU_SIM_NODE"]
CLUSTER_SH = os.path.join(SOURCE_ROOT, "scripts", "cluster.sh")
KUBECTL = os.path.join(os.environ.get("KVGPU_GO_CACHE", "/var/cache/kvgpu-go"), "bin", "kubectl")
PRELOAD = "libumockdev-preload.so.0"
# Deadlines: generous, since they only matter when something is broken.
SCALE = float(os.environ.get("KVGPU_TIMEOUT_MULTIPLIER", "1"))
WAIT = 60 * SCALE
# The DRA side (manifests/dra/): the driver name the plugin uses by default,
# and a configuration that offers every device through DRA.
DRA_DRIVER = "gpu.kubevirt-gpu-device-plugin.github.io"
DRA_ALL = "version: 1\napi: dra\nresources: []\n"
DRA_NAMESPACE = "kubevirt-gpu-device-plugin"
DRA_SERVICE_ACCOUNT = "kubevirt-gpu-device-plugin"


class Skip(Exception):
    pass


class StoryFailure(AssertionError):
    pass


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Api:
    """The API server over HTTPS with the admin token of the bench's kubeconfig."""

    def __init__(self, kubeconfig):
        with open(kubeconfig) as f:
            cfg = yaml.safe_load(f)
        self.server = cfg["clusters"][0]["cluster"]["server"]
        self.token = cfg["users"][0]["user"]["token"]
        self.ctx = ssl.create_default_context(cafile=cfg["clusters"][0]["cluster"]["certificate-authority"])

    def _open(self, path, timeout, method="GET", body=None, ctype=None):
        req = urllib.request.Request(self.server + path, method=method, data=body)
        req.add_header("Authorization", "Bearer " + self.token)
        if ctype:
            req.add_header("Content-Type", ctype)
        return urllib.request.urlopen(req, context=self.ctx, timeout=timeout)

    def get(self, path):
        with self._open(path, 30) as r:
            return json.load(r)

    def create(self, path, obj):
        with self._open(path, 30, "POST", json.dumps(obj).encode(), "application/json") as r:
            return json.load(r)

    def delete(self, path):
        try:
            with self._open(path, 30, "DELETE", json.dumps({"gracePeriodSeconds": 0}).encode(),
                            "application/json") as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise

    def watch_collection_until(self, collection, predicate, timeout, what, selector=None):
        """Lists and then watches `collection` (optionally narrowed by a field
        selector) until predicate(objects) holds, `objects` being a dict of
        the collection's current objects by name; returns that dict."""
        deadline = time.monotonic() + timeout
        query = f"fieldSelector={urllib.parse.quote(selector)}&" if selector else ""
        objects = {}
        while True:
            listed = self.get(f"{collection}?{query.rstrip('&')}")
            objects = {o["metadata"]["name"]: o for o in listed["items"]}
            if predicate(objects):
                return objects
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            rv = listed["metadata"]["resourceVersion"]
            url = (f"{collection}?{query}watch=1&resourceVersion={rv}"
                   f"&timeoutSeconds={max(1, int(remaining + 0.999))}&allowWatchBookmarks=false")
            try:
                with self._open(url, remaining + 5) as stream:
                    for line in stream:
                        event = json.loads(line)
                        if event["type"] == "ERROR":
                            break  # relist (e.g. 410 Gone)
                        name = event["object"]["metadata"]["name"]
                        if event["type"] == "DELETED":
                            objects.pop(name, None)
                        else:
                            objects[name] = event["object"]
                        if predicate(objects):
                            return objects
                        if time.monotonic() >= deadline:
                            break
            except (TimeoutError, OSError):
                pass
            if time.monotonic() >= deadline:
                break
        detail = json.dumps(objects, indent=1)[:6000]
        raise StoryFailure(f"timed out after {timeout:.0f} s waiting for {what}; last objects: {detail}")

    def watch_until(self, collection, name, predicate, timeout, what, on_fail=None):
        """Lists and then watches the object `name` of `collection` (an API path
        such as /api/v1/nodes) until predicate(obj) holds; returns that object."""
        deadline = time.monotonic() + timeout
        selector = urllib.parse.quote(f"metadata.name={name}")
        last = None
        while True:
            listed = self.get(f"{collection}?fieldSelector={selector}")
            for item in listed["items"]:
                last = item
                if predicate(item):
                    return item
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            rv = listed["metadata"]["resourceVersion"]
            url = (f"{collection}?watch=1&fieldSelector={selector}&resourceVersion={rv}"
                   f"&timeoutSeconds={max(1, int(remaining + 0.999))}&allowWatchBookmarks=false")
            try:
                with self._open(url, remaining + 5) as stream:
                    for line in stream:
                        event = json.loads(line)
                        if event["type"] == "ERROR":
                            break  # relist (e.g. 410 Gone)
                        if event["type"] != "DELETED":
                            last = event["object"]
                            if predicate(last):
                                return last
                        if time.monotonic() >= deadline:
                            break
            except (TimeoutError, OSError):
                pass
            if time.monotonic() >= deadline:
                break
        detail = json.dumps(last.get("status") if last else None, indent=1)[:4000]
        if on_fail:
            on_fail()
        raise StoryFailure(f"timed out after {timeout:.0f} s waiting for {what}; last status of {name}: {detail}")


class LineWatcher:
    """Reads a process's output in a thread and lets a test wait for a line."""

    def __init__(self, stream, path):
        self.lines = []
        self.cond = threading.Condition()
        self.file = open(path, "w")
        self.thread = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self.thread.start()

    def _run(self, stream):
        for raw in stream:
            line = raw.decode(errors="replace").rstrip("\n")
            self.file.write(line + "\n")
            self.file.flush()
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()

    def wait_for(self, predicate, timeout, what, start=0):
        """Waits for a line from index `start` on; returns (index, line)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            i = start
            while True:
                while i < len(self.lines):
                    if predicate(self.lines[i]):
                        return i, self.lines[i]
                    i += 1
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise StoryFailure(f"timed out waiting for {what}")
                self.cond.wait(remaining)

    def count(self):
        with self.cond:
            return len(self.lines)


class SimNode:
    """tests/support/node's sim-node as a process; commands go to its stdin."""

    def __init__(self, description_text, workdir):
        self.desc = os.path.join(workdir, "node.conf")
        with open(self.desc, "w") as f:
            f.write(description_text)
        ready = os.path.join(workdir, "node.env")
        env = dict(os.environ, LD_PRELOAD=PRELOAD)
        self.proc = subprocess.Popen([SIM_NODE, "--description", self.desc, "--ready-file", ready],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=env)
        self.out = LineWatcher(self.proc.stdout, os.path.join(workdir, "node.log"))
        # The node prints its three KEY=value lines on stdout too (before it
        # writes the ready file).
        try:
            end, _ = self.out.wait_for(lambda l: l.startswith("DEV_ROOT="), WAIT, "the simulated node")
        except StoryFailure:
            self.stop()
            raise
        vals = dict(l.split("=", 1) for l in self.out.lines[:end + 1] if "=" in l)
        self.umockdev_dir = vals["UMOCKDEV_DIR"]
        self.sysfs_root = vals["SYSFS_ROOT"]
        self.dev_root = vals["DEV_ROOT"]

    def command(self, line, expect=None):
        """Sends one command and waits for its one-line answer (which must
        contain `expect` when given)."""
        start = self.out.count()
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()
        _, answer = self.out.wait_for(lambda l: True, WAIT, f"sim-node's answer to '{line}'", start)
        if expect and expect not in answer:
            raise StoryFailure(f"sim-node answered '{answer}' to '{line}'")
        return answer

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b"quit\n")
                self.proc.stdin.close()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def daemonset_args():
    """The plugin's arguments and env names as manifests/daemonset.yaml gives them."""
    with open(os.path.join(SOURCE_ROOT, "manifests", "daemonset.yaml")) as f:
        ds = yaml.safe_load(f)
    container = ds["spec"]["template"]["spec"]["containers"][0]
    return container["args"]


def shipped_config():
    with open(os.path.join(SOURCE_ROOT, "manifests", "configmap.yaml")) as f:
        return yaml.safe_load(f)["data"]["config.yaml"]


class Bench:
    """One bench per test process: `with Bench() as b:`."""

    def __init__(self):
        self.work = tempfile.mkdtemp(prefix="kvc.", dir="/tmp")
        self.state = os.path.join(self.work, "k")
        self.env = dict(os.environ, KVGPU_CLUSTER_DIR=self.state)
        self.plugin = None
        self.plugin_log = None
        self.plugin_runs = 0
        self.node = None
        self.api = None
        self.config_file = None
        self.dra_kubeconfig = None
        self.cdi_dir = None

    # -- lifetime
    def __enter__(self):
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        start = time.monotonic()
        r = subprocess.run([CLUSTER_SH, "up"], env=self.env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
        sys.stderr.write(r.stderr)
        if r.returncode == 77:
            raise Skip(r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "cluster.sh up skipped")
        if r.returncode != 0:
            self._down()
            raise StoryFailure(f"cluster.sh up failed with {r.returncode}")
        self.vals = dict(l.split("=", 1) for l in r.stdout.splitlines() if "=" in l)
        self.kubeconfig = self.vals["KUBECONFIG"]
        self.node_name = self.vals["NODE"]
        self.record = self.vals["CRI_RECORD"]
        self.logs = self.vals["LOGS"]
        self.api = Api(self.kubeconfig)
        log(f"bench up in {time.monotonic() - start:.1f} s (node {self.node_name} Ready)")
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is not None and not isinstance(exc, (Skip, SystemExit)):
            self.dump_logs()
        self.stop_plugin()
        if self.node:
            self.node.stop()
        self._down()
        return False

    def _down(self):
        subprocess.run([CLUSTER_SH, "down"], env=self.env)
        subprocess.run(["rm", "-rf", self.work])

    def dump_logs(self):
        if self.plugin_log and os.path.exists(self.plugin_log):
            print(f"--- plugin log ({self.plugin_log})")
            with open(self.plugin_log) as f:
                print(f.read()[-8000:])
        if self.node:
            print("--- sim-node output")
            print("\n".join(self.node.out.lines[-30:]))
        logs = getattr(self, "logs", None)
        if logs and os.path.isdir(logs):
            for name in sorted(os.listdir(logs)):
                with open(os.path.join(logs, name), errors="replace") as f:
                    tail = f.readlines()[-25:]
                print(f"--- tail of {name}")
                print("".join(tail))
        sys.stdout.flush()

    # -- the simulated node and the plugin
    def start_node(self, description_text):
        self.node = SimNode(description_text, self.work)
        return self.node

    def kubectl(self, *args, input_text=None, check=True):
        r = subprocess.run([KUBECTL, "--kubeconfig", self.kubeconfig, *args],
                           input=input_text, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if check and r.returncode != 0:
            raise StoryFailure(f"kubectl {' '.join(args)} failed: {r.stderr}")
        return r.stdout

    def plugin_flags(self):
        return ["--sysfs-root", self.node.sysfs_root, "--dev-root", self.node.dev_root,
                "--plugin-dir", "/var/lib/kubelet/device-plugins"]

    def list_json(self, config_text=None):
        """`list --json` as the plugin sees the node, with `config_text` as
        its --config when given."""
        flags = self.plugin_flags()
        if config_text is not None:
            path = os.path.join(self.work, "list-config.yaml")
            with open(path, "w") as f:
                f.write(config_text)
            flags += ["--config", path]
        r = subprocess.run(["nsenter", "-t", self.vals["NS_PID"], "-m", "--", PLUGIN, "list", "--json", *flags],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=True)
        return json.loads(r.stdout)

    def list_resources(self, config_text=None):
        """`list --json` as the plugin sees the node: {resource: healthy count}."""
        counts = {}
        for d in self.list_json(config_text)["devices"]:
            if d["resource"]:
                counts.setdefault(d["resource"], 0)
                if d["health"] == "Healthy":
                    counts[d["resource"]] += 1
        return counts

    def write_config(self, text):
        """Replaces the --config file the running plugin reads, as an editor
        saves (a new file renamed over the old one)."""
        tmp = self.config_file + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, self.config_file)

    def start_plugin(self, daemonset_ports=False, config_text=None, extra_args=()):
        """Starts the plugin as the DaemonSet does (its args, the shipped
        ConfigMap, NODE_NAME), with the simulated node's sysfs and /dev in
        place of the host's, in the bench's mount namespace. `config_text`
        replaces the shipped configuration (in a directory of its own, which
        the plugin watches); `extra_args` go after the DaemonSet's."""
        self.plugin_runs += 1
        if config_text is None:
            cfg = os.path.join(self.work, "config.yaml")
            text = shipped_config()
        else:
            os.makedirs(os.path.join(self.work, "config"), exist_ok=True)
            cfg = os.path.join(self.work, "config", "config.yaml")
            text = config_text
        self.config_file = cfg
        with open(cfg, "w") as f:
            f.write(text)
        state_dir = os.path.join(self.work, "plugin-state")
        os.makedirs(state_dir, exist_ok=True)
        replace = {"--dev-root": self.node.dev_root, "--state-dir": state_dir, "--config": cfg,
                   "--log-level": "debug"}
        if not daemonset_ports:
            # The DaemonSet's fixed ports only where the kubelet probes them.
            ports = free_ports(2)
            replace.update({"--probe-port": str(ports[0]), "--metrics-port": str(ports[1])})
        args = []
        for a in daemonset_args():
            key = a.split("=", 1)[0]
            args.append(f"{key}={replace[key]}" if key in replace else a)
        args += ["--sysfs-root", self.node.sysfs_root, "--plugin-dir", "/var/lib/kubelet/device-plugins",
                 *extra_args]
        self.plugin_log = os.path.join(self.work, f"plugin.{self.plugin_runs}.log")
        env = dict(os.environ, LD_PRELOAD=PRELOAD, UMOCKDEV_DIR=self.node.umockdev_dir,
                   NODE_NAME=self.node_name)
        with open(self.plugin_log, "w") as out:
            self.plugin = subprocess.Popen(["nsenter", "-t", self.vals["NS_PID"], "-m", "--", PLUGIN, *args],
                                           stdout=out, stderr=subprocess.STDOUT, env=env)
        log(f"plugin started (pid {self.plugin.pid}): {' '.join(args)}")
        return time.monotonic()

    def setup_dra(self):
        """Applies manifests/dra/'s DeviceClasses and RBAC (not its DaemonSet)
        and writes a kubeconfig with a token of the plugin's ServiceAccount,
        so the plugin has exactly the rights rbac.yaml grants. Once per bench."""
        if self.dra_kubeconfig:
            return self.dra_kubeconfig
        dra = os.path.join(SOURCE_ROOT, "manifests", "dra")
        self.kubectl("apply", "-f", os.path.join(dra, "deviceclasses.yaml"))
        self.kubectl("create", "namespace", DRA_NAMESPACE)
        self.kubectl("apply", "-f", os.path.join(dra, "rbac.yaml"))
        token = self.kubectl("create", "token", DRA_SERVICE_ACCOUNT, "-n", DRA_NAMESPACE,
                             "--duration", "2h").strip()
        with open(self.kubeconfig) as f:
            admin = yaml.safe_load(f)
        cluster = admin["clusters"][0]["cluster"]
        path = os.path.join(self.work, "dra.kubeconfig")
        with open(path, "w") as f:
            yaml.safe_dump({
                "apiVersion": "v1", "kind": "Config",
                "clusters": [{"name": "bench", "cluster": {"server": cluster["server"],
                                                           "certificate-authority": cluster["certificate-authority"]}}],
                "users": [{"name": "dra-plugin", "user": {"token": token}}],
                "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": "dra-plugin"}}],
                "current-context": "bench",
            }, f)
        self.dra_kubeconfig = path
        self.cdi_dir = os.path.join(self.work, "cdi")
        os.makedirs(self.cdi_dir, exist_ok=True)
        return path

    def start_dra_plugin(self, config_text=DRA_ALL):
        """start_plugin with a configuration that offers devices through DRA,
        the ServiceAccount's kubeconfig and a CDI directory in the work dir;
        the kubelet's registry and plugins directories are its defaults
        (inside the bench's private /var/lib/kubelet)."""
        self.setup_dra()
        return self.start_plugin(config_text=config_text,
                                 extra_args=[f"--kubeconfig={self.dra_kubeconfig}", f"--cdi-dir={self.cdi_dir}"])

    def host_path(self, path):
        """A path of the bench's mount namespace (e.g. under /var/lib/kubelet)
        as this process can open it."""
        return f"/proc/{self.vals['NS_PID']}/root{path}"

    def slice_collection(self):
        return "/apis/resource.k8s.io/v1/resourceslices"

    def dra_slice_selector(self):
        return f"spec.driver={DRA_DRIVER},spec.nodeName={self.node_name}"

    def wait_slices(self, predicate, what, timeout=WAIT):
        """Watches this node's ResourceSlices of the plugin's driver until
        predicate(devices) holds, `devices` being the published devices by
        name (of complete pools at their highest generation); returns them."""
        plugin = self.plugin
        found = {}

        def check(objects):
            if plugin is not None and plugin.poll() is not None:
                raise StoryFailure(f"the plugin exited with {plugin.returncode}")
            devices = published_devices(objects.values())
            if devices is not None and predicate(devices):
                found["devices"] = devices
                return True
            return False
        self.api.watch_collection_until(self.slice_collection(), check, timeout,
                                        f"ResourceSlices: {what}", selector=self.dra_slice_selector())
        return found["devices"]

    def start_plugin_image(self, image):
        """Starts the plugin from its container image, by podman in the bench's
        mount namespace, with the DaemonSet's arguments, securityContext
        (UID 0, read-only root, every capability dropped, no privilege
        escalation) and mounts; the simulated node's sysfs (at its own path,
        so its absolute links resolve) and /dev take the host's place. The
        container shares the host's network, as the pod's address is
        127.0.0.1 on this bench. The umockdev preload is not in the image:
        the plugin sees the node as scanned at start, without uevents."""
        self.plugin_runs += 1
        cfg_dir = os.path.join(self.work, "config")
        os.makedirs(cfg_dir, exist_ok=True)
        with open(os.path.join(cfg_dir, "config.yaml"), "w") as f:
            f.write(shipped_config())
        args = daemonset_args() + ["--sysfs-root", self.node.sysfs_root]
        podman = ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs", "run", "--rm",
                  "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
                  "--network", "host", "--user", "0:0", "--read-only", "--cap-drop", "ALL",
                  "--security-opt", "no-new-privileges", "--env", f"NODE_NAME={self.node_name}",
                  "-v", "/var/lib/kubelet/device-plugins:/var/lib/kubelet/device-plugins",
                  "-v", f"{self.node.dev_root}:/host/dev:ro",
                  "-v", "/var/lib/kubevirt-gpu-device-plugin:/var/lib/kubevirt-gpu-device-plugin",
                  "-v", f"{cfg_dir}:/etc/kubevirt-gpu-device-plugin:ro",
                  "-v", f"{self.node.sysfs_root}:{self.node.sysfs_root}:ro",
                  image, *args]
        self.plugin_log = os.path.join(self.work, f"plugin.{self.plugin_runs}.log")
        with open(self.plugin_log, "w") as out:
            self.plugin = subprocess.Popen(["nsenter", "-t", self.vals["NS_PID"], "-m", "--", *podman],
                                           stdout=out, stderr=subprocess.STDOUT)
        log(f"plugin image started (pid {self.plugin.pid}): {' '.join(podman)}")

    def stop_plugin(self):
        if self.plugin and self.plugin.poll() is None:
            self.plugin.terminate()
            try:
                self.plugin.wait(15)
            except subprocess.TimeoutExpired:
                self.plugin.kill()
                self.plugin.wait()
        rc = self.plugin.returncode if self.plugin else None
        self.plugin = None
        return rc

    def assert_plugin_running(self):
        if self.plugin is None or self.plugin.poll() is not None:
            raise StoryFailure(f"the plugin is not running (exit status "
                               f"{self.plugin.returncode if self.plugin else None})")

    def cluster(self, *args):
        r = subprocess.run([CLUSTER_SH, *args], env=self.env)
        if r.returncode != 0:
            raise StoryFailure(f"cluster.sh {' '.join(args)} failed with {r.returncode}")

    # -- waits on the API server
    def _while_plugin_runs(self, predicate):
        """The predicate, failing at once when the plugin has exited."""
        plugin = self.plugin

        def checked(obj):
            if plugin is not None and plugin.poll() is not None:
                raise StoryFailure(f"the plugin exited with {plugin.returncode}")
            return predicate(obj)
        return checked

    def wait_node(self, predicate, what, timeout=WAIT):
        return self.api.watch_until("/api/v1/nodes", self.node_name, self._while_plugin_runs(predicate),
                                    timeout, what)

    def wait_allocatable(self, expected, what=None, timeout=WAIT):
        """Waits until every resource of `expected` has that allocatable count."""
        def ok(node):
            alloc = node["status"].get("allocatable", {})
            return all(int(alloc.get(r, "0")) == n for r, n in expected.items())
        return self.wait_node(ok, what or f"allocatable {expected}", timeout)

    def wait_pod(self, name, predicate, what, timeout=WAIT, namespace="default"):
        return self.api.watch_until(f"/api/v1/namespaces/{namespace}/pods", name,
                                    self._while_plugin_runs(predicate), timeout,
                                    f"pod {name}: {what}")

    def create_pod(self, name, limits, namespace="default", resource_claims=None, container_claims=None):
        """A pod shaped like KubeVirt's virt-launcher: one `compute` container
        with limits on device-plugin resources; `resource_claims` go to
        spec.resourceClaims and `container_claims` ([{name, request}]) to the
        compute container's resources.claims, as virt-controller renders a
        VMI with DRA GPUs."""
        pod = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"kubevirt.io": "virt-launcher"}},
            "spec": {
                "automountServiceAccountToken": False,
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 0,
                "containers": [{
                    "name": "compute",
                    "image": "quay.io/kubevirt/virt-launcher:v1.6.0",
                    "command": ["/usr/bin/virt-launcher-monitor", "--qemu-timeout", "240s"],
                    "resources": {"limits": {**{k: str(v) for k, v in limits.items()},
                                             "cpu": "100m", "memory": "64Mi"}},
                }],
            },
        }
        if resource_claims:
            pod["spec"]["resourceClaims"] = resource_claims
        if container_claims:
            pod["spec"]["containers"][0]["resources"]["claims"] = container_claims
        return self.api.create(f"/api/v1/namespaces/{namespace}/pods", pod)

    def wait_pod_running(self, name):
        def running(p):
            st = p.get("status", {})
            cs = st.get("containerStatuses") or []
            return st.get("phase") == "Running" and cs and cs[0].get("ready")
        return self.wait_pod(name, running, "Running and ready")

    def container_records(self, pod, container="compute"):
        out = []
        with open(self.record) as f:
            for line in f:
                rec = json.loads(line)
                if rec["pod"] == pod and rec["container"] == container:
                    out.append(rec)
        return out


def published_devices(slices):
    """The devices of ResourceSlices by name, as a scheduler sees them: per
    pool only the slices of its highest generation, and None while a pool is
    incomplete (fewer slices of that generation than resourceSliceCount)."""
    pools = {}
    for s in slices:
        pool = s["spec"]["pool"]
        pools.setdefault(pool["name"], []).append(s)
    devices = {}
    for items in pools.values():
        gen = max(s["spec"]["pool"]["generation"] for s in items)
        current = [s for s in items if s["spec"]["pool"]["generation"] == gen]
        if len(current) != current[0]["spec"]["pool"]["resourceSliceCount"]:
            return None
        for s in current:
            for d in s["spec"].get("devices") or []:
                devices[d["name"]] = d
    return devices


def free_ports(n):
    import socket
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def run_story(fn):
    """Runs one story in a bench; exits 0, 1 or 77 (meson's skip)."""
    try:
        with Bench() as bench:
            fn(bench)
    except Skip as e:
        print(f"SKIP: {e}")
        sys.exit(77)
    except StoryFailure as e:
        print(f"FAIL: {e}")
        sys.exit(1)
    print("PASS")
    sys.exit(0)
