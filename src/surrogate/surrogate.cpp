#include "surrogate/surrogate.h"

#include <cmath>
#include <limits>
#include <numbers>
#include <string>

#include "core/error.h"

namespace gng {

namespace {

// In-place lower Cholesky of the n×n matrix a (row-major); false if not positive definite.
bool cholesky(std::vector<double>& a, std::size_t n) {
  for (std::size_t j = 0; j < n; ++j) {
    double d = a[j * n + j];
    for (std::size_t k = 0; k < j; ++k) d -= a[j * n + k] * a[j * n + k];
    if (!(d > 0)) return false;
    d = std::sqrt(d);
    a[j * n + j] = d;
    for (std::size_t i = j + 1; i < n; ++i) {
      double s = a[i * n + j];
      for (std::size_t k = 0; k < j; ++k) s -= a[i * n + k] * a[j * n + k];
      a[i * n + j] = s / d;
    }
  }
  return true;
}

// Solves (L Lᵀ) x = b in place.
void chol_solve(const std::vector<double>& l, std::size_t n, std::vector<double>& b) {
  for (std::size_t i = 0; i < n; ++i) {
    double s = b[i];
    for (std::size_t k = 0; k < i; ++k) s -= l[i * n + k] * b[k];
    b[i] = s / l[i * n + i];
  }
  for (std::size_t i = n; i-- > 0;) {
    double s = b[i];
    for (std::size_t k = i + 1; k < n; ++k) s -= l[k * n + i] * b[k];
    b[i] = s / l[i * n + i];
  }
}

double gauss(Rng& r) {  // Box–Muller
  const double u = 1.0 - r.uniform(), v = r.uniform();
  return std::sqrt(-2 * std::log(u)) * std::cos(2 * std::numbers::pi * v);
}

}  // namespace

QuadraticSurrogate::QuadraticSurrogate(std::size_t n, std::vector<std::vector<uint32_t>> groups)
    : n_(n), groups_(groups.size()), group_of_(n, -1) {
  if (n == 0) throw Error("surrogate: no design bits");
  for (std::size_t g = 0; g < groups.size(); ++g)
    for (uint32_t v : groups[g]) {
      if (v >= n) throw Error("surrogate: group " + std::to_string(g) + " names bit " + std::to_string(v) + " of " + std::to_string(n));
      group_of_[v] = static_cast<int>(g);
    }
}

QuadraticSurrogate::Overlap QuadraticSurrogate::overlap(const Bits& a, const Bits& b) const {
  // Common ones s, and the common pairs that are features (not inside one group).
  double s = 0, same = 0;
  thread_local std::vector<int> per_group;
  per_group.assign(groups_, 0);
  for (std::size_t i = 0; i < n_; ++i)
    if (a[i] && b[i]) {
      s += 1;
      if (group_of_[i] >= 0) same += per_group[group_of_[i]]++;  // pairs inside the group so far
    }
  return {1 + s, s * (s - 1) / 2 - same};
}

double QuadraticSurrogate::kernel(const Bits& a, const Bits& b) const {
  // φ(a)·Σφ(b)/prior over features {1, x_i} (weight 1) and x_i x_j (weight pair_, the
  // interactions' share of the prior variance).
  const Overlap o = overlap(a, b);
  return o.linear + pair_ * o.pairs;
}

void QuadraticSurrogate::fit(const std::vector<Bits>& x, const std::vector<double>& y, bool tune) {
  const std::size_t m = x.size();
  if (m == 0 || y.size() != m) throw Error("surrogate: need as many scores as designs, and at least one");
  for (const auto& b : x)
    if (b.size() != n_) throw Error("surrogate: a design has " + std::to_string(b.size()) + " bits, expected " + std::to_string(n_));
  x_ = x;
  y_mean_ = 0;
  for (double v : y) y_mean_ += v / m;
  double var = 0;
  for (double v : y) var += (v - y_mean_) * (v - y_mean_) / m;
  y_scale_ = var > 0 ? std::sqrt(var) : 1;
  y_.resize(m);
  for (std::size_t i = 0; i < m; ++i) y_[i] = (y[i] - y_mean_) / y_scale_;
  std::vector<double> klin(m * m), kpair(m * m);
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t j = 0; j <= i; ++j) {
      const Overlap o = overlap(x_[i], x_[j]);
      klin[i * m + j] = klin[j * m + i] = o.linear;
      kpair[i * m + j] = kpair[j * m + i] = o.pairs;
    }
  // Evidence over a grid of the interactions' prior share, the prior (weight) variance and the
  // noise variance of the standardised scores.
  double best = -std::numeric_limits<double>::infinity();
  const bool grid = tune || chol_.empty();
  const std::vector<double> shares = grid ? std::vector<double>{0.1, 0.3, 1.0} : std::vector<double>{pair_};
  const std::vector<double> priors = grid ? std::vector<double>{0.03, 0.1, 0.3, 1.0, 3.0} : std::vector<double>{-1};
  const std::vector<double> noises = grid ? std::vector<double>{0.003, 0.03, 0.1, 0.3} : std::vector<double>{noise_};
  const double kept_prior = prior_;
  chol_.clear();
  for (double r : shares) {
    std::vector<double> k(m * m);
    double diag = 0;
    for (std::size_t i = 0; i < m * m; ++i) k[i] = klin[i] + r * kpair[i];
    for (std::size_t i = 0; i < m; ++i) diag += k[i * m + i] / m;
  for (double p : priors)
    for (double s2 : noises) {
      const double prior = p < 0 ? kept_prior : p / diag;
      std::vector<double> c(m * m);
      for (std::size_t i = 0; i < m * m; ++i) c[i] = prior * k[i];
      for (std::size_t i = 0; i < m; ++i) c[i * m + i] += s2;
      if (!cholesky(c, m)) continue;
      std::vector<double> a = y_;
      chol_solve(c, m, a);
      double fit = 0, logdet = 0;
      for (std::size_t i = 0; i < m; ++i) fit += y_[i] * a[i], logdet += 2 * std::log(c[i * m + i]);
      const double evidence = -0.5 * fit - 0.5 * logdet;
      if (evidence > best) best = evidence, prior_ = prior, noise_ = s2, pair_ = r, chol_ = std::move(c), alpha_ = std::move(a);
    }
  }
  if (chol_.empty()) throw Error("surrogate: no prior/noise setting gave a positive definite covariance");
}

