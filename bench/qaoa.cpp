// bench/qaoa — speed of the QAOA state-vector simulator (classical simulation; no quantum hardware).
//
//   build/bench/qaoa [--min-n 16] [--max-n 26] [--precision double|float] [--reps 5] [--json FILE]
//
// For each n: a random Max-Cut graph with 3n/2 edges; one QAOA layer (diagonal phase + X mixer on
// every qubit) timed as (T(p = 5) − T(p = 1)) / 4 of full expectation() calls, so state
// preparation and the final ⟨H_C⟩ cancel; next to it, one read-modify-write sweep of the same
// state (ψ_i ← c·ψ_i, the memory-bandwidth floor), measured in the same run with the same threads,
// and the layer's own traversals of the state with that scale in place of the butterflies (the
// floor of this layout). Medians over --reps. Then a full p = 3 optimisation (L-BFGS, INTERP) at
// n = 20, --reps times.
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/args.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/timer.h"
#include "quantum/circuit.h"
#include "quantum/kernels.h"
#include "quantum/run.h"

using namespace gng;

namespace {

Qubo random_maxcut(int n, uint64_t seed) {
  Rng r(seed);
  std::vector<double> a(n, 0.0);
  std::vector<Coupling> b;
  for (int e = 0; e < 3 * n / 2; ++e) {
    const uint32_t i = r.below(n), j = r.below(n);
    if (i == j) continue;
    a[i] -= 1;
    a[j] -= 1;
    b.push_back({i, j, 2});
  }
  return Qubo(n, a, b);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median seconds of ψ_z ← c·ψ_z (|c| = 1) over the whole state. Alone: one read-modify-write
// sweep, the memory-bandwidth floor. With `layer_walk`: that sweep (the low pass over cache
// blocks touches the same lines in the same order), then the high qubits' passes in place as
// high_passes (kernels.h) walks them, the scale in place of the butterflies: what the layer's
// memory traffic alone costs in this layout.
template <class T>
double scale_seconds(int n, int reps, bool layer_walk) {
  quantum::detail::StateBuffer<T> s(std::size_t{1} << n);
  auto* r = reinterpret_cast<T*>(s.data());
  const std::ptrdiff_t len = static_cast<std::ptrdiff_t>(s.size());
  const T cr = T(0.6), ci = T(0.8);
  const auto scale = [r, cr, ci](std::size_t z) {
    const T x = r[2 * z], y = r[2 * z + 1];
    r[2 * z] = x * cr - y * ci;
    r[2 * z + 1] = x * ci + y * cr;
  };
  std::vector<double> t;
  for (int k = 0; k < reps + 1; ++k) {
    Stopwatch w;
#pragma omp parallel
    {
#pragma omp for simd schedule(static)
      for (std::ptrdiff_t i = 0; i < len; ++i) scale(static_cast<std::size_t>(i));
      if (layer_walk)
        quantum::detail::high_passes(n, std::min(n, quantum::detail::kBlockBits), [&](int K, int q, std::size_t row0) {
          for (std::size_t h = 0; h < (std::size_t{1} << K); ++h) {
            const std::size_t at = row0 + (h << q);
#pragma omp simd
            for (std::size_t i = 0; i < quantum::detail::kChunk; ++i) scale(at + i);
          }
        });
    }
    if (k > 0) t.push_back(w.seconds());  // the first sweep also faults the pages in
  }
  return median(t);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Args args("bench/qaoa");
    args.option("min-n", "smallest n (default 16)")
        .option("max-n", "largest n (default 26)")
        .option("precision", "double | float (default double)")
        .option("reps", "repetitions, median reported (default 5)")
        .option("json", "also write results as JSON to this file");
    args.parse({argv + 1, argv + argc});
    const int lo = static_cast<int>(args.integer("min-n", 16, 0, 1'000'000'000)), hi = static_cast<int>(args.integer("max-n", 26, 0, 1'000'000'000));
    if (lo < 1 || hi < lo || hi > 30) throw Error("--min-n and --max-n must satisfy 1 <= min-n <= max-n <= 30");
    const int reps = static_cast<int>(args.integer("reps", 5, 0, 1'000'000'000));
    if (reps < 1) throw Error("--reps must be at least 1");
    const std::string precision = args.str("precision", "double");
    if (precision != "double" && precision != "float") throw Error("--precision must be double or float, not " + precision);
    const bool f32 = precision == "float";
    quantum::CircuitOptions o;
    o.precision = f32 ? quantum::Precision::f32 : quantum::Precision::f64;
    o.memory_budget_bytes = 20.0 * (1ull << 30);
    nlohmann::json out = nlohmann::json::array();
    std::printf("threads %d, %s\n%4s %12s %12s %8s %12s %8s %12s\n", omp_get_max_threads(), f32 ? "complex<float>" : "complex<double>",
                "n", "layer_s", "sweep_s", "ratio", "traverse_s", "ratio", "layer_GB/s");
    for (int n = lo; n <= hi; ++n) {
      const Qubo q = random_maxcut(n, static_cast<uint64_t>(n));
      auto c1 = quantum::make_qaoa(q, 1, o);
      const std::vector<double> t1 = {0.3, 0.4};
      std::vector<double> a, b;
      for (int k = 0; k < reps; ++k) {
        Stopwatch w;
        c1->expectation(t1);
        a.push_back(w.seconds());
      }
      c1.reset();
      auto c5 = quantum::make_qaoa(q, 5, o);
      const std::vector<double> t5 = {0.3, 0.2, 0.1, 0.5, 0.4, 0.4, 0.3, 0.2, 0.6, 0.1};
      for (int k = 0; k < reps; ++k) {
        Stopwatch w;
        c5->expectation(t5);
        b.push_back(w.seconds());
      }
      c5.reset();
      const double layer = (median(b) - median(a)) / 4;
      const double sweep = f32 ? scale_seconds<float>(n, reps, false) : scale_seconds<double>(n, reps, false);
      const double traverse = f32 ? scale_seconds<float>(n, reps, true) : scale_seconds<double>(n, reps, true);
      const double bytes = 2.0 * std::ldexp(f32 ? 8 : 16, n);  // read + write of the state
      std::printf("%4d %12.5f %12.5f %8.2f %12.5f %8.2f %12.1f\n", n, layer, sweep, layer / sweep, traverse, traverse / sweep,
                  bytes / layer / 1e9);
      std::fflush(stdout);
      out.push_back({{"n", n}, {"layer_s", layer}, {"sweep_s", sweep}, {"ratio", layer / sweep}, {"traverse_s", traverse},
                     {"traverse_ratio", traverse / sweep}, {"layer_GBps", bytes / layer / 1e9}});
    }
    // Full optimisation at n = 20, p = 3.
    const Qubo q20 = random_maxcut(20, 20);
    quantum::RunSettings s;
    s.depth = 3;
    s.circuit = o;
    std::vector<double> times;
    int evals = 0, float_evals = 0;
    double reached = 0;
    for (int k = 0; k < reps; ++k) {
      Stopwatch w;
      const quantum::RunOutcome r = quantum::run_qaoa(q20, s);
      evals = r.evaluations, float_evals = r.float_evaluations, reached = r.expectation;
      times.push_back(w.seconds());
    }
    std::printf("p = 3 optimisation at n = 20 (%s, L-BFGS, INTERP from p = 1, %d evaluations, %d of them in float, 1024 "
                "shots, <H_C> = %.7f): median %.3f s of %d (%.3f … %.3f)\n",
                f32 ? "float" : "double", evals, float_evals, reached, median(times), reps, *std::min_element(times.begin(), times.end()),
                *std::max_element(times.begin(), times.end()));
    if (args.has("json")) {
      std::ofstream f(args.str("json"));
      f << nlohmann::json{{"layers", out}, {"p3_n20_optimisation_s", median(times)}, {"p3_n20_evaluations", evals}, {"p3_n20_float_evaluations", float_evals}, {"p3_n20_expectation", reached}}.dump(1) << "\n";
    }
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "bench/qaoa: error: %s\n", e.what());
    return 1;
  }
}
