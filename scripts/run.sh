#!/usr/bin/env bash
# The main job. Installs what is missing, builds gng, checks the environment, then runs the
# embedded default. Until the closed loop lands (issue: the autonomous loop), the default is a
# solver demo: a 24-vertex Max-Cut solved exactly, by tabu search, and by QAOA (p = 2) on gng's
# classical state-vector simulator (~30 s; no quantum hardware is involved).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$here/scripts/setup.sh"
gng="$here/build/gng"
"$gng" doctor
echo
"$gng" solve "$here/examples/maxcut-3regular-24.rudy" --solver exact
echo
"$gng" solve "$here/examples/maxcut-3regular-24.rudy" --solver tabu --seed 1
echo
"$gng" qaoa "$here/examples/maxcut-3regular-24.rudy" --p 2 --shots 2048
