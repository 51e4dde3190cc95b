"""Figures of the plugin against the real kubelet, repeated: plugin start ->
resources in the node's allocatable, hot-add -> allocatable, kubelet restart
-> every resource re-registered. Not a test (nothing is asserted); run by
hand, with the variables the meson tests set:

  KVGPU_SOURCE_ROOT=$PWD KVGPU_PLUGIN_BINARY=build/test/src/kubevirt-gpu-device-plugin \\
  KVGPU_SIM_NODE=build/test/tests/support/node/sim-node /usr/bin/python3 tests/cluster/figures.py [N]

The kubelet reports node status every second (nodeStatusUpdateFrequency 1s),
which dominates the first two figures.
"""

import os
import statistics
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import WAIT, Bench, StoryFailure  # noqa: E402
from stories import DEMO_NODE, L4_1Q  # noqa: E402


def summary(name, values):
    values = sorted(values)
    print(f"{name:55s} n={len(values)} p50={statistics.median(values):.2f} s "
          f"min={values[0]:.2f} s max={values[-1]:.2f} s", flush=True)


def registrations(bench):
    with open(os.path.join(bench.logs, "kubelet.log")) as f:
        return f.read().count("Got registration request from device plugin")


def main(n):
    start, hot, restart = [], [], []
    with Bench() as bench:
        node = bench.start_node(DEMO_NODE)
        listed = bench.list_resources()
        zero = {r: 0 for r in listed}
        for _ in range(n):
            t0 = bench.start_plugin()
            bench.wait_allocatable(listed)
            start.append(time.monotonic() - t0)
            bench.stop_plugin()
            bench.wait_allocatable(zero)
        bench.start_plugin()
        bench.wait_allocatable(listed)
        types = os.path.join(node.sysfs_root, "bus/pci/devices/0000:e1:00.0/mdev_supported_types/nvidia-592")
        for i in range(n):
            t0 = time.monotonic()
            with open(os.path.join(types, "create"), "w") as f:
                f.write(f"{uuid.uuid4()}\n")
            bench.wait_allocatable({L4_1Q: listed[L4_1Q] + i + 1})
            hot.append(time.monotonic() - t0)
        for _ in range(n):
            t0 = time.monotonic()
            bench.cluster("restart-kubelet")
            deadline = time.monotonic() + WAIT
            while registrations(bench) < len(listed):
                if time.monotonic() > deadline:
                    raise StoryFailure("not every resource registered again")
                time.sleep(0.02)
            restart.append(time.monotonic() - t0)
    summary("plugin start -> every resource in allocatable", start)
    summary("hot-add (UUID into create) -> allocatable", hot)
    summary("kubelet restart (SIGTERM) -> every resource re-registered", restart)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
