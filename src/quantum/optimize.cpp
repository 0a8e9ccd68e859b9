#include "quantum/optimize.h"

#include <nlopt.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <numbers>
#include <string>

#include "core/error.h"

namespace gng::quantum {

Optimizer parse_optimizer(std::string_view name) {
  if (name == "lbfgs") return Optimizer::lbfgs;
  if (name == "cobyla") return Optimizer::cobyla;
  if (name == "bobyqa") return Optimizer::bobyqa;
  throw Error("unknown optimizer '" + std::string(name) + "' (expected lbfgs, cobyla or bobyqa)");
}

namespace {

struct Problem {
  Problem(Circuit& c_, std::span<const double> scales_, nlopt_opt opt_)
      : c(c_), scales(scales_), theta(c_.num_params()), grad(c_.num_params()), opt(opt_) {}
  Circuit& c;
  std::span<const double> scales;
  std::vector<double> theta, grad;
  nlopt_opt opt;
  int evaluations = 0;
  double best = INFINITY;
  std::vector<double> best_x;
  // L-BFGS at the precision floor (complex<float> states, or round-off that makes the gradient
  // disagree slightly with the values) can fail and restart its line searches without progress
  // for many evaluations: NLopt's ftol counts iterations, not evaluations, and a forced stop only
  // takes effect between iterations. So once kStall evaluations in a row have not bettered the
  // best value by ftol_rel, the run is over: the objective answers NLopt's remaining calls with
  // the best value and no circuit, and the best point is the result.
  static constexpr int kStall = 5;
  double ftol_rel = 0;  // 0: no stall rule
  int stalled = 0;
  bool stopped = false;
  // Mixed precision: evaluations go to `coarse` (complex<float>) while each better value improves
  // on the best by at least kCoarseTol, which float resolves; at the first smaller improvement,
  // or a stall, they go to c for good, in the same NLopt run, so L-BFGS keeps its curvature pairs.
  static constexpr double kCoarseTol = 1e-5;
  Circuit* coarse = nullptr;
  int float_evaluations = 0;  // on complex<float> states, coarse or not
  std::exception_ptr error;  // an exception must not unwind through NLopt's C frames
};

struct Nlopt {
  nlopt_opt o;
  ~Nlopt() { nlopt_destroy(o); }
};

double objective(unsigned n, const double* x, double* g, void* data) {
  auto& p = *static_cast<Problem*>(data);
  if (p.stopped) {
    if (g) std::fill(g, g + n, 0.0);
    return p.best;
  }
  try {
    for (unsigned i = 0; i < n; ++i) p.theta[i] = x[i] * p.scales[i];
    ++p.evaluations;
    Circuit& c = p.coarse ? *p.coarse : p.c;
    if (c.precision() == Precision::f32) ++p.float_evaluations;
    double e;
    if (!g) {
      e = c.expectation(p.theta);
    } else {
      e = c.expectation_and_gradient(p.theta, p.grad);
      for (unsigned i = 0; i < n; ++i) g[i] = p.grad[i] * p.scales[i];
    }
    // Better than the best by more than tol relative (any value betters none).
    const auto betters = [&](double tol) { return p.best == INFINITY || e < p.best - tol * std::abs(p.best); };
    if (p.coarse) {
      const bool better = e < p.best, resolved = betters(Problem::kCoarseTol);
      p.stalled = resolved ? 0 : p.stalled + 1;
      if (better) p.best = e, p.best_x.assign(x, x + n);
      if ((better && !resolved) || p.stalled >= Problem::kStall) {
        // From here on the fine circuit: its first value replaces the coarse best.
        p.coarse = nullptr;
        p.best = INFINITY;
        p.stalled = 0;
      }
      return e;
    }
    p.stalled = betters(p.ftol_rel) ? 0 : p.stalled + 1;
    if (e < p.best) p.best = e, p.best_x.assign(x, x + n);
    if (p.ftol_rel > 0 && p.stalled >= Problem::kStall) {
      p.stopped = true;
      nlopt_force_stop(p.opt);
    }
    return e;
  } catch (...) {
    p.error = std::current_exception();
    nlopt_force_stop(p.opt);
    return 0;
  }
}

}  // namespace

OptimizeResult minimize(Circuit& c, std::vector<double> theta0, std::span<const double> scales, Optimizer opt, int max_evals,
                        double ftol_rel, std::span<const double> bounds, Circuit* coarse) {
  const unsigned n = static_cast<unsigned>(c.num_params());
  if (theta0.size() != n || scales.size() != n) throw Error("optimize: parameter vector has the wrong size");
  const nlopt_algorithm alg = opt == Optimizer::lbfgs ? NLOPT_LD_LBFGS : opt == Optimizer::cobyla ? NLOPT_LN_COBYLA : NLOPT_LN_BOBYQA;
  if (alg == NLOPT_LN_BOBYQA && n < 2) throw Error("optimize: BOBYQA needs at least 2 parameters");
  const Nlopt guard{nlopt_create(alg, n)};
  nlopt_opt o = guard.o;
  if (!o) throw Error("optimize: nlopt_create failed");
  Problem p(c, scales, o);
  nlopt_set_min_objective(o, objective, &p);
  nlopt_set_maxeval(o, max_evals);
  nlopt_set_xtol_rel(o, 1e-5);
  // complex<float> resolves ⟨H_C⟩ to ~1e-6 relative: asking for more only makes line searches thrash.
  const double ftol = c.precision() == Precision::f32 ? std::max(ftol_rel, 1e-5) : ftol_rel;
  nlopt_set_ftol_rel(o, ftol);
  if (alg == NLOPT_LD_LBFGS) p.ftol_rel = ftol, p.coarse = coarse;
  if (alg != NLOPT_LD_LBFGS) nlopt_set_initial_step1(o, 0.1);
  std::vector<double> x(n);
  for (unsigned i = 0; i < n; ++i) x[i] = theta0[i] / scales[i];
  if (!bounds.empty()) {
    if (bounds.size() != n) throw Error("optimize: bounds have the wrong size");
    std::vector<double> lo(n), hi(n);
    for (unsigned i = 0; i < n; ++i) {
      lo[i] = -bounds[i], hi[i] = bounds[i];
      x[i] = std::clamp(x[i], lo[i], hi[i]);
    }
    nlopt_set_lower_bounds(o, lo.data());
    nlopt_set_upper_bounds(o, hi.data());
  }
  double value = 0;
  const nlopt_result r = nlopt_optimize(o, x.data(), &value);
  if (p.error) std::rethrow_exception(p.error);
  // L-BFGS can give up (round-off limit, or a generic failure when float precision makes the
  // gradient and the values disagree slightly) after real progress: keep the best point seen.
  if (r == NLOPT_INVALID_ARGS || r == NLOPT_OUT_OF_MEMORY || p.best_x.empty())
    throw Error("optimize: NLopt failed with code " + std::to_string(static_cast<int>(r)));
  if (r < 0 || p.stopped) x = p.best_x;
  OptimizeResult out;
  out.theta.resize(n);
  for (unsigned i = 0; i < n; ++i) out.theta[i] = x[i] * scales[i];
  if (p.coarse && p.evaluations < max_evals) {
    // NLopt stopped before float stopped resolving the steps: finish on c from there.
    out = minimize(c, out.theta, scales, opt, max_evals - p.evaluations, ftol_rel, bounds);
    out.evaluations += p.evaluations;
    out.float_evaluations = p.float_evaluations;
    return out;
  }
  out.value = c.expectation(out.theta);  // leaves the optimal state prepared
  out.evaluations = p.evaluations + 1;
  out.float_evaluations = p.float_evaluations + (c.precision() == Precision::f32 ? 1 : 0);
  return out;
}

std::vector<double> qaoa_ramp(int p, double scale) {
  // A discretised anneal from −H_B (whose ground state is the start state |+⟩ⁿ, or the W states
  // for the XY ring) to H_C: e^{−iδt((1−t)(−H_B) + t H_C)} ≈ U_B(−(1−t)δt) e^{−i t δt H_C}, so
  // γ > 0 and β < 0.
  constexpr double kDelta = 0.75;  // time step in units of 1/scale
  std::vector<double> theta(2 * p);
  for (int l = 0; l < p; ++l) {
    const double t = (l + 0.5) / p;
    theta[l] = t * kDelta / scale;
    theta[p + l] = -(1 - t) * kDelta;
  }
  return theta;
}

std::vector<double> qaoa_interp(std::span<const double> theta) {
  const int p = static_cast<int>(theta.size() / 2);
  std::vector<double> out(2 * (p + 1));
  for (int half = 0; half < 2; ++half) {
    const double* in = theta.data() + half * p;
    double* o = out.data() + half * (p + 1);
    // [x]^{p+1}_i = (i−1)/p·[x]^p_{i−1} + (p−i+1)/p·[x]^p_i, i = 1..p+1, out-of-range terms 0.
    for (int i = 1; i <= p + 1; ++i) {
      const double prev = i - 1 >= 1 ? in[i - 2] : 0, cur = i <= p ? in[i - 1] : 0;
      o[i - 1] = (i - 1.0) / p * prev + (p - i + 1.0) / p * cur;
    }
  }
  return out;
}

QaoaRun optimize_qaoa(const std::function<std::unique_ptr<Circuit>(int)>& make, int p, Optimizer opt, int max_evals,
                      bool interp, const std::function<std::unique_ptr<Circuit>(int)>& coarse) {
  if (p < 1) throw Error("qaoa: depth p must be >= 1");
  int evaluations = 0, float_evaluations = 0;
  OptimizeResult r;
  std::unique_ptr<Circuit> c, companion;
  for (int d = interp ? 1 : p; d <= p; ++d) {
    c.reset();  // one circuit at a time, and a float companion at depth p
    // Depths below p only seed INTERP: a rough optimum is enough there, from the coarse circuit.
    c = d < p && coarse ? coarse(d) : nullptr;
    if (!c) c = make(d);
    if (d == p && coarse && opt == Optimizer::lbfgs) companion = coarse(d);
    std::vector<double> scales(2 * d, 1.0), bounds(2 * d, std::numbers::pi / 2);
    for (int l = 0; l < d; ++l) scales[l] = 1.0 / c->scale(), bounds[l] = std::numbers::pi;
    const std::vector<double> start = d == (interp ? 1 : p) ? qaoa_ramp(d, c->scale()) : qaoa_interp(r.theta);
    r = minimize(*c, start, scales, opt, max_evals, d < p ? 1e-4 : 1e-7, bounds, d == p ? companion.get() : nullptr);
    evaluations += r.evaluations;
    float_evaluations += r.float_evaluations;
  }
  r.evaluations = evaluations;
  r.float_evaluations = float_evaluations;
  return {std::move(r), std::move(c)};
}

}  // namespace gng::quantum
