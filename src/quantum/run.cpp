#include "quantum/run.h"

#include <algorithm>
#include <functional>
#include <numbers>

#include "core/rng.h"
#include "core/timer.h"

namespace gng::quantum {

namespace {

RunOutcome finish(const Qubo& q, Circuit& c, const OptimizeResult& r, const RunSettings& s, const Stopwatch& clock) {
  RunOutcome out;
  out.theta = r.theta;
  out.expectation = r.value;
  out.evaluations = r.evaluations;
  out.float_evaluations = r.float_evaluations;
  const auto [lo, hi] = std::minmax_element(c.diagonal().begin(), c.diagonal().end());
  out.min_energy = *lo;
  out.max_energy = *hi;
  out.states = c.diagonal().size();
  out.samples = SampleSet(q, c.sample(s.shots, s.seed));
  out.samples.truncate(s.keep);
  out.samples.stats.time_s = clock.seconds();
  out.samples.stats.reads = s.shots;
  out.samples.stats.steps = static_cast<uint64_t>(r.evaluations);
  return out;
}

}  // namespace

RunOutcome run_qaoa(const Qubo& q, const RunSettings& s) {
  Stopwatch clock;
  // Depths below s.depth only seed INTERP with a rough optimum (ftol 1e-4), which complex<float>
  // resolves as well as double does, at about half the cost; with L-BFGS the final depth starts
  // in float too while its steps are ones float resolves (optimize.h, minimize), when both
  // circuits fit the memory budget, and ends in the precision asked for.
  const auto make = [&](int d) { return make_qaoa(q, d, s.circuit); };
  std::function<std::unique_ptr<Circuit>(int)> coarse;
  if (s.circuit.precision == Precision::f64)
    coarse = [&](int d) -> std::unique_ptr<Circuit> {
      CircuitOptions o = s.circuit;
      o.precision = Precision::f32;
      const int n = static_cast<int>(q.size());
      const double both = circuit_bytes(n, Precision::f32, d) + circuit_bytes(n, Precision::f64, d);
      // At the final depth both circuits live at once (the X mixer's: the count above is for all
      // 2^n states; the XY mixer's subspace runs are small enough not to need this).
      if (d == s.depth && (s.circuit.mixer != Mixer::x || both > s.circuit.memory_budget_bytes)) return nullptr;
      return make_qaoa(q, d, o);
    };
  QaoaRun run = optimize_qaoa(make, s.depth, s.optimizer, s.max_evals, s.interp, coarse);
  return finish(q, *run.circuit, run.result, s, clock);
}

RunOutcome run_vqe(const Qubo& q, const RunSettings& s) {
  Stopwatch clock;
  auto c = make_vqe(q, s.depth, s.circuit);
  Rng rng(s.seed, 0x76de);
  OptimizeResult best;
  int evaluations = 0;
  for (int start = 0; start < std::max(1, s.restarts); ++start) {
    std::vector<double> theta(c->num_params());
    for (auto& t : theta) t = rng.uniform() * 2 * std::numbers::pi;
    OptimizeResult r = minimize(*c, theta, std::vector<double>(theta.size(), 1.0), s.optimizer, s.max_evals);
    evaluations += r.evaluations;
    if (start == 0 || r.value < best.value) best = std::move(r);
  }
  best.evaluations = evaluations;
  c->expectation(best.theta);  // prepare the best state again for sampling
  return finish(q, *c, best, s, clock);
}

}  // namespace gng::quantum
