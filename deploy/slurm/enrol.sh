#!/usr/bin/env bash
# Enrols sites for a grid job: the operator's CA in WORK/ca (made once), and for each site id a
# directory WORK/sites/ID holding its own key (made there by `gng node init`; it never leaves that
# directory), its certificate signed by the CA, and the CA certificate and deny list. On a cluster
# whose nodes share WORK this stands for what each site does where it lives (docs: README, "Sites").
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
  cp "$work/ca/ca.pem" "$work/ca/crl.pem" "$home/"
done
