#pragma once
// The Select step's model: a quadratic surrogate of observed scores over the design bits,
//     y ≈ w_0 + Σ_i a_i x_i + Σ_{i<j} b_ij x_i x_j,
// fitted by Bayesian linear regression with a Gaussian prior over all linear and pairwise features
// (pairs inside one one-hot group never co-occur and are left out); the pairwise weights get a
// share r of the prior variance. r, the prior variance and the noise variance are chosen by
// maximising the marginal likelihood (evidence) over a grid. The fit works in the dual form — the
// prior-weighted feature inner product of two bitstrings with s common ones is 1 + s + r·s(s−1)/2 —
// so its cost is O(N²n + N³) for N observations, whatever the n² features.
// thompson() draws exact posterior weights (pathwise conditioning) and returns the QUBO whose
// minimum is that sample's best design: survivors reshape H_C.
#include <cstdint>
#include <vector>

#include "core/rng.h"
#include "qubo/qubo.h"

namespace gng {

class QuadraticSurrogate {
 public:
  // n design bits; groups: one-hot groups (their within-group pairs are not features).
  QuadraticSurrogate(std::size_t n, std::vector<std::vector<uint32_t>> groups = {});

  // Fits to observations (x, y); y is maximised. With tune, the hyper-parameters are chosen by
  // evidence (a grid of 60 settings); without, the last ones are kept (one factorisation).
  // Throws gng::Error on empty or mismatched input.
  void fit(const std::vector<Bits>& x, const std::vector<double>& y, bool tune = true);

  // Posterior mean prediction of y for x.
  double predict(const Bits& x) const;
  // A posterior sample of the weights as a QUBO to minimise: f(x) = −(sampled y(x)) (no penalties).
  Qubo thompson(Rng& rng) const;
  // The posterior mean as such a QUBO.
  Qubo mean_qubo() const;

  double noise_variance() const { return noise_; }
  double prior_variance() const { return prior_; }

 private:
  struct Overlap {
    double linear;  // 1 + common ones
    double pairs;   // common pairs that are features
  };
  Overlap overlap(const Bits& a, const Bits& b) const;
  double kernel(const Bits& a, const Bits& b) const;
  // Weights w = w0 + prior·Φᵀ v as a QUBO (negated, un-standardised).
  Qubo weights_qubo(const std::vector<double>& w_lin, const std::vector<double>& w_pair, double w0, const std::vector<double>& v) const;

  std::size_t n_;
  std::size_t groups_;
  std::vector<int> group_of_;
  std::vector<Bits> x_;
  std::vector<double> y_;          // standardised
  double y_mean_ = 0, y_scale_ = 1;
  double prior_ = 1, noise_ = 0.1, pair_ = 1;
  std::vector<double> chol_;       // Cholesky factor of C = prior·K + noise·I (N×N, lower)
  std::vector<double> alpha_;      // C⁻¹ y
};

}  // namespace gng
