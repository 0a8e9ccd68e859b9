#pragma once
// Classical outer loop of QAOA/VQE: NLopt minimises ⟨H_C⟩ over the circuit's parameters —
// L-BFGS with the adjoint gradient, or derivative-free COBYLA / BOBYQA. QAOA starts from a linear
// ramp (an annealing-like schedule that avoids barren starts) at p = 1 and climbs to the asked
// depth by INTERP (Zhou et al. 2020): the optimum at depth p−1 interpolated to depth p.
#include <functional>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "quantum/circuit.h"

namespace gng::quantum {

enum class Optimizer { lbfgs, cobyla, bobyqa };
Optimizer parse_optimizer(std::string_view name);  // "lbfgs" | "cobyla" | "bobyqa"

struct OptimizeResult {
  std::vector<double> theta;
  double value = 0;     // ⟨H_C⟩ at theta
  int evaluations = 0;  // circuit evaluations, all depths together
};

// Minimises c.expectation over θ from theta0. The optimiser works on x_i = θ_i / scales[i]
// (scales[i] is θ_i's typical size), within |x_i| <= bounds[i] when bounds is not empty; it stops
// when ⟨H_C⟩ changes by less than ftol_rel.
OptimizeResult minimize(Circuit& c, std::vector<double> theta0, std::span<const double> scales, Optimizer opt, int max_evals,
                        double ftol_rel = 1e-7, std::span<const double> bounds = {});

// Linear ramp at depth p for a Hamiltonian of scale s: γ_l = t_l·Δ/s, β_l = −(1 − t_l)·Δ, t_l = (l + ½)/p.
std::vector<double> qaoa_ramp(int p, double scale);
// INTERP: optimal [γ, β] at depth p → starting point at depth p + 1.
std::vector<double> qaoa_interp(std::span<const double> theta);

// QAOA at depth p: optimise at p = 1 from the ramp, then INTERP to 2 … p (or straight from the
// ramp at depth p when interp is false), within γ·scale ∈ [−π, π] and β ∈ [−π/2, π/2] (one period
// of the mixer; unbounded, L-BFGS's first steps can leap to a far and worse basin). make(d) builds the depth-d circuit; the depth-p one is
// returned with the optimal state prepared.
struct QaoaRun {
  OptimizeResult result;
  std::unique_ptr<Circuit> circuit;
};
QaoaRun optimize_qaoa(const std::function<std::unique_ptr<Circuit>(int)>& make, int p, Optimizer opt, int max_evals,
                      bool interp = true);

}  // namespace gng::quantum
