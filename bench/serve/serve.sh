#!/usr/bin/env bash
# /v1/predict throughput and latency with wrk, two gng builds side by side on one model:
#   BASELINE=/path/to/old/gng bash bench/serve/serve.sh [ROUNDS]          (default 3 rounds)
# Each round serves the model with each build in turn (the defaults: 64 in flight, compute slots =
# cores) and runs `wrk -t2 -c16 -d15s` with one 784-float image as JSON per request, then the same
# while 200 idle TCP connections (sending nothing) are held open: a server whose fixed pool of
# workers each holds a connection serves nobody else until they time out. Prints one line per run
# and the medians. Needs wrk (Debian's package) and a built tree (bash scripts/test.sh).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
rounds=${1:-3}
new="$here/build/gng"
old=${BASELINE:?set BASELINE to the gng binary to compare with}
command -v wrk >/dev/null || { echo "wrk missing: apt-get install wrk" >&2; exit 1; }
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

# The promoted-size CNN (width 32, depth 2), one epoch.
"$here/build/bench/train" --design width=32,depth=2 --epochs 1 --samples 20000 --max-eval 1000 --save "$work/model.pt" >/dev/null
python3 - "$work/predict.lua" <<'PY'
import sys
body = '{"inputs": [[' + ', '.join(['0.25'] * 784) + ']]}'
open(sys.argv[1], 'w').write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = \'' + body + '\'\n')
PY

port=18089
run() {  # run BUILD LABEL IDLE: prints "label idle requests/s p50 p99 non2xx"
  local bin=$1 label=$2 idle=$3
  "$bin" serve "$work/model.pt" --listen 127.0.0.1:$port > "$work/serve.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:$port/healthz >/dev/null 2>&1 && break; sleep 0.1; done
  local holder=""
  if [ "$idle" -gt 0 ]; then
    # $idle connections that send nothing, each reopened as soon as the server drops it.
    python3 -c "
import select, socket, time
def conn(): return socket.create_connection(('127.0.0.1', $port))
s = [conn() for _ in range($idle)]
end = time.time() + 60
while time.time() < end:
    ready, _, _ = select.select(s, [], [], 0.2)
    for c in ready:
        if not c.recv(4096):
            c.close(); s[s.index(c)] = conn()" &
    holder=$!
    sleep 1
  fi
  local out
  out=$(wrk -t2 -c16 -d15s --latency -s "$work/predict.lua" http://127.0.0.1:$port/v1/predict 2>&1)
  [ -z "$holder" ] || kill $holder 2>/dev/null || true
  kill $pid; wait $pid 2>/dev/null || true
  local rps p50 p99 bad
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  bad=$(awk '/Non-2xx/ {print $NF}' <<<"$out"); bad=${bad:-0}
  echo "$label idle=$idle rps=$rps p50=$p50 p99=$p99 non2xx=$bad"
}
: > "$work/results"
for r in $(seq "$rounds"); do
  for idle in 0 200; do
    run "$old" baseline "$idle" | tee -a "$work/results"
    run "$new" new "$idle" | tee -a "$work/results"
  done
done
echo "medians over $rounds rounds:"
for label in baseline new; do
  for idle in 0 200; do
    grep "^$label idle=$idle " "$work/results" | sed 's/.*rps=\([0-9.]*\).*/\1/' | sort -n |
      awk -v l="$label" -v i="$idle" '{v[NR]=$1} END {printf "  %-8s idle=%-3s %s requests/s\n", l, i, v[int((NR+1)/2)]}'
  done
done
