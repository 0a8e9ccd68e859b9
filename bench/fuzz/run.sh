#!/usr/bin/env bash
# Fuzzes gng's parsers with libFuzzer + AddressSanitizer + UBSan (clang from Debian's packages):
#   readers      the problem readers (bqp, rudy, JSON)                      readers.cpp
#   qasm         the OpenQASM subset simulator                              qasm.cpp
#   envelope     sealed envelopes: parse_envelope and open (real PKI)       envelope.cpp
#   node_receive a node's receive path: RPC body, envelope, QKD key, payload node_receive.cpp
#   etsi         ETSI GS QKD 014 JSON bodies (KME and client) and base64    etsi.cpp
#   settings     run files, policies and search spaces (YAML)               settings.cpp
#   qkd_ends     BB84's two ends fed a peer's rewritten messages             qkd_ends.cpp
#
#   bash bench/fuzz/run.sh [SECONDS_PER_TARGET [TARGET...]]     (default 120, all targets)
#
# Everything is built and kept in build-fuzz/ (objects are rebuilt when a source or header changes):
# corpus-<target>/ grows across runs, seeds-<target>/ holds the generated seeds, pki/ the envelope
# target's CA, <target>.log each run's output. Fuzzers run one after another under nice -n 10; the
# compiler runs one file at a time. A crash, leak, timeout or sanitizer report leaves its input as
# build-fuzz/<target>-crash-… (or -leak-, -timeout-, -oom-); every target still runs, then the
# script lists the failed ones and exits non-zero.
set -euo pipefail
shopt -s inherit_errexit
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
secs=${1:-120}
shift || true
all=(readers qasm envelope node_receive etsi settings qkd_ends)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
for t in "${targets[@]}"; do
  [[ " ${all[*]} " == *" $t "* ]] || { echo "unknown target '$t' (${all[*]})" >&2; exit 2; }
done
out="$here/build-fuzz"
mkdir -p "$out/obj"
command -v clang++ >/dev/null || { echo "clang++ missing: apt-get install clang" >&2; exit 1; }

# OpenSSL >= 3.5, found as scripts/setup.sh finds it: the system's, or the one it built into the cache.
system_ssl=$(pkg-config --modversion openssl 2>/dev/null || echo 0)
ssl_cflags=() ssl_ldflags=()
if ! dpkg --compare-versions "$system_ssl" ge 3.5; then
  ssl_prefix="${GNG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gng}/openssl"
  [ -f "$ssl_prefix/include/openssl/ssl.h" ] ||
    { echo "system OpenSSL is $system_ssl (< 3.5) and $ssl_prefix has none: run scripts/setup.sh" >&2; exit 1; }
  ssl_cflags=(-I"$ssl_prefix/include")
  # DT_RPATH (not RUNPATH) so that libcpp-httplib's libssl.so.3 / libcrypto.so.3 resolve there too.
  ssl_ldflags=(-L"$ssl_prefix/lib" -Wl,-rpath,"$ssl_prefix/lib" -Wl,--disable-new-dtags)
fi

san=address,undefined
cflags=(-std=c++20 -O1 -g -fno-sanitize-recover=undefined -I"$here/src" -I"$out/proto" "${ssl_cflags[@]}"
        -DCPPHTTPLIB_OPENSSL_SUPPORT -DCPPHTTPLIB_ZLIB_SUPPORT -DCPPHTTPLIB_BROTLI_SUPPORT)

# gng.pb.{h,cc} from proto/gng.proto (node_receive only).
gen_proto() {
  if [ ! -f "$out/proto/gng.pb.cc" ] || [ "$here/proto/gng.proto" -nt "$out/proto/gng.pb.cc" ]; then
    command -v protoc >/dev/null || { echo "protoc missing: apt-get install protobuf-compiler" >&2; exit 1; }
    mkdir -p "$out/proto"
    protoc --cpp_out="$out/proto" -I"$here/proto" "$here/proto/gng.proto"
  fi
}

