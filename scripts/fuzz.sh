#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each, default 60,
# as many at once as there are cores, then merges what they found into the
# committed corpora under tests/fuzz/corpus/<target>/ (only inputs that reach
# code the corpus did not). Crashes are kept in build/fuzz/campaign/<target>/
# with the command that reproduces them; the script then exits non-zero.
#
#   scripts/fuzz.sh                  # 60 s per target
#   scripts/fuzz.sh 600 node_reader  # ten minutes of one target
set -uo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift $(($# > 0 ? 1 : 0))
case $seconds in
'' | *[!0-9]*) echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac

scripts/install-deps.sh || exit 1

if [ ! -f build/fuzz/build.ninja ]; then
    CC=clang-14 CXX=clang++-14 meson setup build/fuzz -Dbuildtype=debugoptimized \
        -Db_sanitize=address,undefined -Db_lundef=false -Dtests=false -Dfuzz=true \
        "-Dcpp_args=-fsanitize=fuzzer-no-link -fno-sanitize-recover=undefined" >/dev/null || exit 1
fi
ninja -C build/fuzz || exit 1

if (($# > 0)); then
    targets=("$@")
else
    targets=()
    for dir in tests/fuzz/corpus/*/; do
        targets+=("$(basename "$dir")")
    done
fi

export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
jobs=${FUZZ_JOBS:-$(nproc)}

run_target() {
    local target=$1
    local binary=build/fuzz/tests/fuzz/fuzz-${target//_/-}
    local work=build/fuzz/campaign/$target
    local corpus=tests/fuzz/corpus/$target
    rm -rf "$work"
    mkdir -p "$work/new" "$corpus"
    "$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$work/" "$work/new" "$corpus" >"$work/fuzz.log" 2>&1
    local status=$?
    local before after
    before=$(find "$corpus" -type f | wc -l)
    "$binary" -merge=1 "$corpus" "$work/new" >"$work/merge.log" 2>&1
    after=$(find "$corpus" -type f | wc -l)
    local runs
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/fuzz.log" | grep -o '[0-9]*$')
    echo "$target: ${runs:-?} inputs in ${seconds} s, corpus $before -> $after files, exit $status"
    if ((status != 0)); then
        for crash in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
            [ -e "$crash" ] || continue
            echo "  found:     $crash (log: $work/fuzz.log)"
            echo "  reproduce: $binary $crash"
        done
        return 1
    fi
}

failed=()
pids=()
names=()
for target in "${targets[@]}"; do
    if [ ! -x "build/fuzz/tests/fuzz/fuzz-${target//_/-}" ]; then
        echo "unknown target: $target" >&2
        failed+=("$target")
        continue
    fi
    while (($(jobs -rp | wc -l) >= jobs)); do
        wait -n
    done
    run_target "$target" &
    pids+=($!)
    names+=("$target")
done
for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || failed+=("${names[$i]}")
done

if ((${#failed[@]})); then
    echo "crashes or errors in: ${failed[*]}"
    echo "Fix the bug, then keep each crash input: cp <crash> tests/fuzz/corpus/<target>/crash-<what-it-was>"
    exit 1
fi
echo "no crashes; new corpus entries are in tests/fuzz/corpus (git status shows them)"
