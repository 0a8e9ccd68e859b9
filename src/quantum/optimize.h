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
  int evaluations = 0;         // circuit evaluations, all depths together
  int float_evaluations = 0;  // of which on complex<float> states (seeds, mixed precision, float runs)
};

// Minimises c.expectation over θ from theta0. The optimiser works on x_i = θ_i / scales[i]
// (scales[i] is θ_i's typical size), within |x_i| <= bounds[i] when bounds is not empty; it stops
// when ⟨H_C⟩ changes by less than ftol_rel, or (L-BFGS) after five evaluations in a row that do
// not better the best value by that much. With `coarse` (the same circuit in complex<float>;
// L-BFGS only), the run evaluates that one while each improvement is one float resolves (1e-5
// relative), then c to the end, in one NLopt run; if NLopt stops first, a second run on c alone
// finishes from there. The result is always c's.
OptimizeResult minimize(Circuit& c, std::vector<double> theta0, std::span<const double> scales, Optimizer opt, int max_evals,
                        double ftol_rel = 1e-7, std::span<const double> bounds = {}, Circuit* coarse = nullptr);

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
// coarse(d), when given, builds the depth-d circuit in complex<float> (nullptr when it does not
// fit beside make(d)'s): the depths below p run on it, and with L-BFGS depth p starts on it (see
// minimize).
QaoaRun optimize_qaoa(const std::function<std::unique_ptr<Circuit>(int)>& make, int p, Optimizer opt, int max_evals,
                      bool interp = true, const std::function<std::unique_ptr<Circuit>(int)>& coarse = {});

}  // namespace gng::quantum
