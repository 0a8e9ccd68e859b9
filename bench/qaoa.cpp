// bench/qaoa — speed of the QAOA state-vector simulator (classical simulation; no quantum hardware).
//
//   build/bench/qaoa [--min-n 16] [--max-n 26] [--precision double|float] [--reps 5] [--json FILE]
//
// For each n: a random Max-Cut graph with 3n/2 edges; one QAOA layer (diagonal phase + X mixer on
// every qubit) timed as (T(p = 5) − T(p = 1)) / 4 of full expectation() calls, so state
// preparation and the final ⟨H_C⟩ cancel; next to it, one read-modify-write sweep of the same
// state (ψ_i ← c·ψ_i, the memory-bandwidth floor), measured in the same run with the same threads,
// and the layer's own traversals of the state with that scale in place of the butterflies (the
// floor of this layout). Medians over --reps. Then a full p = 3 optimisation (L-BFGS, INTERP) at n = 20, --reps times.
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

template <class T>
double sweep_seconds(int n, int reps) {
  quantum::detail::StateBuffer<T> s(std::size_t{1} << n);
  auto* r = reinterpret_cast<T*>(s.data());
  const std::ptrdiff_t len = static_cast<std::ptrdiff_t>(s.size());
  const T cr = T(0.6), ci = T(0.8);
  std::vector<double> t;
  for (int k = 0; k < reps + 1; ++k) {
    Stopwatch w;
#pragma omp parallel for simd schedule(static)
    for (std::ptrdiff_t i = 0; i < len; ++i) {
      const T x = r[2 * i], y = r[2 * i + 1];
      r[2 * i] = x * cr - y * ci;
      r[2 * i + 1] = x * ci + y * cr;
    }
    if (k > 0) t.push_back(w.seconds());  // the first sweep also faults the pages in
  }
  return median(t);
}

// The layer's traversals with a complex scale in place of the butterflies: one pass over blocks of
// 2^kBlockBits amplitudes, then the high qubits in place three per pass, 8 rows at stride 2^q,
// 1,024 amplitudes per row per step, as src/quantum/kernels.cpp walks the state (which interleaves
// the rows of a step; here they go one after the other, the same lines either way). What this
// layout's memory traffic alone costs.
template <class T>
double traversal_seconds(int n, int reps) {
  quantum::detail::StateBuffer<T> s(std::size_t{1} << n);
  auto* r = reinterpret_cast<T*>(s.data());
  const int bb = std::min(n, quantum::detail::kBlockBits);
  const std::ptrdiff_t len = static_cast<std::ptrdiff_t>(s.size());
  constexpr std::size_t chunk = 1024;
  const T cr = T(0.6), ci = T(0.8);
  const auto scale = [&](std::size_t z) {
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
      for (int q = bb; q < n; q += 3) {
        const int rows = 1 << std::min(3, n - q);
        const std::size_t stride = std::size_t{1} << q, span = stride * rows, per = std::max<std::size_t>(1, stride / chunk);
        const std::size_t run = std::min(chunk, stride);
        const std::ptrdiff_t items = static_cast<std::ptrdiff_t>((s.size() / span) * per);
#pragma omp for schedule(static)
        for (std::ptrdiff_t it = 0; it < items; ++it) {
          const std::size_t row0 = (static_cast<std::size_t>(it) / per) * span + (static_cast<std::size_t>(it) % per) * run;
          for (int h = 0; h < rows; ++h) {
            const std::size_t at = row0 + h * stride;
#pragma omp simd
            for (std::size_t i = 0; i < run; ++i) scale(at + i);
          }
        }
      }
    }
    if (k > 0) t.push_back(w.seconds());  // the first pass also faults the pages in
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
    const int lo = static_cast<int>(args.integer("min-n", 16)), hi = static_cast<int>(args.integer("max-n", 26));
    const int reps = static_cast<int>(args.integer("reps", 5));
    if (reps < 1) throw Error("--reps must be at least 1");
    const bool f32 = args.str("precision", "double") == "float";
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
      const double sweep = f32 ? sweep_seconds<float>(n, reps) : sweep_seconds<double>(n, reps);
      const double traverse = f32 ? traversal_seconds<float>(n, reps) : traversal_seconds<double>(n, reps);
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
