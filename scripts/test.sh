#!/usr/bin/env bash
# The whole test suite, as the README and CI run it. Installs what is missing,
# then runs four stages, each in its own build directory so that .ci/run finds
# every <build>/meson-logs/testlog.json and adds them up:
#
#   build/test  debug build: every test, the cluster stories (a real
#               Kubernetes, scripts/cluster.sh) only here
#   build/asan  AddressSanitizer + UndefinedBehaviorSanitizer (gcc): every test
#               but the cluster stories,
#               leak checks on, in the daemons the tests start too
#   build/tsan  ThreadSanitizer (gcc): the unit and integration tests, where the
#               loop thread, gRPC's threads and the test kubelet meet
#   build/fuzz  libFuzzer targets (clang-14): every committed corpus input, then
#               a short seeded run of each target
#
# A failing stage fails the script, but the later stages still run so that the
# counts are complete. Each stage prints its wall time.
set -uo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh || exit 1

root=$PWD
jobs=$(nproc)
failed=()
summary=()

# Sanitizer settings. Every report fails the process that makes it: ASan and
# UBSan at once, LeakSanitizer at exit (with exit code 23), ThreadSanitizer at
# once (exit code 66). The daemons the end-to-end tests start inherit these,
# and the tests check how the daemon exited after SIGTERM, so a leak or a race
# in the daemon fails the test that provoked it.
#  - verify_asan_link_order=0: the umockdev preload library comes before
#    libasan in the tests that fake a node; both work, ASan only complains.
asan_options="detect_leaks=1:verify_asan_link_order=0:halt_on_error=1"
lsan_options="suppressions=$root/tests/sanitizers/lsan.supp:print_suppressions=0"
ubsan_options="halt_on_error=1:print_stacktrace=1"
#  - ignore_noninstrumented_modules=1: gRPC, protobuf and abseil from Debian
#    are not built with TSan; the few of their accesses TSan sees (memcpy and
#    free called inside them) lack the ordering gRPC gives them and are noise.
#    What remains is filtered by tests/sanitizers/tsan.supp, entry by entry.
#  - history_size=7: the most access history TSan keeps, so that both sides
#    of a report have their stacks (a suppression may match either side).
tsan_options="halt_on_error=1:second_deadlock_stack=1:history_size=7:ignore_noninstrumented_modules=1:suppressions=$root/tests/sanitizers/tsan.supp"

# stage NAME COMMAND...: runs one stage, timing it and recording a failure.
stage() {
    local name=$1
    shift
    local start=$SECONDS
    echo
    echo "== $name"
    if "$@"; then
        summary+=("$(printf '%-34s %5d s  ok' "$name" $((SECONDS - start)))")
    else
        failed+=("$name")
        summary+=("$(printf '%-34s %5d s  FAILED' "$name" $((SECONDS - start)))")
    fi
}

# setup DIR OPTIONS...: configures a build directory once; a stale result of an
# earlier run never counts for this one.
setup() {
    local dir=$1
    shift
    rm -f "$dir/meson-logs/testlog.json"
    if [ ! -f "$dir/build.ninja" ]; then
        meson setup "$dir" "$@" >"$dir.setup.log" 2>&1 || { cat "$dir.setup.log"; return 1; }
    fi
}

debug_suite() {
    setup build/test -Dbuildtype=debug || return 1
    ninja -C build/test || return 1
    # The cluster stories' Kubernetes components (cold: about 9 minutes; then
    # only links). 77: no Go here, and the stories skip.
    cluster_build
    meson test -C build/test --print-errorlogs --num-processes "$jobs"
}

cluster_build() {
    local start=$SECONDS rc=0
    scripts/cluster.sh build || rc=$?
    echo "cluster components: $((SECONDS - start)) s (rc $rc)"
}

asan_suite() {
    setup build/asan -Dbuildtype=debug -Db_sanitize=address,undefined -Db_lundef=false || return 1
    ninja -C build/asan || return 1
    ASAN_OPTIONS=$asan_options LSAN_OPTIONS=$lsan_options UBSAN_OPTIONS=$ubsan_options \
        KVGPU_TIMEOUT_MULTIPLIER=3 \
        meson test -C build/asan --no-suite cluster --print-errorlogs --num-processes "$jobs" --timeout-multiplier 3
}

tsan_suite() {
    setup build/tsan -Dbuildtype=debug -Db_sanitize=thread -Db_lundef=false || return 1
    # meson test builds what the selected tests need (the plugin binary included).
    TSAN_OPTIONS=$tsan_options KVGPU_TIMEOUT_MULTIPLIER=3 \
        meson test -C build/tsan --suite unit --suite integration --print-errorlogs --num-processes "$jobs" \
        --timeout-multiplier 3
}

fuzz_regression() {
    CC=clang-14 CXX=clang++-14 setup build/fuzz -Dbuildtype=debugoptimized \
        -Db_sanitize=address,undefined -Db_lundef=false -Dtests=false -Dfuzz=true \
        "-Dcpp_args=-fsanitize=fuzzer-no-link -fno-sanitize-recover=undefined" || return 1
    # The whole tree, plugin binary included, also has to compile warning-free with clang.
    ninja -C build/fuzz || return 1
    ASAN_OPTIONS=$asan_options UBSAN_OPTIONS=$ubsan_options \
        meson test -C build/fuzz --suite fuzz --print-errorlogs --num-processes "$jobs"
}

mkdir -p build
total_start=$SECONDS
stage "debug: every test" debug_suite
stage "asan+ubsan: every test" asan_suite
stage "tsan: unit and integration tests" tsan_suite
stage "fuzz: corpora and short runs" fuzz_regression

echo
echo "== stages (wall time)"
printf '%s\n' "${summary[@]}"
printf '%-34s %5d s\n' "total" $((SECONDS - total_start))
if ((${#failed[@]})); then
    echo "failed stages: ${failed[*]}"
    exit 1
fi
