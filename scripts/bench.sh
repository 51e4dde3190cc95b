#!/usr/bin/env bash
# Builds the plugin optimised and runs the reactor benchmark on a simulated
# node; prints a table. Extra arguments go to the benchmark (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
[ -f build/bench/build.ninja ] || { rm -rf build/bench && meson setup build/bench -Dbuildtype=release >/dev/null; }
ninja -C build/bench src/kubevirt-gpu-device-plugin bench/bench-reactor bench/bench-floor-server \
  bench/bench-sriov >/dev/null
KVGPU_PLUGIN_BINARY="$PWD/build/bench/src/kubevirt-gpu-device-plugin" \
LD_PRELOAD=libumockdev-preload.so.0 \
  build/bench/bench/bench-reactor "$@"
echo
# SR-IOV vGPU: VF events and profile writes to the kubelet, the profile watch's cost.
KVGPU_PLUGIN_BINARY="$PWD/build/bench/src/kubevirt-gpu-device-plugin" \
LD_PRELOAD=libumockdev-preload.so.0 \
  build/bench/bench/bench-sriov
echo
# Against the real kubelet and API server (tests/cluster, docs/cluster-bench.md):
# plugin start → resources in allocatable, hot-add → allocatable, kubelet
# restart → every resource re-registered. Skipped where the bench cannot run
# (no Go, no CAP_SYS_ADMIN): its reason is printed.
ninja -C build/bench tests/support/node/sim-node >/dev/null
if scripts/cluster.sh build; then
  KVGPU_SOURCE_ROOT="$PWD" KVGPU_PLUGIN_BINARY="$PWD/build/bench/src/kubevirt-gpu-device-plugin" \
  KVGPU_SIM_NODE="$PWD/build/bench/tests/support/node/sim-node" \
    /usr/bin/python3 tests/cluster/figures.py 5
  # DRA: uevent -> the device in a ResourceSlice (a watch on the API
  # server), and a claim's pod -> prepared and Running.
  KVGPU_SOURCE_ROOT="$PWD" KVGPU_PLUGIN_BINARY="$PWD/build/bench/src/kubevirt-gpu-device-plugin" \
  KVGPU_SIM_NODE="$PWD/build/bench/tests/support/node/sim-node" \
    /usr/bin/python3 tests/cluster/dra_figures.py 9
else
  echo "real-cluster figures skipped (scripts/cluster.sh build: exit $?)"
fi
