#pragma once
// The result of a sampler: distinct bitstrings with their exact energy and how often they were
// seen, sorted by energy (ties by bitstring), plus what the run cost. Energies are always
// recomputed from the QUBO here, never taken from a sampler's incremental bookkeeping.
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "qubo/qubo.h"

namespace gng {

struct Sample {
  Bits x;
  double energy;
  uint64_t count;
};

struct SolveStats {
  double time_s = 0;                        // wall-clock seconds of the whole sample() call
  std::optional<double> time_to_target_s;   // when a target energy was given and reached
  uint64_t reads = 0;                       // independent reads (restarts) completed
  uint64_t steps = 0;                       // sweeps (anneal), moves (tabu), states (exact)
};

class SampleSet {
 public:
  SampleSet() = default;
  // Merges equal bitstrings (summing counts) and sorts by exact energy.
  SampleSet(const Qubo& q, std::vector<Bits> states);

  bool empty() const { return samples_.empty(); }
  std::size_t size() const { return samples_.size(); }
  const Sample& best() const;
  const std::vector<Sample>& samples() const { return samples_; }
  // Keeps the k lowest-energy samples.
  void truncate(std::size_t k);

  SolveStats stats;

 private:
  std::vector<Sample> samples_;
};

}  // namespace gng
