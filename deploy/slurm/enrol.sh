#!/usr/bin/env bash
# Enrols sites for a grid job: the operator's CA in WORK/ca (made once), and for each site id a
# directory WORK/sites/ID holding its own key (made there by `gng node init`; it never leaves that
# directory), its certificate signed by the CA, and the CA certificate and deny list. On a cluster
# whose nodes share WORK this stands for what each site does where it lives (docs: README, "Sites").
# Each site's KME (grid.sbatch with KME_PORT) gets an identity too, kme-ID, issued by the CA and its
# key moved into the site's directory; the orchestrator's KME, kme-orchestrator, stays in WORK/ca.
#
# usage: enrol.sh WORK ID...        (GNG: the gng binary, default `gng` on PATH)
set -euo pipefail
die() { printf 'enrol.sh: %s\n' "$*" >&2; exit 1; }
[ $# -ge 2 ] || die "usage: enrol.sh WORK ID..."
work=$1
shift
gng=${GNG:-gng}
command -v "$gng" >/dev/null || die "no gng binary '$gng' (set GNG)"
mkdir -p "$work/sites"
[ -f "$work/ca/ca.pem" ] || "$gng" pki init "$work/ca" >/dev/null
for id in "$@"; do
  [[ $id =~ ^[A-Za-z0-9._-]+$ ]] || die "site id '$id' may hold only letters, digits, '.', '_' and '-'"
  home=$work/sites/$id
  if [ ! -f "$home/issued/$id.pem" ]; then
    [ -f "$home/issued/$id.key.pem" ] || "$gng" node init "$home" --id "$id" >/dev/null
    [ -f "$work/ca/issued/$id.pem" ] || "$gng" pki sign "$work/ca" "$home/$id.csr.pem" --role node >/dev/null
    cp "$work/ca/issued/$id.pem" "$home/issued/$id.pem"
  fi
  if [ ! -f "$home/issued/kme-$id.pem" ]; then
    "$gng" pki issue "$work/ca" --role kme --id "kme-$id" >/dev/null
    mv "$work/ca/issued/kme-$id.key.pem" "$home/issued/"
    cp "$work/ca/issued/kme-$id.pem" "$home/issued/"
  fi
  cp "$work/ca/ca.pem" "$work/ca/crl.pem" "$home/"
done
[ -f "$work/ca/issued/kme-orchestrator.pem" ] || "$gng" pki issue "$work/ca" --role kme --id kme-orchestrator >/dev/null
