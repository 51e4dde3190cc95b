#!/usr/bin/env bash
# The plugin's main job on a machine without GPUs: a simulated GPU node
# (umockdev: sysfs, uevents, /dev/vfio) and a simulated kubelet, with the real
# plugin serving between them. Shows the registrations, hot-adds a vGPU the
# way an admin would (a UUID written into the type's `create` file) and shows
# the kubelet's update; then tells how to try the rest.
#
#   ./scripts/demo.sh            stays up until Ctrl-C when run in a terminal
#   ./scripts/demo.sh --no-wait  exits after the hot-add (what CI and scripts want)
set -euo pipefail
cd "$(dirname "$0")/.."
wait_at_end=1
[ "${1:-}" = "--no-wait" ] && wait_at_end=0
[ -t 0 ] || wait_at_end=0

scripts/install-deps.sh
[ -f build/demo/build.ninja ] || { rm -rf build/demo && meson setup build/demo -Dbuildtype=debugoptimized >/dev/null; }
ninja -C build/demo src/kubevirt-gpu-device-plugin tests/support/node/sim-node tests/support/kubelet/sim-kubelet >/dev/null

plugin=$PWD/build/demo/src/kubevirt-gpu-device-plugin
work=$(mktemp -d /tmp/kvgpu-demo.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_for() { # wait_for FILE PATTERN [SECONDS]
  local deadline=$((SECONDS + ${3:-10}))
  until grep -q -- "$2" "$1" 2>/dev/null; do
    if ((SECONDS > deadline)); then echo "timed out waiting for '$2' in $1" >&2; cat "$1" >&2; exit 1; fi
    sleep 0.05
  done
}

mkfifo "$work/node.in" "$work/kubelet.in"
exec 3<>"$work/node.in" 4<>"$work/kubelet.in"

echo "== simulated node: tests/support/node/demo-node.conf (2x T4, A100, L4 with vGPUs, H200 with SR-IOV vGPU VFs)"
LD_PRELOAD=libumockdev-preload.so.0 build/demo/tests/support/node/sim-node \
  --description tests/support/node/demo-node.conf --ready-file "$work/node.env" \
  <"$work/node.in" >"$work/node.log" 2>&1 &
pids+=($!)
wait_for "$work/node.env" DEV_ROOT
# shellcheck disable=SC1091
source "$work/node.env"
export UMOCKDEV_DIR

mkdir "$work/plugins"
build/demo/tests/support/kubelet/sim-kubelet --plugin-dir "$work/plugins" \
  <"$work/kubelet.in" >"$work/kubelet.log" 2>&1 &
pids+=($!)
wait_for "$work/kubelet.log" listening

flags=(--sysfs-root "$SYSFS_ROOT" --dev-root "$DEV_ROOT" --plugin-dir "$work/plugins")
serve_flags=(--probe-port 0 --metrics-port 0) # the demo may run beside a real plugin
echo
echo "== kubevirt-gpu-device-plugin list"
"$plugin" list "${flags[@]}" 2>/dev/null

echo
echo "== the plugin serves; the simulated kubelet prints what it receives"
LD_PRELOAD=libumockdev-preload.so.0 "$plugin" "${flags[@]}" "${serve_flags[@]}" >"$work/plugin.log" 2>&1 &
pids+=($!)
wait_for "$work/kubelet.log" "update resource=nvidia.com/NVIDIA_L4-2Q"
sleep 0.2
cat "$work/kubelet.log"
seen=$(wc -l <"$work/kubelet.log")

uuid=$(cat /proc/sys/kernel/random/uuid)
create="$SYSFS_ROOT/bus/pci/devices/0000:e1:00.0/mdev_supported_types/nvidia-592/create"
echo
echo "== hot-add a vGPU, as on a real node:"
echo "$(date +%H:%M:%S.%3N) \$ echo $uuid > $create"
echo "$uuid" >"$create"
wait_for "$work/kubelet.log" "$uuid"
sleep 0.1
tail -n +$((seen + 1)) "$work/kubelet.log"
seen=$(wc -l <"$work/kubelet.log")

profile="$SYSFS_ROOT/bus/pci/devices/0000:41:00.4/nvidia/current_vgpu_type"
echo
echo "== give an SR-IOV VF a vGPU profile, as on a real node (no uevent: the profile watch reads it):"
echo "$(date +%H:%M:%S.%3N) \$ echo 1414 > $profile"
echo 1414 >"$profile"
wait_for "$work/kubelet.log" "0000:41:00.4"
sleep 0.1
tail -n +$((seen + 1)) "$work/kubelet.log"

cat <<EOF_HELP

== try the rest (in another terminal while this one runs):
  echo 1 > $SYSFS_ROOT/bus/mdev/devices/$uuid/remove      # remove the vGPU
  echo "unbind 0000:67:00.0"          > $work/node.in    # a T4 leaves vfio-pci: withdrawn
  echo "bind 0000:67:00.0 vfio-pci"   > $work/node.in    # ... and comes back
  echo "delete-vfio-node 40"          > $work/node.in    # the A100 turns Unhealthy
  echo "create-vfio-node 40"          > $work/node.in    # ... and Healthy again
  echo "add-gpu 0000:cb:00.0 id=10de:20f1 group=41 numa=1" > $work/node.in
  echo 0 > $profile    # the VF's profile cleared: withdrawn
  echo "set-numvfs 0000:41:00.0 0"    > $work/node.in    # the H200's VFs removed
  echo restart                        > $work/kubelet.in # the kubelet restarts; everything re-registers
  $plugin list ${flags[*]}
Logs: $work/{plugin,kubelet,node}.log
EOF_HELP

if ((wait_at_end)); then
  echo "Following the kubelet's log; Ctrl-C stops everything."
  tail -n 0 -f "$work/kubelet.log"
fi