# Compiles one source (relative to the repository, or absolute) into build-fuzz/obj unless its object
# is newer than it and every header it included; prints the object's path.
object() {
  local src=$1 o d dep
  [[ $src == /* ]] || src="$here/$src"
  o="$out/obj/$(printf '%s' "${src#"$here"/}" | tr / _).o"
  d="${o%.o}.d"
  if [ -f "$o" ] && [ -f "$d" ]; then
    local stale=0
    for dep in $(sed -e 's/^[^:]*://' -e 's/\\$//' "$d"); do
      [ "$dep" -nt "$o" ] && { stale=1; break; }
    done
    [ $stale = 1 ] || { echo "$o"; return; }
  fi
  echo "  compiling ${src#"$here"/}" >&2
  nice -n 10 clang++ "${cflags[@]}" -fsanitize=fuzzer-no-link,$san -MMD -MF "$d" -c "$src" -o "$o" ||
    { rm -f "$o" "$d"; return 1; }
  echo "$o"
}

# link TARGET SOURCE... -- LIBS...
link() {
  local target=$1 objs=() o
  shift
  while [ $# -gt 0 ] && [ "$1" != -- ]; do
    o=$(object "$1") || exit 1
    objs+=("$o")
    shift
  done
  [ $# -gt 0 ] && shift
  local bin="$out/fuzz-$target" fresh=1
  [ -f "$bin" ] || fresh=0
  for o in "${objs[@]}"; do [ "$o" -nt "$bin" ] && fresh=0; done
  [ $fresh = 0 ] || return 0
  echo "  linking fuzz-$target" >&2
  nice -n 10 clang++ -fsanitize=fuzzer,$san "${objs[@]}" "${ssl_ldflags[@]}" "$@" -o "$out/fuzz-$target"
}

# Named, not globbed: core/ grows files (e.g. sqlite.cpp) that need libraries these targets do not link.
core=(src/core/args.cpp src/core/rng.cpp)
secure=(src/secure/crypto.cpp src/secure/pki.cpp src/secure/envelope.cpp src/core/file.cpp)

build() {
  echo "building fuzz-$1" >&2
  case $1 in
    readers) link readers bench/fuzz/readers.cpp "${core[@]}" src/qubo/qubo.cpp src/qubo/io.cpp ;;
    qasm) link qasm bench/fuzz/qasm.cpp "${core[@]}" src/qubo/qubo.cpp src/quantum/qasm.cpp ;;
    envelope) link envelope bench/fuzz/envelope.cpp src/core/sqlite.cpp "${secure[@]}" -- -lsqlite3 -lcrypto ;;
    node_receive)
      gen_proto
      link node_receive bench/fuzz/node_receive.cpp "$out/proto/gng.pb.cc" src/node/exchange.cpp src/qkd/keys.cpp \
        src/fed/fed.cpp src/space/space.cpp src/qubo/qubo.cpp src/core/yaml.cpp src/audit/log.cpp src/audit/merkle.cpp \
        src/core/sqlite.cpp "${secure[@]}" "${core[@]}" -- -lprotobuf -lyaml-cpp -lsqlite3 -lssl -lcrypto -pthread ;;
    etsi)
      link etsi bench/fuzz/etsi.cpp src/qkd/kme.cpp src/qkd/keys.cpp src/qkd/bb84.cpp src/qkd/postprocess.cpp \
        src/net/rpc.cpp src/net/http.cpp src/core/address.cpp src/core/sqlite.cpp "${secure[@]}" "${core[@]}" -- -lcpp-httplib -lsqlite3 -lssl -lcrypto -pthread ;;
    qkd_ends)
      link qkd_ends bench/fuzz/qkd_ends.cpp src/qkd/bb84.cpp src/qkd/postprocess.cpp src/secure/crypto.cpp "${core[@]}" -- -lcrypto -pthread ;;
    settings)
      link settings bench/fuzz/settings.cpp src/lifecycle/config.cpp src/space/space.cpp src/core/yaml.cpp src/core/address.cpp \
        src/core/file.cpp src/data/dataset.cpp src/qubo/qubo.cpp "${core[@]}" -- -lyaml-cpp -lz -pthread ;;
  esac
}

# Seeds (regenerated into seeds-<target>/, never into the growing corpus).
seed() {
  local s="$out/seeds-$1"
  mkdir -p "$s"
  case $1 in
    readers)
      local shared="$here/../shared/data/qubo"
      if [ -d "$shared" ]; then
        { printf '\x00'; head -c 2000 "$shared/bqp/bqp50.txt"; } > "$s/bqp50"
        { printf '\x01'; head -n 40 "$shared/gset/G1" | sed '1s/.*/800 39/'; } > "$s/g1"
      fi
      printf '\x02{"gng_qubo":1,"n":3,"offset":1,"linear":[1,2,3],"quadratic":[[0,1,1.5],[1,2,-1]]}' > "$s/json"
      printf '\x01%s' $'3 2\n1 2 1\n2 3 -1\n' > "$s/rudy" ;;
    qasm)
      printf 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[3] q;\nbit[3] c;\nh q[0];\ncx q[0], q[1];\nrz(0.5) q[1];\ncry(1.2) q[1], q[2];\ngphase(-0.3);\nc = measure q;\n' \
        > "$s/seed" ;;
    envelope) ;;  # written by the fuzzer itself (GNG_FUZZ_SEEDS, see envelope.cpp)
    node_receive) ;;  # written by the fuzzer itself (GNG_FUZZ_SEEDS, see node_receive.cpp)
    etsi)
      local id1=0f8fad5b-d9cb-469f-a165-70867728950e id2=7c9e6679-7425-40de-944b-e07fc1f90ae7
      printf '\x00{"number":2,"size":256}' > "$s/request"
      printf '\x00{"number":1,"size":512,"additional_slave_SAE_IDs":[],"extension_mandatory":[],"extension_optional":[{"x":1}]}' > "$s/request-full"
      printf '\x00{}' > "$s/request-empty"
      printf '\x01{"key_IDs":[{"key_ID":"%s"},{"key_ID":"%s"}]}' $id1 $id2 > "$s/key-ids"
      printf '\x01{"key_IDs":[{"key_ID":"%s","key_ID_extension":{}}],"key_IDs_extension":{}}' $id1 > "$s/key-ids-ext"
      printf '\x02{"keys":[{"key_ID":"%s","key":"AAEC"},{"key_ID":"%s","key":"3q2+7w=="}]}' $id1 $id2 > "$s/container"
      printf '\x02{"keys":[{"key_ID":"%s","key":"wHHkZ2aLdv3y3k1wGmNkqGpB9cYpDN8Va5Sc8V0S3y0="}],"key_container_extension":{}}' $id1 > "$s/container-256"
      printf '\x03AAEC' > "$s/b64"
      printf '\x033q2+7w==' > "$s/b64-pad2"
      printf '\x03SGVsbG8=' > "$s/b64-pad1"
      printf '\x03' > "$s/b64-empty" ;;
    settings)
      { printf '\x00'; cat "$here/examples/fashion-mnist.yaml"; } > "$s/run"
      { printf '\x01'; cat "$here/examples/policy.yaml"; } > "$s/policy"
      { printf '\x02'; cat "$here/examples/spaces/cnn.yaml"; } > "$s/space" ;;
    qkd_ends)  # one per message to rewrite: which, then a length and flips (or a word)
      for w in 0 1 2 3 4 5; do printf "\\x0$w\\x00\\x10\\x00\\x01\\x00\\x02" > "$s/step-$w"; done ;;
  esac
}

