#!/usr/bin/env bash
# The operator's side of the Kubernetes deployment, run where the CA lives (never in the cluster):
#
#   1. deploy/secrets.sh --sites "" makes the CA and the orchestrator's identity if they are missing;
#   2. the Secrets the manifests name are created or updated from them:
#        gng-ca            ca.pem, crl.pem                       (orchestrator and sites)
#        gng-orchestrator  orchestrator.pem, orchestrator.key.pem (orchestrator only)
#   3. each site pod waiting in its init step (site-0 … site-N-1) has its certificate request read
#      and signed (gng pki sign --role node); its key stays in its volume;
#   4. the Secret gng-site-certs gets every site's certificate (public material).
#
# usage: deploy/k8s/enrol.sh [--secrets DIR] [--namespace NS] [--sites N]
# Run it again after `gng pki deny DIR/ca --id ID` (or secrets.sh --deny ID): gng-ca then carries the
# new crl.pem to every pod, where the running gng follows it. GNG: as for secrets.sh.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
die() { printf 'enrol.sh: error: %s\n' "$*" >&2; exit 1; }
log() { printf 'enrol.sh: %s\n' "$*" >&2; }

secrets=$here/../secrets
ns=gng
count=3
while [ $# -gt 0 ]; do
  case "$1" in
    --secrets) secrets=${2:?--secrets needs a folder}; shift 2 ;;
    --namespace) ns=${2:?--namespace needs a name}; shift 2 ;;
    --sites) count=${2:?--sites needs a number}; shift 2 ;;
    -h | --help) sed -n '2,16p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
case "$count" in '' | *[!0-9]*) die "--sites must be a number, got '$count'" ;; esac
command -v kubectl >/dev/null || die "no kubectl"

bash "$here/../secrets.sh" --out "$secrets" --sites "" || die "secrets.sh failed"
secrets=$(cd "$secrets" && pwd)
ca=$secrets/ca
orch=$secrets/orchestrator
if [ -n "${GNG:-}" ]; then
  read -r -a gng <<<"$GNG"
elif [ -x "$here/../../build/gng" ]; then
  gng=("$here/../../build/gng")
else
  gng=(gng)
fi

# kubectl create … --dry-run=client -o yaml | kubectl apply: creates the Secret or updates it.
apply_secret() {
  local name=$1
  shift
  kubectl -n "$ns" create secret generic "$name" "$@" --dry-run=client -o yaml | kubectl apply -f - >/dev/null ||
    die "could not apply the Secret $name"
  log "Secret $name applied"
}

apply_secret gng-ca --from-file=ca.pem="$ca/ca.pem" --from-file=crl.pem="$ca/crl.pem"
apply_secret gng-orchestrator --from-file=orchestrator.pem="$orch/issued/orchestrator.pem" \
  --from-file=orchestrator.key.pem="$orch/issued/orchestrator.key.pem"

# Requests of the site pods still waiting for a certificate.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for ((k = 0; k < count; k++)); do
  id=site-$k
  if [ -f "$ca/issued/$id.pem" ]; then
    continue
  fi
  if ! kubectl -n "$ns" exec "$id" -c enrol -- cat "/var/lib/gng/pki/$id.csr.pem" >"$work/$id.csr.pem" 2>/dev/null; then
    log "$id: no request to read (is the pod in its init step 'enrol'?); run this again later"
    continue
  fi
  "${gng[@]}" pki sign "$ca" "$work/$id.csr.pem" --role node >/dev/null || die "signing $id's request failed"
  [ -f "$ca/issued/$id.pem" ] || die "the request read from pod $id names another id: check $ca/issued and deny what it signed"
  log "$id: certified as a node"
done

# Every site certificate the CA holds: the pods find theirs by name.
certs=()
for ((k = 0; k < count; k++)); do
  [ ! -f "$ca/issued/site-$k.pem" ] || certs+=(--from-file="site-$k.pem=$ca/issued/site-$k.pem")
done
[ ${#certs[@]} -eq 0 ] || apply_secret gng-site-certs "${certs[@]}"
log "done"
