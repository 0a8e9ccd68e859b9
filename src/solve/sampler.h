#pragma once
// Samplers minimise a Qubo and return a SampleSet. All are seeded: the same seed and options give
// the same samples, except where a time limit or a reached target cuts a run short (then the best
// energy is still found, but how many reads completed depends on the machine).
//
//   exact   Gray-code enumeration of all 2^n states, multi-threaded; refuses n > kExactMaxN.
//   anneal  simulated annealing: sequential Metropolis sweeps with incremental local fields,
//           geometric β schedule derived from the instance, independent reads in parallel.
//   tabu    one-flip tabu search with aspiration, randomised tenure and elite-perturbation restarts;
//           independent reads in parallel.
//   qaoa    QAOA on the classical state-vector simulator (src/quantum): optimise the angles, then
//           draw `reads` shots (default 1024) and rank them by exact energy. n <= 30. The
//           optimisation runs to convergence: time_limit_s and steps do not apply.
//   vqe     the same with the hardware-efficient RY + CZ ansatz.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "quantum/run.h"
#include "qubo/qubo.h"
#include "qubo/sample_set.h"

namespace gng {

struct SampleOptions {
  uint64_t seed = 1;
  int64_t reads = 0;                    // 0: the sampler's default (or until the time limit)
  int64_t steps = 0;                    // per read: sweeps (anneal) or moves (tabu); 0: default
  double time_limit_s = 0;              // 0: none
  std::optional<double> target_energy;  // stop as soon as a state this low is found
  int threads = 0;                      // 0: all hardware threads
  std::size_t keep = 16;                // distinct samples to return at most
  quantum::RunSettings quantum;         // qaoa/vqe: depth, mixer, groups, optimizer, precision, noise
};

class Sampler {
 public:
  virtual ~Sampler() = default;
  virtual std::string_view name() const = 0;
  virtual SampleSet sample(const Qubo& q, const SampleOptions& options) const = 0;
};

inline constexpr std::size_t kExactMaxN = 40;

// Whether `energy` meets the options' target (to a relative 1e-9, so that rounding in a sampler's
// own bookkeeping cannot miss it); false when there is no target.
bool reaches_target(const SampleOptions& o, double energy);

// "exact" | "anneal" | "tabu" | "qaoa" | "vqe"; throws gng::Error for any other name.
std::unique_ptr<Sampler> make_sampler(std::string_view name);
inline std::vector<std::string> sampler_names() { return {"exact", "anneal", "tabu", "qaoa", "vqe"}; }

}  // namespace gng
