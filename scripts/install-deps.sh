#!/usr/bin/env bash
# Installs, from Debian 12's packages, whatever the build, the tests and the
# demo need and the machine does not have yet. Safe to run again.
set -euo pipefail

packages=(
  # build
  meson ninja-build pkg-config g++
  libudev-dev libuv1-dev libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  libfmt-dev pci.ids libcli11-dev libyaml-cpp-dev prometheus-cpp-dev
  libcurl4-openssl-dev nlohmann-json3-dev
  # tests, demo and benchmarks
  doctest-dev umockdev libumockdev-dev python3 python3-yaml prometheus
  # sanitizer and fuzzing builds
  clang-14 libclang-rt-14-dev
  # the real-Kubernetes bench: the container image (scripts/image.sh) and the
  # tools its scripts use; Go builds the Kubernetes components (tests/cluster)
  podman debootstrap runc iproute2 util-linux openssl curl
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: run as root (or with sudo) to install packages" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
