#!/usr/bin/env bash
# Installs what gng needs on Debian 12 (as root, or via sudo), builds OpenSSL >= 3.5 once from
# Debian's stable source package when the system's is older, and configures + builds gng in build/.
# Idempotent: a second run installs nothing and rebuilds only what changed.
#
# Environment:
#   GNG_CACHE   where built dependencies are cached (default: ~/.cache/gng)
#   GNG_JOBS    parallel build jobs (default: nproc)
#   GNG_EXTRA_PACKAGES  more Debian packages to install (scripts/test.sh: Slurm and munge)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${GNG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gng}
jobs=${GNG_JOBS:-$(nproc)}
log() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

sudo_=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || die "not root and no sudo: run as root to install packages"
  sudo_=sudo
fi

# --- 1. Debian packages -------------------------------------------------------------------------
packages=(
  build-essential cmake ninja-build pkg-config git
  libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev zlib1g-dev libsqlite3-dev
  libopenblas0-openmp libnlopt-dev
  libtorch-dev libyaml-cpp-dev dataset-fashion-mnist
  libcpp-httplib-dev libprotobuf-dev protobuf-compiler wrk
  python3-torch chromium
  dpkg-dev perl openssl
)
# shellcheck disable=SC2206
packages+=(${GNG_EXTRA_PACKAGES:-})  # what the caller needs besides (the tests: Slurm)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing: ${missing[*]}"
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- 2. OpenSSL >= 3.5 ----------------------------------------------------------------------------
# Debian 12 ships 3.0, which has no ML-KEM / ML-DSA / SLH-DSA. Build the stable suite's source
# package once into the cache (libraries and the openssl tool) and link gng against it by rpath.
system_ssl=$(pkg-config --modversion openssl 2>/dev/null || echo 0)
ssl_prefix=""
if dpkg --compare-versions "$system_ssl" ge 3.5; then
  log "system OpenSSL $system_ssl is new enough"
else
  ssl_prefix="$cache/openssl"
  mkdir -p "$cache"
  exec 9>"$cache/.openssl.lock"
  flock 9
  if [ ! -f "$ssl_prefix/.complete" ]; then
    log "system OpenSSL is $system_ssl (< 3.5): building OpenSSL from Debian's stable source package (once, ~6-10 min)"
    work=$(mktemp -d "$cache/src.XXXXXX")
    srcfile=/etc/apt/sources.list.d/gng-stable-src.sources
    uris=$(sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    uri=$(printf '%s\n' "$uris" | grep -v security | head -1 || true)
    [ -n "$uri" ] || uri=http://deb.debian.org/debian
    sec=$(printf '%s\n' "$uris" | grep security | head -1 || true)
    cleanup_src() { $sudo_ rm -f "$srcfile"; $sudo_ apt-get update -qq || true; }
    stanza() { printf 'Types: deb-src\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n' "$1" "$2"; }
    { stanza "$uri" stable; [ -z "$sec" ] || stanza "$sec" stable-security; } | $sudo_ tee "$srcfile" >/dev/null
    trap cleanup_src EXIT
    $sudo_ apt-get update -qq
    # The index may name a version whose files the mirror no longer (or not yet) serves: try every
    # listed version >= 3.5, the 3.5 LTS line first, newest first, until one downloads.
    listed=$(apt-cache showsrc openssl 2>/dev/null | sed -n 's/^Version:[[:space:]]*//p' | sort -u -r -V || true)
    got=""
    for v in $(printf '%s\n' $listed | grep '^3\.5\.' || true; printf '%s\n' $listed | grep -v '^3\.5\.' || true); do
      dpkg --compare-versions "$v" ge 3.5 || continue
      if (cd "$work" && apt-get source -qq openssl="$v" >/dev/null 2>&1); then got=$v; break; fi
      log "openssl $v is listed but could not be fetched; trying the next version"
      find "$work" -mindepth 1 -delete
    done
    cleanup_src
    trap - EXIT
    [ -n "$got" ] || die "no OpenSSL >= 3.5 source package could be fetched from $uri${sec:+ or $sec} (listed: $(echo $listed))"
    src=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'openssl-*' | head -1)
    [ -n "$src" ] || die "no openssl source tree under $work"
    ver=$(basename "$src" | sed 's/^openssl-//')
    dpkg --compare-versions "$ver" ge 3.5 || die "Debian stable's OpenSSL is $ver, need >= 3.5"
    rm -rf "$ssl_prefix"
    (cd "$src" && ./Configure --prefix="$ssl_prefix" --libdir=lib --openssldir="$ssl_prefix/ssl" \
        shared no-tests no-docs >/dev/null \
      && make -s -j"$jobs" build_sw >/dev/null 2>&1 \
      && make -s install_sw >/dev/null 2>&1) || die "OpenSSL $ver build failed in $src"
    echo "$ver" > "$ssl_prefix/.complete"
    rm -rf "$work"
    log "OpenSSL $ver installed in $ssl_prefix"
  fi
  flock -u 9
fi

# --- 3. Configure and build gng -------------------------------------------------------------------
build="$here/build"
cmake_args=(-S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE="${GNG_BUILD_TYPE:-Release}")
[ -n "$ssl_prefix" ] && cmake_args+=(-DGNG_OPENSSL_ROOT="$ssl_prefix")
cmake "${cmake_args[@]}" >/dev/null || die "cmake configure failed"
cmake --build "$build" -j"$jobs" || die "build failed"
