#!/usr/bin/env bash
# Builds container/Containerfile with podman on this machine, where no image
# registry is reachable: the Debian base images the Containerfile names are
# made from Debian's own packages (debootstrap --variant=minbase bookworm,
# then podman import) when podman does not have them. Then checks the image:
# every shared library the binary needs resolves inside it, and the binary
# runs the way the DaemonSet runs it (read-only root, no capabilities, no
# privilege escalation). Prints IMAGE=<name:tag>.
#
#   scripts/image.sh            exits 77 (skipped) without podman, debootstrap or root
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "image: $*" >&2; }
skip() { echo "image: skipped: $*" >&2; exit 77; }

[ "$(id -u)" = 0 ] || skip "needs root (debootstrap, rootful podman)"
for tool in podman debootstrap runc; do
    command -v "$tool" >/dev/null || skip "needs $tool (apt-get install podman debootstrap runc)"
done

version=$(sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" meson.build | head -n 1)
[ -n "$version" ] || { log "no project version in meson.build"; exit 1; }
image=kubevirt-gpu-device-plugin:$version

# Podman as it works in this kind of container: runc (crun is not there),
# cgroupfs (no systemd), and limits the build's apt-get accepts.
podman_() { podman --runtime runc --cgroup-manager cgroupfs "$@"; }
ulimits=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)

# The base: the same minimal bookworm serves both names (the runtime stage
# installs what it needs; the build stage installs its compilers).
bases=(docker.io/library/debian:bookworm docker.io/library/debian:bookworm-slim)
missing=0
for b in "${bases[@]}"; do podman_ image exists "$b" || missing=1; done
if ((missing)); then
    work=$(mktemp -d /var/tmp/kvgpu-base.XXXXXX)
    trap 'rm -rf "$work"' EXIT
    start=$SECONDS
    log "making the Debian base with debootstrap (a few minutes)"
    debootstrap --variant=minbase bookworm "$work/root" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" \
        >"$work/debootstrap.log" 2>&1 || { tail -n 20 "$work/debootstrap.log" >&2; exit 1; }
    rm -rf "$work/root/var/cache/apt/archives/"*.deb "$work/root/var/lib/apt/lists/"*
    tar -C "$work/root" -c . | podman_ import --change 'CMD ["/bin/bash"]' - "${bases[0]}" >/dev/null
    podman_ tag "${bases[0]}" "${bases[1]}"
    rm -rf "$work"
    trap - EXIT
    log "base made in $((SECONDS - start)) s"
fi

start=$SECONDS
log "building $image"
# --network host: the stages' apt-get reaches Debian's mirror as the host's
# own apt does; podman's bridge networking needs more than this machine has.
podman_ build "${ulimits[@]}" --network host --build-arg "VERSION=$version" \
    -f container/Containerfile -t "$image" . >&2
log "built in $((SECONDS - start)) s"

# Every library resolves inside the image.
libs=$(podman_ run "${ulimits[@]}" --rm --network none --entrypoint /usr/bin/ldd "$image" \
    /usr/bin/kubevirt-gpu-device-plugin)
if grep -q 'not found' <<<"$libs"; then
    log "the runtime stage lacks libraries the binary needs:"
    grep 'not found' <<<"$libs" >&2
    exit 1
fi

# Run as the DaemonSet runs it: read-only root, every capability dropped, no
# privilege escalation, UID 0.
out=$(podman_ run "${ulimits[@]}" --rm --network none --read-only --cap-drop ALL --security-opt no-new-privileges \
    --user 0:0 "$image" --version)
case $out in
"kubevirt-gpu-device-plugin $version"*) ;;
*)
    log "the image's binary says '$out', expected version $version"
    exit 1
    ;;
esac
echo "IMAGE=$image"
