"""Figures of the DRA side against the real API server, scheduler and
kubelet, repeated: a vGPU created through sysfs (its uevent) -> the device in
the node's ResourceSlices, seen through a watch on the API server; a pod with
a ResourceClaimTemplate created -> the claim prepared by the plugin (its log
line) and the pod Running. Not a test (nothing is asserted); run by hand with
the variables the meson tests set:

  KVGPU_SOURCE_ROOT=$PWD KVGPU_PLUGIN_BINARY=build/test/src/kubevirt-gpu-device-plugin \\
  KVGPU_SIM_NODE=build/test/tests/support/node/sim-node /usr/bin/python3 tests/cluster/dra_figures.py [N]
"""

import json
import os
import statistics
import sys
import threading
import time
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import Bench  # noqa: E402
from dra_stories import MDEV_CLASS, create_claim_pod, create_template, request_spec, start_dra  # noqa: E402


def summary(name, values):
    values = sorted(values)
    print(f"{name:62s} n={len(values)} p50={statistics.median(values) * 1000:7.1f} ms "
          f"min={values[0] * 1000:7.1f} ms max={values[-1] * 1000:7.1f} ms", flush=True)


class SliceWatch:
    """One watch on the node's ResourceSlices for the whole run: the time each
    device name was first seen in an event."""

    def __init__(self, bench):
        self.seen = {}
        self.cond = threading.Condition()
        selector = urllib.parse.quote(bench.dra_slice_selector())
        self.url = f"{bench.slice_collection()}?watch=1&fieldSelector={selector}&timeoutSeconds=600"
        self.bench = bench
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        with self.bench.api._open(self.url, 610) as stream:
            for line in stream:
                now = time.monotonic()
                event = json.loads(line)
                for device in (event.get("object", {}).get("spec", {}).get("devices") or []):
                    with self.cond:
                        self.seen.setdefault(device["name"], now)
                        self.cond.notify_all()

    def wait(self, name, timeout=60):
        with self.cond:
            if not self.cond.wait_for(lambda: name in self.seen, timeout):
                raise SystemExit(f"{name} not in the slices within {timeout} s")
            return self.seen[name]


def prepared_lines(bench):
    with open(bench.plugin_log) as f:
        return f.read().count('msg="prepared ResourceClaim"')


def main(n):
    hot, prepared, running = [], [], []
    with Bench() as bench:
        node, _, _ = start_dra(bench)
        types = os.path.join(node.sysfs_root, "bus/pci/devices/0000:e1:00.0/mdev_supported_types/nvidia-592")
        watch = SliceWatch(bench)
        watch.wait("pci-0000-ca-00-0")  # the watch is up and has seen the pool
        for _ in range(n):
            new = str(uuid.uuid4())
            t0 = time.monotonic()
            with open(os.path.join(types, "create"), "w") as f:
                f.write(new + "\n")
            hot.append(watch.wait("mdev-" + new) - t0)
        create_template(bench, "l4", request_spec("vgpu", MDEV_CLASS))
        for i in range(n):
            before = prepared_lines(bench)
            t0 = time.monotonic()
            create_claim_pod(bench, f"figure-{i}", "gpu", "vgpu", template="l4")
            deadline = t0 + 60
            while prepared_lines(bench) == before:
                if time.monotonic() > deadline:
                    raise SystemExit("no prepare within 60 s")
                time.sleep(0.005)
            prepared.append(time.monotonic() - t0)
            bench.wait_pod_running(f"figure-{i}")
            running.append(time.monotonic() - t0)
        with open(bench.plugin_log) as f:
            lists = f.read().count('msg="listing ResourceSlices"')
    print(f"the plugin listed the node's slices {lists} time(s); every other sync wrote from its own copy")
    summary("uevent (UUID into create) -> device in a ResourceSlice (watch)", hot)
    summary("pod with a claim template created -> claim prepared", prepared)
    summary("pod with a claim template created -> pod Running", running)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
