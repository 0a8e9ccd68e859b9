#!/usr/bin/env bash
# Fuzzes gng's parsers — the problem readers and the OpenQASM subset simulator — with libFuzzer +
# AddressSanitizer + UBSan (clang from Debian's packages).
#   bash bench/fuzz/run.sh [SECONDS_PER_TARGET]     (default 120)
# Seeds come from the real files in ../shared/data/qubo (when present) and tests' own shapes.
# A crash leaves its input in build-fuzz/ and exits non-zero.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
secs=${1:-120}
out="$here/build-fuzz"
mkdir -p "$out/corpus-readers" "$out/corpus-qasm"
command -v clang++ >/dev/null || { echo "clang++ missing: apt-get install clang" >&2; exit 1; }
flags=(-std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I"$here/src")
clang++ "${flags[@]}" "$here/bench/fuzz/readers.cpp" "$here"/src/core/*.cpp \
  "$here/src/qubo/qubo.cpp" "$here/src/qubo/io.cpp" -o "$out/fuzz-readers"
# Seed corpus: format byte + file (small pieces of the real instances, and a JSON QUBO).
shared="$here/../shared/data/qubo"
if [ -d "$shared" ]; then
  { printf '\x00'; head -c 2000 "$shared/bqp/bqp50.txt"; } > "$out/corpus-readers/bqp50"
  { printf '\x01'; head -n 40 "$shared/gset/G1" | sed '1s/.*/800 39/'; } > "$out/corpus-readers/g1"
fi
printf '\x02{"gng_qubo":1,"n":3,"offset":1,"linear":[1,2,3],"quadratic":[[0,1,1.5],[1,2,-1]]}' > "$out/corpus-readers/json"
printf '\x01%s' $'3 2\n1 2 1\n2 3 -1\n' > "$out/corpus-readers/rudy"
clang++ "${flags[@]}" "$here/bench/fuzz/qasm.cpp" "$here"/src/core/*.cpp "$here/src/qubo/qubo.cpp" \
  "$here/src/quantum/qasm.cpp" -o "$out/fuzz-qasm"
printf 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[3] q;\nbit[3] c;\nh q[0];\ncx q[0], q[1];\nrz(0.5) q[1];\ncry(1.2) q[1], q[2];\ngphase(-0.3);\nc = measure q;\n' \
  > "$out/corpus-qasm/seed"
cd "$out"
./fuzz-readers -max_total_time="$secs" -max_len=8192 -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 corpus-readers
./fuzz-qasm -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 corpus-qasm
