#pragma once
// One QAOA or VQE run end to end: optimise the circuit's parameters on the state-vector simulator,
// then draw shots from the optimal state and rank them by their exact QUBO energy. This is what
// the qaoa/vqe samplers and `gng qaoa` call. Everything here is simulated classically.
#include <cstdint>
#include <vector>

#include "quantum/circuit.h"
#include "quantum/optimize.h"
#include "qubo/sample_set.h"

namespace gng::quantum {

struct RunSettings {
  int depth = 2;            // QAOA p, or VQE layers
  CircuitOptions circuit;   // mixer, groups, precision, memory budget, noise
  Optimizer optimizer = Optimizer::lbfgs;
  int max_evals = 300;      // per optimisation
  bool interp = true;       // QAOA: climb p = 1 … depth by INTERP
  int restarts = 3;         // VQE: random starts
  std::size_t shots = 1024;
  uint64_t seed = 1;
  std::size_t keep = 16;    // distinct samples kept
};

struct RunOutcome {
  std::vector<double> theta;  // QAOA: γ_1..γ_p, β_1..β_p
  double expectation = 0;     // ⟨H_C⟩ at theta (with the noise model)
  double min_energy = 0;      // exact minimum of H_C on the simulated states (from its diagonal)
  double max_energy = 0;      // exact maximum of H_C on them
  std::size_t states = 0;     // basis states simulated: 2^n, or the one-hot subspace's (xy mixer)
  int evaluations = 0;
  int float_evaluations = 0;  // of which on complex<float> states (seeds, mixed precision)
  SampleSet samples;          // exact energies; stats.time_s, stats.reads = shots, stats.steps = evaluations
};

RunOutcome run_qaoa(const Qubo& q, const RunSettings& s);
RunOutcome run_vqe(const Qubo& q, const RunSettings& s);

}  // namespace gng::quantum
