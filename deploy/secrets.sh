#!/usr/bin/env bash
# Makes, outside any image, the keys and certificates that the deployments mount:
#
#   OUT/ca/                  the operator's CA (gng pki init). Its key, ca.key.pem, is mounted
#                            nowhere: keep this folder offline.
#   OUT/orchestrator/        the run's `pki:` (compose secret orchestrator-pki; Kubernetes Secrets
#                            gng-ca and gng-orchestrator): ca.pem, crl.pem, issued/orchestrator.{pem,key.pem}
#   OUT/sites/ID/            one per site (compose secret ID-pki): the site's key, made there by
#                            `gng node init` and never copied, its certificate (gng pki sign), ca.pem, crl.pem
#
# usage: deploy/secrets.sh [--out DIR] [--sites "site-a site-b site-c"] [--uid UID] [--deny ID]
#
#   --out    where (default: deploy/secrets, which git ignores)
#   --sites  the sites to enrol (default: site-a site-b site-c; "" for none, as for Kubernetes,
#            where each site pod makes its own key: deploy/k8s/enrol.sh)
#   --uid    the user the containers run as (default 10001, the image's): when run as root, the
#            orchestrator's and the sites' folders are given to it so that it can read its key
#   --deny   put ID's certificate on the CA's deny list first (gng pki deny); the new crl.pem is
#            then copied to the orchestrator and every site, where a running gng follows it
#   GNG      the gng command (default: this repository's build/gng, else gng on PATH); a command
#            with arguments is fine, e.g. GNG="podman run --rm -v $PWD/deploy/secrets:$PWD/deploy/secrets gng"
#
# Idempotent: what exists is kept (no key is made twice); ca.pem and crl.pem are refreshed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
die() { printf 'secrets.sh: error: %s\n' "$*" >&2; exit 1; }
log() { printf 'secrets.sh: %s\n' "$*" >&2; }

out=$here/secrets
sites="site-a site-b site-c"
uid=10001
deny=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=${2:?--out needs a folder}; shift 2 ;;
    --sites) [ $# -ge 2 ] || die "--sites needs a list"; sites=$2; shift 2 ;;
    --uid) uid=${2:?--uid needs a number}; shift 2 ;;
    --deny) deny=${2:?--deny needs an id}; shift 2 ;;
    -h | --help) sed -n '2,26p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
case "$uid" in '' | *[!0-9]*) die "--uid must be a number, got '$uid'" ;; esac
mkdir -p "$out"
out=$(cd "$out" && pwd)

if [ -n "${GNG:-}" ]; then
  read -r -a gng <<<"$GNG"
elif [ -x "$here/../build/gng" ]; then
  gng=("$here/../build/gng")
elif command -v gng >/dev/null; then
  gng=(gng)
else
  die "no gng: build it (bash scripts/setup.sh), put it on PATH or set GNG"
fi
run() { "${gng[@]}" "$@" >/dev/null || die "gng $* failed"; }

# The names a site may dial the orchestrator by: compose's service, Kubernetes' Service in the
# namespace gng, and loopback.
hosts=orchestrator,orchestrator.gng,orchestrator.gng.svc,orchestrator.gng.svc.cluster.local,localhost,127.0.0.1

ca=$out/ca
orch=$out/orchestrator

# --- the CA ------------------------------------------------------------------------------------
if [ ! -f "$ca/ca.pem" ]; then
  run pki init "$ca"
  log "CA made in $ca (ca.key.pem: keep it offline)"
fi
[ -f "$ca/ca.key.pem" ] || die "$ca holds ca.pem but no ca.key.pem: this script needs the CA's key"
chmod 0700 "$ca"
if [ -n "$deny" ]; then
  run pki deny "$ca" --id "$deny"
  log "$deny is on the deny list"
fi

# Copies FILE into DIR atomically (a running gng sees the old file or the new one, never half).
put() {
  local file=$1 dir=$2 name
  name=$(basename "$file")
  cmp -s "$file" "$dir/$name" && return 0
  cp "$file" "$dir/.$name.tmp"
  chmod 0644 "$dir/.$name.tmp"
  mv -f "$dir/.$name.tmp" "$dir/$name"
}

# --- the orchestrator ----------------------------------------------------------------------------
# Issued by the CA (gng pki issue); its key is then moved, not copied, to the orchestrator's folder.
mkdir -p "$orch/issued"
if [ ! -f "$orch/issued/orchestrator.key.pem" ]; then
  [ ! -f "$ca/issued/orchestrator.pem" ] ||
    die "$ca/issued/orchestrator.pem exists but $orch has no key for it: deny it (--deny orchestrator), remove $ca/issued/orchestrator.pem and run this again"
  run pki issue "$ca" --role orchestrator --id orchestrator --hosts "$hosts"
  mv "$ca/issued/orchestrator.key.pem" "$orch/issued/orchestrator.key.pem"
  cp "$ca/issued/orchestrator.pem" "$orch/issued/orchestrator.pem"
  log "orchestrator certified for $hosts"
fi
[ -f "$orch/issued/orchestrator.pem" ] || die "$orch/issued/orchestrator.key.pem has no certificate beside it"
put "$ca/ca.pem" "$orch"
put "$ca/crl.pem" "$orch"

# --- the sites -------------------------------------------------------------------------------------
# Each site's key is made in its own folder (as `gng node init` does on a real site) and stays there;
# the CA sees only its certificate request.
for id in $sites; do
  d=$out/sites/$id
  if [ ! -f "$d/issued/$id.key.pem" ]; then
    [ ! -f "$d/issued/$id.pem" ] || die "$d/issued/$id.pem has no key beside it"
    run node init "$d" --id "$id"
    log "$id: key and certificate request made in $d"
  fi
  if [ ! -f "$d/issued/$id.pem" ]; then
    [ ! -f "$ca/issued/$id.pem" ] ||
      die "$ca/issued/$id.pem exists: $id was certified for another key. Deny it (--deny $id), remove that file and run this again"
    run pki sign "$ca" "$d/$id.csr.pem" --role node
    cp "$ca/issued/$id.pem" "$d/issued/$id.pem"
    log "$id: certified as a node"
  fi
  put "$ca/ca.pem" "$d"
  put "$ca/crl.pem" "$d"
done

# --- who may read them ----------------------------------------------------------------------------
targets=("$orch")
for id in $sites; do targets+=("$out/sites/$id"); done
if [ "$(id -u)" = 0 ]; then
  chown -R "$uid:$uid" "${targets[@]}"
  chmod 0700 "${targets[@]}"
elif [ "$(id -u)" != "$uid" ]; then
  log "note: the containers run as uid $uid; run this as root (or chown -R $uid ${targets[*]}) so that they can read their keys"
fi
log "done: $out"
