#!/usr/bin/env bash
# Installs what is missing, builds gng with its tests, and runs every test.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The Slurm test runs its own four-node cluster on this machine; the namespace test needs ip.
GNG_EXTRA_PACKAGES="slurmd slurmctld slurm-client munge iproute2" bash "$here/scripts/setup.sh"
ctest --test-dir "$here/build" -j"${GNG_JOBS:-$(nproc)}" --output-on-failure --timeout 900
