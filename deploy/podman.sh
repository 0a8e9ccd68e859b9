#!/usr/bin/env bash
# Runs the grid of deploy/compose.yaml with podman on a Debian 12 machine, as root:
#
#   1. installs podman, podman-compose, runc, debootstrap (and netavark/aardvark-dns, which give
#      the compose network its DNS) when they are missing;
#   2. takes the Debian 12 base image from a registry or, when none can be reached, makes one with
#      debootstrap from this machine's apt source and `podman import`s it;
#   3. builds the image (deploy/Containerfile) with runc and explicit nofile/nproc ulimits;
#   4. makes the keys and certificates outside the image (deploy/secrets.sh, with the image's gng);
#   5. brings the compose file up, waits for the run to end and prints its roster (gng nodes).
#
# usage: bash deploy/podman.sh [--keep]     (--keep: leave the sites running at the end)
# Environment: GNG_IMAGE (default localhost/gng:latest), GNG_SECRETS (default deploy/secrets),
#   GNG_NOFILE (65536), GNG_NPROC (8192), each at most this shell's hard limit. Takes minutes: most of it OpenSSL and gng's build.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
image=${GNG_IMAGE:-localhost/gng:latest}
secrets=${GNG_SECRETS:-$here/secrets}
# Explicit limits (runc refuses to start a container without them on some hosts), at most what
# this shell may raise itself to: asking for more fails with "error setting rlimit".
cap() { local h; h=$(ulimit "$1"); [ "$h" = unlimited ] || [ "$h" -ge "$2" ] && echo "$2" || echo "$h"; }
nofile=${GNG_NOFILE:-$(cap -Hn 65536)}
nproc=${GNG_NPROC:-$(cap -Hu 8192)}
keep=""
log() { printf '[podman.sh] %s\n' "$*" >&2; }
die() { printf '[podman.sh] error: %s\n' "$*" >&2; exit 1; }

for a in "$@"; do
  case "$a" in
    --keep) keep=1 ;;
    -h | --help) sed -n '2,15p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) die "unknown argument '$a' (see --help)" ;;
  esac
done
[ "$(id -u)" = 0 ] || die "run this as root (rootful podman with runc)"
[ -r /etc/debian_version ] || die "this script is for Debian 12"

# crun fails on some cgroup layouts (this project's machines among them): runc everywhere.
pod() { podman --runtime runc "$@"; }
limits=(--ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc")

# --- 1. packages ---------------------------------------------------------------------------------
packages=(podman podman-compose runc debootstrap netavark aardvark-dns iptables)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
backend=$(podman info --format '{{.Host.NetworkBackend}}' 2>/dev/null || echo unknown)
[ "$backend" = netavark ] ||
  log "warning: podman's network backend is '$backend', not netavark: the sites find 'orchestrator' by name only with a DNS plugin"

# --- 2. the Debian 12 base image -----------------------------------------------------------------
# The apt source this machine uses (deb822 or one-line), so that a machine with a local mirror and
# no registry still gets an image.
mirror() {
  local uri=""
  [ ! -r /etc/apt/sources.list.d/debian.sources ] ||
    uri=$(sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/debian.sources | tr ' ' '\n' | grep -v security | head -n 1 || true)
  [ -n "$uri" ] || [ ! -r /etc/apt/sources.list ] ||
    uri=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)
  printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}
base=""
if pod image exists localhost/gng-debian:12; then
  base=localhost/gng-debian:12
elif pod image exists docker.io/library/debian:12 || timeout 180 podman --runtime runc pull -q docker.io/library/debian:12 >/dev/null 2>&1; then
  base=docker.io/library/debian:12
else
  uri=$(mirror)
  log "no debian:12 from a registry: making one with debootstrap from $uri"
  root=$(mktemp -d /var/tmp/gng-debian.XXXXXX)
  trap 'rm -rf "$root"' EXIT
  debootstrap --variant=minbase bookworm "$root" "$uri" >/dev/null || die "debootstrap from $uri failed"
  # The image's apt uses the same source (scripts/setup.sh reads debian.sources for OpenSSL's).
  rm -f "$root/etc/apt/sources.list"
  if [ -r /etc/apt/sources.list.d/debian.sources ]; then
    cp /etc/apt/sources.list.d/debian.sources "$root/etc/apt/sources.list.d/debian.sources"
  else
    printf 'Types: deb\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$uri" >"$root/etc/apt/sources.list.d/debian.sources"
  fi
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
  tar -C "$root" -c . | pod import --change 'CMD ["/bin/bash"]' - localhost/gng-debian:12 >/dev/null ||
    die "podman import failed"
  rm -rf "$root"
  trap - EXIT
  base=localhost/gng-debian:12
fi
log "base image: $base"

# --- 3. the image --------------------------------------------------------------------------------
# The Containerfile copies only CMakeLists.txt, proto/, src/, scripts/ and deploy/'s build files:
# never deploy/secrets.
log "building $image (OpenSSL and gng: many minutes the first time)"
pod build "${limits[@]}" --build-arg "BASE=$base" -f "$here/Containerfile" -t "$image" "$repo" ||
  die "podman build failed"

# --- 4. keys and certificates, outside the image -----------------------------------------------
mkdir -p "$secrets"
secrets=$(cd "$secrets" && pwd)
GNG="podman --runtime runc run --rm ${limits[*]} --network none --user 0 -v $secrets:$secrets $image" \
  bash "$here/secrets.sh" --out "$secrets" || die "secrets.sh failed"

# --- 5. the grid -----------------------------------------------------------------------------------
compose=(podman-compose -p gng -f "$here/compose.yaml" "--podman-args=--runtime runc")
export GNG_IMAGE=$image GNG_SECRETS=$secrets GNG_NOFILE=$nofile GNG_NPROC=$nproc
log "starting the orchestrator and three sites"
"${compose[@]}" up -d >/dev/null || die "podman-compose up failed"
log "waiting for the run to end (podman logs -f gng-orchestrator shows it)"
status=$(pod wait gng-orchestrator | tail -n 1) || die "podman wait gng-orchestrator failed"
pod logs --tail 30 gng-orchestrator || true
# The roster, read from the run's volume by a container of its own (the orchestrator has exited;
# read-write: SQLite in WAL mode needs its -shm file even to read).
# shellcheck disable=SC2016  # expanded by the container's shell
pod run --rm "${limits[@]}" --network none -v gng-runs:/var/lib/gng/runs --entrypoint /bin/sh "$image" -c \
  'run=$(find /var/lib/gng/runs -mindepth 1 -maxdepth 1 -type d | sort | tail -n 1); echo "gng nodes $run"; gng nodes "$run"' ||
  log "could not read the roster"
if [ -z "$keep" ]; then
  "${compose[@]}" down >/dev/null || log "podman-compose down failed"
  log "stopped; the volumes gng-runs and gng-site-* keep the run and the sites' audit logs"
fi
[ "$status" = 0 ] || die "the orchestrator exited with status $status"
log "the run has ended"