double QuadraticSurrogate::predict(const Bits& x) const {
  if (alpha_.empty()) throw Error("surrogate: predict before fit");
  double s = 0;
  for (std::size_t i = 0; i < x_.size(); ++i) s += kernel(x, x_[i]) * alpha_[i];
  return y_mean_ + y_scale_ * prior_ * s;
}

Qubo QuadraticSurrogate::weights_qubo(const std::vector<double>& w_lin, const std::vector<double>& w_pair, double w0,
                                      const std::vector<double>& v) const {
  // w = w_prior + prior·Φᵀ v, then f = −(y_mean + y_scale·(w0 + Σ a x + Σ b x x)).
  std::vector<double> a(w_lin);
  std::vector<double> b(w_pair);
  double c = w0;
  for (std::size_t o = 0; o < x_.size(); ++o) {
    const double t = prior_ * v[o];
    c += t;
    for (std::size_t i = 0; i < n_; ++i) {
      if (!x_[o][i]) continue;
      a[i] += t;
      for (std::size_t j = i + 1; j < n_; ++j)
        if (x_[o][j]) b[i * n_ + j] += t * pair_;
    }
  }
  std::vector<double> lin(n_);
  for (std::size_t i = 0; i < n_; ++i) lin[i] = -y_scale_ * a[i];
  std::vector<Coupling> quad;
  for (std::size_t i = 0; i < n_; ++i)
    for (std::size_t j = i + 1; j < n_; ++j)
      if ((group_of_[i] < 0 || group_of_[i] != group_of_[j]) && b[i * n_ + j] != 0)
        quad.push_back({static_cast<uint32_t>(i), static_cast<uint32_t>(j), -y_scale_ * b[i * n_ + j]});
  return Qubo(n_, lin, quad, -y_mean_ - y_scale_ * c);
}

Qubo QuadraticSurrogate::mean_qubo() const {
  if (alpha_.empty()) throw Error("surrogate: mean_qubo before fit");
  return weights_qubo(std::vector<double>(n_, 0.0), std::vector<double>(n_ * n_, 0.0), 0.0, alpha_);
}

Qubo QuadraticSurrogate::thompson(Rng& rng) const {
  if (alpha_.empty()) throw Error("surrogate: thompson before fit");
  // Pathwise conditioning: w = w₀ + prior·Φᵀ C⁻¹ (y − Φw₀ − ε), w₀ ~ N(0, prior·I), ε ~ N(0, noise·I).
  const double sd = std::sqrt(prior_);
  std::vector<double> w_lin(n_), w_pair(n_ * n_, 0.0);
  for (auto& w : w_lin) w = sd * gauss(rng);
  for (std::size_t i = 0; i < n_; ++i)
    for (std::size_t j = i + 1; j < n_; ++j)
      if (group_of_[i] < 0 || group_of_[i] != group_of_[j]) w_pair[i * n_ + j] = sd * std::sqrt(pair_) * gauss(rng);
  const double w0 = sd * gauss(rng);
  const std::size_t m = x_.size();
  std::vector<double> r(m);
  for (std::size_t o = 0; o < m; ++o) {
    double f = w0;
    for (std::size_t i = 0; i < n_; ++i) {
      if (!x_[o][i]) continue;
      f += w_lin[i];
      for (std::size_t j = i + 1; j < n_; ++j)
        if (x_[o][j]) f += w_pair[i * n_ + j];
    }
    r[o] = y_[o] - f - std::sqrt(noise_) * gauss(rng);
  }
  chol_solve(chol_, m, r);
  return weights_qubo(w_lin, w_pair, w0, r);
}

}  // namespace gng
