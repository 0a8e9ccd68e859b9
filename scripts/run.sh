#!/usr/bin/env bash
# The main job. Installs what is missing, builds gng, checks the environment, then runs the whole
# loop on the embedded default: examples/fashion-mnist.yaml — Fashion-MNIST from Debian's
# dataset-fashion-mnist on three local `gng node` processes (libtorch training, FedAvg, serving),
# a run-local CA and KME (PQ-TLS, QKD keys from simulated BB84 links), SQLite state, the audit
# trail and the HTML report under runs/<id>/, within the policy's 30-minute budget on two cores.
# A killed run continues with:  build/gng run --resume runs/<id>
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$here/scripts/setup.sh"
gng="$here/build/gng"
"$gng" doctor
echo
cd "$here"
"$gng" run examples/fashion-mnist.yaml
