#!/usr/bin/env bash
# The grid's fabric measured side by side (docs/benchmarks.md, "Dial-in sites"): for each binary,
# REPEATS runs of federated.yaml with three local sites, in turns, reporting medians of
#   - the exchange per node and round (the run's own "exchange N ms per node" lines; rounds 2-6,
#     round 1 also pays the first handshakes),
#   - the whole run's wall time,
#   - bytes on the wire per round: loopback bytes (received) of a run with 6 rounds minus one with 0, / 6
#     (every byte the fabric, TLS, polls and KME move; run it on an otherwise idle machine),
# and, for the binary under test, the time from starting `gng node` to its first work (a remote
# site dialling in to a run that waits for it).
#
# usage: bench/grid.sh [REPEATS]     env: GNG (default build/gng), BASELINE (another gng, e.g.
#        built from 87bf245, whose nodes were forked and dialled into: nodes: {count: 3}),
#        BASELINE_NODES (its nodes line, default "{count: 3, partition: iid}")
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
repeats=${1:-3}
gng=${GNG:-$root/build/gng}
work=$(mktemp -d /tmp/gng-bench-grid.XXXXXX)
trap 'rm -rf "$work"' EXIT
median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
lo_bytes() { awk '/^ *lo:/ {sub(/^ *lo:/, ""); printf "%.0f\n", $1}' /proc/net/dev; }

# run BIN NODES ROUNDS TAG: one run; prints "seconds bytes" and keeps its log as $work/TAG.log
run() {
  local bin=$1 nodes=$2 rounds=$3 tag=$4
  { cat "$here/federated.yaml"; echo "federation: {rounds: $rounds, epochs: 1}"; echo "nodes: $nodes"; } > "$work/$tag.yaml"
  local b0 t0 t1 b1
  b0=$(lo_bytes)
  t0=$(date +%s.%N)
  "$bin" run "$work/$tag.yaml" --runs "$work/runs-$tag" > "$work/$tag.log" 2>&1 || { tail -20 "$work/$tag.log" >&2; return 1; }
  t1=$(date +%s.%N)
  b1=$(lo_bytes)
  echo "$(awk "BEGIN {print $t1 - $t0}") $((b1 - b0))"
}

declare -A label=([new]="$gng")
names=(new)
if [ -n "${BASELINE:-}" ]; then label[old]=$BASELINE; names=(old new); fi
old_nodes=${BASELINE_NODES:-"{count: 3, partition: iid}"}  # quoted: a bare } would end the expansion
declare -A nodes_of=([new]="{local: 3, partition: iid}" [old]="$old_nodes")
for name in "${names[@]}"; do : > "$work/$name.exchange"; : > "$work/$name.wall"; : > "$work/$name.bytes"; done
for i in $(seq "$repeats"); do
  for name in "${names[@]}"; do
    read -r wall bytes6 < <(run "${label[$name]}" "${nodes_of[$name]}" 6 "$name-$i")
    read -r _ bytes0 < <(run "${label[$name]}" "${nodes_of[$name]}" 0 "$name-$i-r0")
    echo "$wall" >> "$work/$name.wall"
    echo $(((bytes6 - bytes0) / 6)) >> "$work/$name.bytes"
    sed -n 's/.*round \([2-6]\) (.*exchange \([0-9]*\) ms per node.*/\2/p' "$work/$name-$i.log" >> "$work/$name.exchange"
    echo "  $name run $i: $wall s" >&2
  done
done

echo "binary | exchange per node and round (ms, median of rounds 2-6) | whole run (s, median) | bytes on the wire per round (median)"
echo "---|---|---|---"
for name in "${names[@]}"; do
  printf '%s (%s) | %s | %s | %s\n' "$name" "${label[$name]}" "$(median < "$work/$name.exchange")" \
    "$(median < "$work/$name.wall")" "$(median < "$work/$name.bytes")"
done

# Time to first work: a run that waits for one remote site; the site is started and timed.
ca=$work/ca
"$gng" pki init "$ca" > /dev/null
"$gng" node init "$work/site" --id site-1 > /dev/null
"$gng" pki sign "$ca" "$work/site/site-1.csr.pem" --role node > /dev/null
cp "$ca/issued/site-1.pem" "$work/site/issued/"
cp "$ca/ca.pem" "$ca/crl.pem" "$work/site/"
: > "$work/first"
for i in $(seq "$repeats"); do
  port=$((30000 + RANDOM % 20000))
  { cat "$here/federated.yaml"; echo "pki: $ca"; echo "nodes: {min: 1, wait: 2m, listen: 127.0.0.1:$port}"; } > "$work/first.yaml"
  sed -i 's/qkd: *[a-z]*//; s/approval: auto}/approval: auto, qkd: off}/' "$work/first.yaml"
  "$gng" run "$work/first.yaml" --runs "$work/runs-first-$i" > "$work/first-run.log" 2>&1 &
  orch=$!
  for _ in $(seq 200); do grep -q "sites dial in" "$work/first-run.log" && break; sleep 0.05; done
  printf 'id: site-1\npki: %s\ndir: %s/work-%d\norchestrator: 127.0.0.1:%d\ntrain_limit: 12000\nvalidation: 500\n' \
    "$work/site" "$work/site" "$i" "$port" > "$work/site/node.yaml"
  t0=$(date +%s.%N)
  "$gng" node --config "$work/site/node.yaml" --once > "$work/first-node.log" 2>&1 &
  site=$!
  for _ in $(seq 3000); do grep -q "first work" "$work/first-node.log" && break; sleep 0.02; done
  t1=$(date +%s.%N)
  grep -q "first work" "$work/first-node.log" && awk "BEGIN {print $t1 - $t0}" >> "$work/first"
  kill "$orch" "$site" 2>/dev/null || true  # the rest of the run is not what is measured here
  wait "$orch" 2>/dev/null || true
  wait "$site" 2>/dev/null || true
done
echo
echo "time from starting gng node to its first work (s, median of $repeats): $(median < "$work/first")"
