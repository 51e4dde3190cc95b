#!/usr/bin/env bash
# The whole test suite, as the README and CI run it: installs what is
# missing, builds (debug), and runs every test. Results of each build land in
# <build>/meson-logs/testlog.json; .ci/run adds them up.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

jobs=$(nproc)
status=0

echo "== debug build: unit, support, integration and end-to-end tests"
[ -d build/test ] || meson setup build/test -Dbuildtype=debug >/dev/null
ninja -C build/test
meson test -C build/test --print-errorlogs --num-processes "$jobs" || status=1

exit $status
