#!/bin/sh
# Runs one libFuzzer target for the test suite.
#   run_fuzzer.sh corpus  BINARY CORPUS_DIR
#       runs every committed input once; fails on any crash or broken property.
#   run_fuzzer.sh explore BINARY CORPUS_DIR WORK_DIR RUNS
#       a seeded run of RUNS inputs starting from the corpus; new inputs go to
#       WORK_DIR/new (never into the source tree), a crash to WORK_DIR/crash-*.
set -eu
mode=$1 binary=$2 corpus=$3

# The sanitizer reports are the point: stop at the first one, leaks included.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1:abort_on_error=0"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}halt_on_error=1:print_stacktrace=1"
# libFuzzer exits 77 on a crash by default, which meson reads as "skipped".
exit_codes="-error_exitcode=1 -timeout_exitcode=1"

case $mode in
corpus)
    set -- "$corpus"/*
    [ -e "$1" ] || { echo "no inputs in $corpus" >&2; exit 1; }
    echo "running $# committed inputs of $corpus"
    exec "$binary" $exit_codes -runs=0 "$corpus"
    ;;
explore)
    work=$4 runs=$5
    rm -rf "$work"
    mkdir -p "$work/new"
    status=0
    "$binary" $exit_codes -seed=1 -runs="$runs" -max_total_time=60 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$work/" -print_final_stats=1 "$work/new" "$corpus" || status=$?
    if [ "$status" -ne 0 ]; then
        for crash in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
            [ -e "$crash" ] || continue
            echo "found: $crash"
            echo "reproduce: $binary $crash"
            echo "keep it: cp $crash $corpus/"
        done
    fi
    exit $status
    ;;
*)
    echo "usage: $0 corpus|explore ..." >&2
    exit 2
    ;;
esac