failed=()
for t in "${targets[@]}"; do build "$t"; done
for t in "${targets[@]}"; do
  seed "$t"
  mkdir -p "$out/corpus-$t"
  opts=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$out/$t-")
  env=()
  case $t in
    readers) opts+=(-max_len=8192) ;;
    qasm) opts+=(-max_len=4096) ;;
    envelope) opts+=(-max_len=32768); env=(GNG_FUZZ_PKI="$out/pki" GNG_FUZZ_SEEDS="$out/seeds-$t") ;;
    node_receive) opts+=(-max_len=32768); env=(GNG_FUZZ_PKI="$out/pki-node" GNG_FUZZ_SEEDS="$out/seeds-$t") ;;
    etsi) opts+=(-max_len=4096) ;;
    settings) opts+=(-max_len=16384) ;;
    qkd_ends) opts+=(-max_len=256) ;;
  esac
  echo "fuzzing $t for ${secs}s (log: build-fuzz/$t.log)" >&2
  if ! (cd "$out" && env "${env[@]}" nice -n 10 "./fuzz-$t" "${opts[@]}" "corpus-$t" "seeds-$t") > "$out/$t.log" 2>&1; then
    failed+=("$t")
    tail -n 60 "$out/$t.log" >&2
  fi
done

# Summary: the final coverage line and stats of each target's run.
printf '\n%-12s %12s %8s %7s %8s %6s %9s  %s\n' target execs exec/s cov ft corpus rss_mb result
for t in "${targets[@]}"; do
  log="$out/$t.log"
  done_line=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
  stat() { sed -n "s/^stat::$1:[[:space:]]*//p" "$log" | tail -n 1; }
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$done_line")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$done_line")
  corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p' <<<"$done_line")
  result=ok
  [[ " ${failed[*]} " == *" $t "* ]] && result=FAILED
  printf '%-12s %12s %8s %7s %8s %6s %9s  %s\n' "$t" "$(stat number_of_executed_units)" "$(stat average_exec_per_sec)" \
    "${cov:-?}" "${ft:-?}" "${corp:-?}" "$(stat peak_rss_mb)" "$result"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]} (inputs: build-fuzz/<target>-crash-*, logs: build-fuzz/<target>.log)" >&2
  exit 1
fi
