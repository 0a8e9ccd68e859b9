// Simulated annealing. Each read starts from a random state and sweeps the variables in order,
// accepting a flip with the Metropolis probability min(1, exp(−β Δ)), where Δ comes from an
// incrementally kept local field (O(degree) per accepted flip). β rises geometrically over the
// sweeps between two values derived from the instance (derive_schedule). A read returns the best
// state it saw, polished by a greedy descent so that it is a local minimum.
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/rng.h"
#include "solve/run.h"
#include "solve/sampler.h"

namespace gng {
namespace {

struct Schedule {
  double beta_hot, beta_cold;
};

// Flips variables while any single flip lowers f.
void descend(const Qubo& q, Bits& x, std::vector<double>& field) {
  for (bool improved = true; improved;) {
    improved = false;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double d = x[i] ? -field[i] : field[i];
      if (d < 0) {
        x[i] ^= 1;
        const double s = x[i] ? 1.0 : -1.0;
        auto nb = q.neighbours(i);
        auto w = q.weights(i);
        for (std::size_t e = 0; e < nb.size(); ++e) field[nb[e]] += s * w[e];
        improved = true;
      }
    }
  }
}

// β range from the instance: the uphill Δs that matter are those out of local minima. Greedy
// descents from a few random states give their distribution; the hot end accepts the median such
// Δ 20% of the time, the cold end accepts the smallest one 1% of the time. (Scaling from the largest
// possible Δ instead, as is common, starts far too hot and wastes most sweeps.)
Schedule derive_schedule(const Qubo& q) {
  const std::size_t n = q.size();
  Rng rng(0x5eed);
  std::vector<double> uphill;
  for (int t = 0; t < 4; ++t) {
    Bits x(n);
    for (auto& b : x) b = rng.next() >> 63;
    std::vector<double> field = q.fields(x);
    descend(q, x, field);
    for (std::size_t i = 0; i < n; ++i) {
      const double d = x[i] ? -field[i] : field[i];
      if (d > 1e-12) uphill.push_back(d);
    }
  }
  if (uphill.empty()) return {1.0, 1.0};  // every local minimum is flat: nothing to anneal
  std::nth_element(uphill.begin(), uphill.begin() + uphill.size() / 2, uphill.end());
  const double median = uphill[uphill.size() / 2];
  const double smallest = *std::min_element(uphill.begin(), uphill.end());
  const double hot = std::log(5.0) / median;
  return {hot, std::max(hot, std::log(100.0) / smallest)};
}

class AnnealSampler final : public Sampler {
 public:
  std::string_view name() const override { return "anneal"; }

  SampleSet sample(const Qubo& q, const SampleOptions& o) const override {
    const std::size_t n = q.size();
    if (n == 0) throw Error("anneal: empty QUBO");
    const int64_t sweeps = o.steps > 0 ? o.steps : 1000;
    const Schedule sch = derive_schedule(q);
    std::vector<double> betas(sweeps);
    for (int64_t s = 0; s < sweeps; ++s) {
      const double t = sweeps == 1 ? 1.0 : static_cast<double>(s) / static_cast<double>(sweeps - 1);
      betas[s] = sch.beta_hot * std::pow(sch.beta_cold / sch.beta_hot, t);
    }
    detail::ReadRunner runner(q, o, 32);
    return runner.run([&](int64_t read) {
      Rng rng(o.seed, static_cast<uint64_t>(read));
      Bits x(n);
      for (auto& b : x) b = rng.next() >> 63;
      std::vector<double> field = q.fields(x);
      double energy = q.energy(x), best_energy = energy;
      Bits best = x;
      const uint64_t* row = q.row().data();
      const uint32_t* col = q.col().data();
      const double* val = q.val().data();
      int64_t s = 0;
      for (; s < sweeps; ++s) {
        const double beta = betas[s];
        const double cutoff = 40.0 / beta;  // exp(−40) < 5e-18: never accepted in practice
        for (std::size_t i = 0; i < n; ++i) {
          const double d = x[i] ? -field[i] : field[i];
          if (d > 0 && (d > cutoff || rng.uniform() >= std::exp(-beta * d))) continue;
          x[i] ^= 1;
          energy += d;
          const double sgn = x[i] ? 1.0 : -1.0;
          for (uint64_t e = row[i]; e < row[i + 1]; ++e) field[col[e]] += sgn * val[e];
        }
        if (energy < best_energy) {
          best_energy = energy;
          best = x;
          if (runner.report(best_energy, best)) break;
        } else if (runner.should_stop()) {
          break;
        }
      }
      runner.add_steps(static_cast<uint64_t>(std::min(s + 1, sweeps)));
      // Polish the best state into a local minimum (recomputing its fields exactly).
      std::vector<double> best_field = q.fields(best);
      descend(q, best, best_field);
      runner.report(q.energy(best), best);
      return best;
    });
  }
};

}  // namespace

std::unique_ptr<Sampler> make_anneal_sampler() { return std::make_unique<AnnealSampler>(); }

}  // namespace gng
