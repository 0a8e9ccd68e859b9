#!/usr/bin/env bash
# Sites as separate hosts: each of three sites runs in a network namespace of its own, reaching the
# orchestrator's host only through its own veth link (198.18.x.0/24, a benchmarking range), with
# its own folder and its own key. It enrols over that link with a one-time token (gng pki serve),
# dials in, trains, and leaves when the run is over (--once). Nothing is shared with the
# orchestrator but the CA certificate and the network. Each site, and the orchestrator's, has a
# KME of its own (gng kme --topology) in its namespace; the run's policy requires QKD keys, which
# the KMEs distil between themselves over the same links (simulated BB84 links). Needs root (ip
# netns); 77 when it cannot.
#
# usage: netns_test.sh GNG_BINARY SOURCE_DIR
set -euo pipefail
gng=$1 src=$2
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null; then
  echo "SKIP: network namespaces need root and iproute2"
  exit 77
fi
tag=$$
if ! { ip netns add "gng$tag-probe" && ip link add "gp$tag" type veth peer name "gq$tag" &&
       ip link set "gq$tag" netns "gng$tag-probe"; } 2>/dev/null; then
  ip link del "gp$tag" 2>/dev/null || true
  ip netns del "gng$tag-probe" 2>/dev/null || true
  echo "SKIP: this machine does not let even root make network namespaces and veth links"
  exit 77
fi
ip netns del "gng$tag-probe"  # and the veth pair with it

dir=$(mktemp -d /tmp/gng-netns.XXXXXX)
pids=()
net=$((tag % 200))
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for k in 1 2 3; do ip netns del "gng$tag-$k" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
hub_port=$(free_port)
enrol_port=$(free_port)
kme_port=$(free_port)   # the orchestrator's KME, on this host
site_kme_port=$(free_port)  # each site's KME, in its namespace
host_of() { echo "198.18.$((net)).$((4 * $1 + 1))"; }   # the orchestrator's end of site k's link
site_of() { echo "198.18.$((net)).$((4 * $1 + 2))"; }   # the site's end

# The operator: a CA, the orchestrator's certificate naming the addresses sites reach it by, the
# enrolment service.
"$gng" pki init "$dir/ca" >/dev/null
"$gng" pki issue "$dir/ca" --role orchestrator --id orchestrator --hosts "orchestrator,$(host_of 1),$(host_of 2),$(host_of 3)" >/dev/null
"$gng" pki serve "$dir/ca" --listen "0.0.0.0:$enrol_port" >"$dir/enrol.log" 2>&1 &
pids+=($!)

# Three hosts: a namespace each, linked to this one by a veth pair (a /30 each).
for k in 1 2 3; do
  ns=gng$tag-$k
  ip netns add "$ns"
  ip link add "gh$tag$k" type veth peer name "gs$tag$k"
  ip link set "gs$tag$k" netns "$ns"
  ip addr add "$(host_of $k)/30" dev "gh$tag$k"
  ip link set "gh$tag$k" up
  ip netns exec "$ns" ip addr add "$(site_of $k)/30" dev "gs$tag$k"
  ip netns exec "$ns" ip link set "gs$tag$k" up
  ip netns exec "$ns" ip link set lo up
done
for _ in $(seq 100); do grep -q "enrolment service" "$dir/enrol.log" && break; sleep 0.1; done

# Each site enrols from its own host with its own token; its key is made there.
for k in 1 2 3; do
  token=$("$gng" pki token "$dir/ca" --id "site-$k" --expires 10m | head -1)
  ip netns exec "gng$tag-$k" "$gng" node init "$dir/site-$k" --id "site-$k" --enrol "$(host_of $k):$enrol_port" \
    --token "$token" --ca "$dir/ca/ca.pem" >"$dir/init-$k.log" 2>&1 || { show_logs; cat "$dir/init-$k.log"; fail "site-$k could not enrol"; }
  [ ! -f "$dir/ca/issued/site-$k.key.pem" ] || fail "site-$k's key is in the CA's folder"
  printf 'id: site-%d\npki: %s\ndir: %s/work\norchestrator: %s:%d\nshard: {index: %d, of: 3}\ntrain_limit: 1500\nvalidation: 100\n' \
    "$k" "$dir/site-$k" "$dir/site-$k" "$(host_of $k)" "$hub_port" $((k - 1)) >"$dir/site-$k/node.yaml"
done

