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
