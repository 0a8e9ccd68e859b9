#!/usr/bin/env bash
# Installs what is missing, builds gng with its tests, and runs every test.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$here/scripts/setup.sh"
ctest --test-dir "$here/build" -j"${GNG_JOBS:-$(nproc)}" --output-on-failure --timeout 900