# A KME per site. The operator issues their certificates here (the enrolment service signs node
# certificates only) and hands each site its KME's. Each KME reads the network's plan with the
# addresses its own host reaches the others by; blocks of about 2^16 sifted bits keep it quick.
topology() {  # $1: the site whose view it is (0: the orchestrator's host)
  local k
  echo "kmes:"
  if [ "$1" = 0 ]; then echo "  - {id: kme-orchestrator, address: 0.0.0.0:$kme_port, saes: [orchestrator]}"
  else echo "  - {id: kme-orchestrator, address: $(host_of "$1"):$kme_port, saes: [orchestrator]}"; fi
  for k in 1 2 3; do
    if [ "$1" = "$k" ]; then echo "  - {id: kme-site-$k, address: 0.0.0.0:$site_kme_port, saes: [site-$k]}"
    else echo "  - {id: kme-site-$k, address: $(site_of $k):$site_kme_port, saes: [site-$k]}"; fi
  done
  echo "block_pulses: 4200000"
  echo "links:"
  for k in 1 2 3; do echo "  - {between: [kme-orchestrator, kme-site-$k], km: 25}"; done
}
"$gng" pki issue "$dir/ca" --role kme --id kme-orchestrator >/dev/null
topology 0 >"$dir/topology.yaml"
"$gng" kme --pki "$dir/ca" --id kme-orchestrator --topology "$dir/topology.yaml" --audit "$dir/kme-orchestrator" >"$dir/kme-orchestrator.log" 2>&1 &
pids+=($!)
for k in 1 2 3; do
  "$gng" pki issue "$dir/ca" --role kme --id "kme-site-$k" >/dev/null
  mv "$dir/ca/issued/kme-site-$k.key.pem" "$dir/site-$k/issued/"
  cp "$dir/ca/issued/kme-site-$k.pem" "$dir/site-$k/issued/"
  topology "$k" >"$dir/site-$k/topology.yaml"
  ip netns exec "gng$tag-$k" "$gng" kme --pki "$dir/site-$k" --id "kme-site-$k" --topology "$dir/site-$k/topology.yaml" \
    --audit "$dir/site-$k/kme" >"$dir/kme-site-$k.log" 2>&1 &
  pids+=($!)
  printf 'kme: 127.0.0.1:%d\nqkd: required\n' "$site_kme_port" >>"$dir/site-$k/node.yaml"
done

cp "$src/tests/lifecycle/data/tiny.yaml" "$src/tests/lifecycle/data/tiny-policy.yaml" "$dir/"
printf 'pki: ca\nnodes: {min: 3, wait: 2m, listen: 0.0.0.0:%d, kme: 127.0.0.1:%d}\n' "$hub_port" "$kme_port" >>"$dir/tiny.yaml"
echo 'qkd: required' >>"$dir/tiny-policy.yaml"
"$gng" run "$dir/tiny.yaml" --runs "$dir/runs" >"$dir/run.log" 2>&1 &
run_pid=$!
sites=()
for k in 1 2 3; do
  ip netns exec "gng$tag-$k" "$gng" node --config "$dir/site-$k/node.yaml" --once >"$dir/site-$k.log" 2>&1 &
  sites+=($!)
  pids+=($!)
done
pids+=("$run_pid")
status=0
wait "$run_pid" || status=$?
[ "$status" = 0 ] || { show_logs; fail "gng run exited with $status"; }
for k in 1 2 3; do
  s=0
  wait "${sites[$((k - 1))]}" || s=$?
  [ "$s" = 0 ] || { show_logs; fail "site-$k exited with $s"; }
done
grep -q "end: finished" "$dir/run.log" || { show_logs; fail "the run did not finish"; }
roster=$("$gng" nodes "$dir"/runs/*/)
echo "$roster"
for k in 1 2 3; do
  grep -Eq "^site-$k +(up|lost) +$(site_of $k | sed 's/\./\\./g'):[0-9]+ +1x28x28" <<<"$roster" || fail "site-$k did not dial in from its own host $(site_of $k)"
  grep -q "site-$k enrolled from $(site_of $k | sed 's/\./\\./g'):" "$dir/enrol.log" || { show_logs; fail "the enrolment service did not record site-$k"; }
done
# Every model exchange was keyed by QKD: the sites' KMEs received keys from the orchestrator's and
# the orchestrator's from theirs, each over its own link.
exchanges=$("$gng" audit show "$dir"/runs/*/ | grep -E '^ +[0-9]+ +[^ ]+ +exchange ' || true)
[ -n "$exchanges" ] || fail "the run's trail holds no exchange"
! grep -vq '"mode":"qkd+pqc"' <<<"$exchanges" || fail "an exchange went without a QKD key: $(grep -v '"mode":"qkd+pqc"' <<<"$exchanges" | head -1)"
for k in orchestrator 1 2 3; do
  trail=$dir/site-$k/kme
  [ "$k" = orchestrator ] && trail=$dir/kme-orchestrator
  shown=$("$gng" audit show "$trail")  # not piped into grep -q: pipefail would see gng's SIGPIPE
  grep -Eq ' qkd-delivered ' <<<"$shown" || { show_logs; fail "the KME in $trail received no key"; }
done
# A site's host reaches the orchestrator's end of its own link, and no other site's.
ip netns exec "gng$tag-1" bash -c "exec 3<>/dev/tcp/$(site_of 2)/$hub_port" 2>/dev/null && fail "site-1 reached site-2's host"
echo "PASS: three sites on three network namespaces enrolled with tokens, dialled in with KMEs of their own and finished the run on QKD keys"
