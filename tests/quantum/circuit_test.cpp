#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <functional>
#include <numbers>

#include "core/error.h"
#include "core/rng.h"
#include "quantum/circuit.h"
#include "quantum/optimize.h"
#include "quantum/qasm.h"
#include "qubo/io.h"
#include "support/error_of.h"
#include "support/random_qubo.h"

namespace gng::quantum {
namespace {

using C = std::complex<double>;
using Matrix = std::vector<std::vector<C>>;

Qubo random_qubo(std::size_t n, uint64_t seed) { return test::random_qubo(n, seed, 0.6, 1.0, 0.3); }

Problem maxcut(const std::string& edges_text) { return parse_problem(edges_text, Format::rudy, "graph"); }

std::string ring(int n) {
  std::string s = std::to_string(n) + " " + std::to_string(n) + "\n";
  for (int i = 1; i <= n; ++i) s += std::to_string(i) + " " + std::to_string(i % n + 1) + " 1\n";
  return s;
}

std::string petersen() {
  const int e[15][2] = {{1, 2}, {2, 3}, {3, 4}, {4, 5}, {5, 1}, {1, 6}, {2, 7}, {3, 8}, {4, 9}, {5, 10}, {6, 8}, {8, 10}, {10, 7}, {7, 9}, {9, 6}};
  std::string s = "10 15\n";
  for (auto& p : e) s += std::to_string(p[0]) + " " + std::to_string(p[1]) + " 1\n";
  return s;
}

// --- dense reference: matrices and a scaling-and-squaring Taylor exponential ---------------
Matrix zeros(std::size_t d) { return Matrix(d, std::vector<C>(d, 0)); }
Matrix mul(const Matrix& a, const Matrix& b) {
  Matrix c = zeros(a.size());
  for (std::size_t i = 0; i < a.size(); ++i)
    for (std::size_t k = 0; k < a.size(); ++k)
      if (a[i][k] != C(0))
        for (std::size_t j = 0; j < a.size(); ++j) c[i][j] += a[i][k] * b[k][j];
  return c;
}
Matrix expm_minus_i(const Matrix& h, double t) {  // e^{−i t H}
  const std::size_t d = h.size();
  double norm = 0;
  for (auto& r : h)
    for (auto& v : r) norm = std::max(norm, std::abs(v) * d);
  int squarings = 0;
  double scale = std::abs(t) * norm;
  while (scale > 0.25) scale /= 2, ++squarings;
  Matrix a = zeros(d);
  for (std::size_t i = 0; i < d; ++i)
    for (std::size_t j = 0; j < d; ++j) a[i][j] = C(0, -t) * h[i][j] / std::pow(2.0, squarings);
  Matrix result = zeros(d), term = zeros(d);
  for (std::size_t i = 0; i < d; ++i) result[i][i] = term[i][i] = 1;
  for (int k = 1; k <= 30; ++k) {
    term = mul(term, a);
    for (auto& r : term)
      for (auto& v : r) v /= k;
    for (std::size_t i = 0; i < d; ++i)
      for (std::size_t j = 0; j < d; ++j) result[i][j] += term[i][j];
  }
  for (int s = 0; s < squarings; ++s) result = mul(result, result);
  return result;
}
std::vector<C> matvec(const Matrix& m, const std::vector<C>& v) {
  std::vector<C> out(v.size(), 0);
  for (std::size_t i = 0; i < v.size(); ++i)
    for (std::size_t j = 0; j < v.size(); ++j) out[i] += m[i][j] * v[j];
  return out;
}
// Σ_q X_q, and (X_a X_b + Y_a Y_b)/2 which swaps |01⟩ and |10⟩ of qubits a, b.
Matrix sum_x(int n) {
  Matrix m = zeros(std::size_t{1} << n);
  for (std::size_t z = 0; z < m.size(); ++z)
    for (int q = 0; q < n; ++q) m[z ^ (std::size_t{1} << q)][z] += 1;
  return m;
}
Matrix xy(int n, int a, int b) {
  Matrix m = zeros(std::size_t{1} << n);
  for (std::size_t z = 0; z < m.size(); ++z)
    if (((z >> a) & 1) != ((z >> b) & 1)) m[z ^ (std::size_t{1} << a) ^ (std::size_t{1} << b)][z] = 1;
  return m;
}

double max_diff(const std::vector<C>& a, const std::vector<C>& b) {
  double d = 0;
  for (std::size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(a[i] - b[i]));
  return d;
}

// The X-mixer QAOA state ψ(θ) on n qubits by dense matrix exponentials, H_C from c's diagonal.
std::vector<C> dense_qaoa(const Circuit& c, int n, const std::vector<double>& theta) {
  const std::size_t d = std::size_t{1} << n, p = theta.size() / 2;
  std::vector<C> ref(d, C(1.0 / std::sqrt(static_cast<double>(d))));
  Matrix hc = zeros(d);
  for (std::size_t z = 0; z < d; ++z) hc[z][z] = c.diagonal()[z];
  const Matrix hb = sum_x(n);
  for (std::size_t l = 0; l < p; ++l) ref = matvec(expm_minus_i(hb, theta[p + l]), matvec(expm_minus_i(hc, theta[l]), ref));
  return ref;
}

TEST(Qaoa, XMixerMatchesDenseMatrixExponentials) {
  const Qubo q = random_qubo(5, 1);
  const std::vector<double> theta = {0.3, -0.7, 1.1, 0.4, 0.9, -0.2};
  auto c = make_qaoa(q, 3, {});
  c->expectation(theta);
  EXPECT_LT(max_diff(c->amplitudes(), dense_qaoa(*c, 5, theta)), 1e-10);
}

void expect_gradient_matches_finite_differences(Circuit& c, std::vector<double> theta) {
  std::vector<double> g(theta.size());
  const double e = c.expectation_and_gradient(theta, g);
  EXPECT_NEAR(e, c.expectation(theta), 1e-10);
  for (std::size_t i = 0; i < theta.size(); ++i) {
    const double h = 1e-5;
    auto tp = theta, tm = theta;
    tp[i] += h;
    tm[i] -= h;
    const double fd = (c.expectation(tp) - c.expectation(tm)) / (2 * h);
    EXPECT_NEAR(g[i], fd, 1e-6 * std::max(1.0, std::abs(fd))) << "parameter " << i;
  }
}

TEST(Qaoa, EveryWidthFromOneQubitMatchesTheDenseReference) {
  // n = 1 … 8: states narrower than one vector (the lowest 1–3 qubits pair amplitudes inside a
  // vector, by the vector width), then the first sizes of the in-register kernel for the lowest
  // qubits and of the passes above it. β = 1.45 takes the α ≠ 1 form of the mixer.
  const std::vector<double> theta = {0.4, -0.3, 1.45, 0.6};
  CircuitOptions f;
  f.precision = Precision::f32;
  for (int n = 1; n <= 8; ++n) {
    SCOPED_TRACE("n = " + std::to_string(n));
    const Qubo q = random_qubo(n, 40 + n);
    auto a = make_qaoa(q, 2, {}), b = make_qaoa(q, 2, f);
    a->expectation(theta);
    b->expectation(theta);
    const std::vector<C> ref = dense_qaoa(*a, n, theta);
    EXPECT_LT(max_diff(a->amplitudes(), ref), 1e-10);
    EXPECT_LT(max_diff(b->amplitudes(), ref), 1e-5);
    expect_gradient_matches_finite_differences(*a, theta);
    std::vector<double> ga(4), gb(4);
    a->expectation_and_gradient(theta, ga);
    b->expectation_and_gradient(theta, gb);
    for (int i = 0; i < 4; ++i) EXPECT_NEAR(ga[i], gb[i], 1e-4) << "parameter " << i;
  }
}

TEST(Qaoa, XyMixerMatchesDenseProductOfEdgeAndFreeQubitExponentialsAndStaysOneHot) {
  const Qubo q = random_qubo(6, 2);
  CircuitOptions o;
  o.mixer = Mixer::xy;
  o.groups = {{0, 1, 2}, {3, 4}};  // qubit 5 is free
  const std::vector<double> theta = {0.5, -0.8, 0.7, 0.35};
  auto c = make_qaoa(q, 2, o);
  c->expectation(theta);
  // Initial state: W on {0,1,2}, W on {3,4}, |+⟩ on 5.
  std::vector<C> ref(64, 0);
  for (std::size_t z = 0; z < 64; ++z)
    if (std::popcount(z & 7u) == 1 && std::popcount(z & 24u) == 1) ref[z] = 1 / std::sqrt(3.0 * 2 * 2);
  Matrix hc = zeros(64);
  for (std::size_t z = 0; z < 64; ++z) {
    Bits x(6);
    for (int i = 0; i < 6; ++i) x[i] = (z >> i) & 1;
    hc[z][z] = q.energy(x);
  }
  // The one-hot subspace holds 3 · 2 · 2 states; its diagonal is f on them.
  EXPECT_EQ(c->diagonal().size(), 12u);
  const std::vector<std::pair<int, int>> order = {{0, 1}, {1, 2}, {2, 0}, {3, 4}};  // parity order, ring closed last
  Matrix x5 = zeros(64);  // X on the free qubit 5
  for (std::size_t z = 0; z < 64; ++z) x5[z ^ 32][z] = 1;
  for (int l = 0; l < 2; ++l) {
    ref = matvec(expm_minus_i(hc, theta[l]), ref);
    for (auto [a, b] : order) ref = matvec(expm_minus_i(xy(6, a, b), theta[2 + l]), ref);
    ref = matvec(expm_minus_i(x5, theta[2 + l]), ref);
  }
  EXPECT_LT(max_diff(c->amplitudes(), ref), 1e-10);
  EXPECT_NEAR(c->valid_probability(o.groups), 1.0, 1e-12);
}

TEST(Qaoa, XyMixerKeepsALargerStateInTheOneHotSubspace) {
  const Qubo q = random_qubo(12, 3);
  CircuitOptions o;
  o.mixer = Mixer::xy;
  o.groups = {{0, 1, 2, 3}, {4, 5, 6, 7, 8}, {9, 10}};
  auto c = make_qaoa(q, 3, o);
  c->expectation(std::vector<double>{0.4, 1.3, -0.6, 0.9, 0.2, 2.1});
  EXPECT_NEAR(c->valid_probability(o.groups), 1.0, 1e-12);
  for (const Bits& x : c->sample(500, 9)) {
    EXPECT_EQ(x[0] + x[1] + x[2] + x[3], 1);
    EXPECT_EQ(x[4] + x[5] + x[6] + x[7] + x[8], 1);
    EXPECT_EQ(x[9] + x[10], 1);
  }
}

TEST(Qaoa, NormIsPreservedInDoubleAndFloat) {
  const Qubo q = random_qubo(17, 4);  // above the 2^14 block: exercises the in-place high qubits
  for (Precision pr : {Precision::f64, Precision::f32}) {
    CircuitOptions o;
    o.precision = pr;
    auto c = make_qaoa(q, 3, o);
    c->expectation(std::vector<double>{0.3, 0.9, -1.2, 0.5, 1.7, 0.1});
    double norm = 0;
    for (const C& a : c->amplitudes()) norm += std::norm(a);
    EXPECT_NEAR(norm, 1.0, pr == Precision::f64 ? 1e-12 : 1e-5);
  }
}

TEST(Qaoa, LargeStatesSplitTheHighQubitsAndStayExact) {
  // n = 24: ten qubits beyond the 2^14 block, in place in passes of three, three, three and one
  // (kernels.cpp).
  const Qubo q = random_qubo(24, 14);
  CircuitOptions f;
  f.precision = Precision::f32;
  const std::vector<double> theta = {0.2, -0.45};
  auto a = make_qaoa(q, 1, {});
  std::vector<double> g(2);
  const double e = a->expectation_and_gradient(theta, g);
  const double h = 1e-4;
  const double fd_beta = (a->expectation(std::vector<double>{0.2, -0.45 + h}) - a->expectation(std::vector<double>{0.2, -0.45 - h})) / (2 * h);
  const double fd_gamma = (a->expectation(std::vector<double>{0.2 + h, -0.45}) - a->expectation(std::vector<double>{0.2 - h, -0.45})) / (2 * h);
  EXPECT_NEAR(g[1], fd_beta, 1e-5 * std::max(1.0, std::abs(fd_beta)));
  EXPECT_NEAR(g[0], fd_gamma, 1e-5 * std::max(1.0, std::abs(fd_gamma)));
  double norm = 0;
  for (const C& x : a->amplitudes()) norm += std::norm(x);
  EXPECT_NEAR(norm, 1.0, 1e-10);
  a.reset();
  EXPECT_NEAR(make_qaoa(q, 1, f)->expectation(theta), e, 1e-3);
}

TEST(Gradient, InPlaceHighQubitsMatchFiniteDifferencesAndFloatAgrees) {
  const Qubo q = random_qubo(19, 15);
  const std::vector<double> theta = {0.25, -0.3, 0.6, 1.4};  // β = 1.4: the α ≠ 1 form
  auto d = make_qaoa(q, 2, {});
  std::vector<double> gd(4), gf(4);
  d->expectation_and_gradient(theta, gd);
  for (std::size_t i = 0; i < theta.size(); ++i) {
    const double h = 1e-5;
    auto tp = theta, tm = theta;
    tp[i] += h;
    tm[i] -= h;
    const double fd = (d->expectation(tp) - d->expectation(tm)) / (2 * h);
    EXPECT_NEAR(gd[i], fd, 1e-6 * std::max(1.0, std::abs(fd))) << "parameter " << i;
  }
  d.reset();
  // complex<float>: the terms of each gradient are summed in double (kernels.cpp, ImSum).
  CircuitOptions f;
  f.precision = Precision::f32;
  make_qaoa(q, 2, f)->expectation_and_gradient(theta, gf);
  for (std::size_t i = 0; i < theta.size(); ++i) EXPECT_NEAR(gf[i], gd[i], 2e-5 * std::max(1.0, std::abs(gd[i]))) << "parameter " << i;
}

// The state gate by gate in plain complex arithmetic: e^{−iγ f(z)} on every amplitude, then
// e^{−iβX_q} = cos β − i sin β X_q qubit by qubit. Independent of the kernels' blocking, passes and
// tan β factorisation.
std::vector<C> gate_by_gate(const Circuit& c, const std::vector<double>& theta) {
  const int n = c.qubits(), p = static_cast<int>(theta.size() / 2);
  const std::size_t size = std::size_t{1} << n;
  std::vector<C> v(size, C(std::pow(2.0, -0.5 * n)));
  for (int l = 0; l < p; ++l) {
    for (std::size_t z = 0; z < size; ++z) {
      const double a = -theta[l] * c.diagonal()[z];
      v[z] = C(v[z].real() * std::cos(a) - v[z].imag() * std::sin(a), v[z].real() * std::sin(a) + v[z].imag() * std::cos(a));
    }
    const double cb = std::cos(theta[p + l]), sb = std::sin(theta[p + l]);
    const auto minus_i = [](C x) { return C(x.imag(), -x.real()); };
    for (int q = 0; q < n; ++q) {
      const std::size_t s = std::size_t{1} << q;
      for (std::size_t base = 0; base < size; base += 2 * s)
        for (std::size_t z = base; z < base + s; ++z) {
          const C a = v[z], b = v[z + s];
          v[z] = cb * a + sb * minus_i(b);
          v[z + s] = sb * minus_i(a) + cb * b;
        }
    }
  }
  return v;
}

TEST(Qaoa, LargeStatesMatchAGateByGateReference) {
  // Qubits beyond the 2^14 block in place: n = 17, one pass of three; n = 18, three and one;
  // n = 19, three and two; n = 24, three, three, three and one. β = 1.4 takes the α ≠ 1 form of
  // the mixer (|cos β| < 0.3), β = −0.5 the α = 1 form.
  const std::vector<double> theta = {0.35, -0.6, 1.4, -0.5};
  for (const int n : {17, 18, 19, 24}) {
    const Qubo q = random_qubo(n, 20 + n);
    const int p = n < 20 ? 2 : 1;  // one layer at n = 24 keeps the reference quick
    const std::vector<double> t = p == 2 ? theta : std::vector<double>{0.35, 1.4};
    auto c = make_qaoa(q, p, {});
    c->expectation(t);
    EXPECT_LT(max_diff(c->amplitudes(), gate_by_gate(*c, t)), 1e-11) << "n = " << n;
  }
  CircuitOptions f;
  f.precision = Precision::f32;
  for (const int n : {17, 18}) {
    auto c = make_qaoa(random_qubo(n, 37), 2, f);
    c->expectation(theta);
    EXPECT_LT(max_diff(c->amplitudes(), gate_by_gate(*c, theta)), 2e-6) << "n = " << n;
  }
}

TEST(Qaoa, FloatAgreesWithDouble) {
  const Qubo q = random_qubo(16, 5);
  CircuitOptions f;
  f.precision = Precision::f32;
  const std::vector<double> theta = {0.2, -0.4, 0.8, 0.6};
  auto a = make_qaoa(q, 2, {}), b = make_qaoa(q, 2, f);
  EXPECT_NEAR(a->expectation(theta), b->expectation(theta), 1e-4);
  EXPECT_LT(max_diff(a->amplitudes(), b->amplitudes()), 1e-5);
}


TEST(Qaoa, XyMixerSimulatesThirtyQubitsOnTheirOneHotSubspace) {
  // NAS-Bench-201's shape: six one-hot groups of five. All 2^30 states would need 40 GiB; the
  // 5^6 = 15,625 one-hot states fit a 1 MiB budget.
  const Qubo q = random_qubo(30, 21);
  CircuitOptions o;
  o.mixer = Mixer::xy;
  for (uint32_t g = 0; g < 6; ++g) o.groups.push_back({5 * g, 5 * g + 1, 5 * g + 2, 5 * g + 3, 5 * g + 4});
  o.memory_budget_bytes = 1 << 20;
  auto c = make_qaoa(q, 2, o);
  ASSERT_EQ(c->diagonal().size(), 15625u);
  // The diagonal holds f of the one-hot states, and its minimum is the exhaustive one over them.
  double best = INFINITY;
  for (double d : c->diagonal()) best = std::min(best, d);
  double exhaustive = INFINITY;
  for (int idx = 0; idx < 15625; ++idx) {
    Bits x(30);
    for (int g = 0, r = idx; g < 6; ++g, r /= 5) x[5 * g + r % 5] = 1;
    exhaustive = std::min(exhaustive, q.energy(x));
  }
  EXPECT_DOUBLE_EQ(best, exhaustive);
  expect_gradient_matches_finite_differences(*c, {0.3, -0.4, 0.9, 0.5});
  for (const Bits& x : c->sample(300, 4))
    for (uint32_t g = 0; g < 6; ++g) EXPECT_EQ(x[5 * g] + x[5 * g + 1] + x[5 * g + 2] + x[5 * g + 3] + x[5 * g + 4], 1);
  o.memory_budget_bytes = 1 << 18;
  EXPECT_NE(test::error_of([&] { make_qaoa(q, 1, o); }).find("state vectors over the 15625 one-hot states"), std::string::npos);
}

TEST(Gradient, AdjointMatchesFiniteDifferences) {
  const Qubo q = random_qubo(15, 6);
  auto x = make_qaoa(q, 3, {});  // keeps per-layer states (the budget allows it)
  expect_gradient_matches_finite_differences(*x, {0.3, -0.5, 0.8, 1.1, 0.4, -0.9});
  CircuitOptions tight;  // no room for per-layer states: ψ is run back through the layers
  tight.memory_budget_bytes = circuit_bytes(15, Precision::f64) * 1.01;
  auto no_ckpt = make_qaoa(q, 3, tight);
  expect_gradient_matches_finite_differences(*no_ckpt, {0.3, -0.5, 0.8, 1.1, 0.4, -0.9});
  CircuitOptions o;
  o.mixer = Mixer::xy;
  o.groups = {{0, 1, 2}, {5, 6, 7, 8}};
  auto y = make_qaoa(q, 2, o);
  expect_gradient_matches_finite_differences(*y, {0.6, -0.2, 0.7, 1.3});
  auto v = make_vqe(random_qubo(6, 7), 2, {});
  std::vector<double> t(18);
  Rng r(1);
  for (auto& a : t) a = r.uniform() * 6 - 3;
  expect_gradient_matches_finite_differences(*v, t);
}

TEST(Gradient, DepolarisingNoiseShrinksExpectationTowardsTheMeanAndScalesTheGradient) {
  const Qubo q = random_qubo(8, 8);
  CircuitOptions noisy;
  noisy.noise.depolarizing = 0.1;
  auto ideal = make_qaoa(q, 2, {}), n = make_qaoa(q, 2, noisy);
  const std::vector<double> theta = {0.4, 0.7, 0.5, 0.2};
  double mean = 0;
  for (double d : ideal->diagonal()) mean += d / ideal->diagonal().size();
  const double f = 0.9 * 0.9;
  EXPECT_NEAR(n->expectation(theta), f * ideal->expectation(theta) + (1 - f) * mean, 1e-12);
  expect_gradient_matches_finite_differences(*n, theta);
}

// Farhi, Goldstone, Gutmann 2014: at p = 1 the best expected cut fraction per edge is 3/4 on a
// ring and 1/2 + 1/(3√3) on a triangle-free 3-regular graph.
TEST(Farhi, RingMaxCutAtDepthOneCutsThreeQuarters) {
  const Problem p = maxcut(ring(10));
  const QaoaRun run = optimize_qaoa([&](int d) { return make_qaoa(p.qubo, d, {}); }, 1, Optimizer::lbfgs, 200);
  EXPECT_NEAR(p.objective(run.result.value) / 10, 0.75, 1e-6);
}

TEST(Farhi, ThreeRegularTriangleFreeAtDepthOne) {
  const Problem p = maxcut(petersen());
  for (Optimizer opt : {Optimizer::lbfgs, Optimizer::cobyla}) {
    const QaoaRun run = optimize_qaoa([&](int d) { return make_qaoa(p.qubo, d, {}); }, 1, opt, 400);
    EXPECT_NEAR(p.objective(run.result.value) / 15, 0.5 + 1 / (3 * std::sqrt(3.0)), 1e-5);
  }
}

TEST(Optimize, DeeperCircuitsDoBetterAndInterpIsTheZhouFormula) {
  const std::vector<double> one = {0.3, 0.8};
  EXPECT_EQ(qaoa_interp(one), (std::vector<double>{0.3, 0.3, 0.8, 0.8}));
  const std::vector<double> two = {0.2, 0.6, 0.9, 0.1};
  EXPECT_EQ(qaoa_interp(two), (std::vector<double>{0.2, 0.4, 0.6, 0.9, 0.5, 0.1}));
  const Problem p = maxcut(petersen());
  double prev = 0;
  for (int depth = 1; depth <= 3; ++depth) {
    const QaoaRun run = optimize_qaoa([&](int d) { return make_qaoa(p.qubo, d, {}); }, depth, Optimizer::lbfgs, 300);
    const double cut = p.objective(run.result.value);
    EXPECT_GT(cut, prev + 1e-3) << "depth " << depth;
    prev = cut;
  }
}

TEST(Optimize, MixedPrecisionStartsInFloatAndEndsAtTheDoubleOptimum) {
  const Qubo q = random_qubo(15, 9);
  CircuitOptions f;
  f.precision = Precision::f32;
  auto fine = make_qaoa(q, 3, {}), coarse = make_qaoa(q, 3, f);
  std::vector<double> scales(6, 1.0), bounds(6, std::numbers::pi / 2);
  for (int l = 0; l < 3; ++l) scales[l] = 1 / fine->scale(), bounds[l] = std::numbers::pi;
  const std::vector<double> start = qaoa_ramp(3, fine->scale());
  const OptimizeResult plain = minimize(*fine, start, scales, Optimizer::lbfgs, 300, 1e-7, bounds);
  const OptimizeResult r = minimize(*fine, start, scales, Optimizer::lbfgs, 300, 1e-7, bounds, coarse.get());
  EXPECT_EQ(plain.float_evaluations, 0);
  // The first steps in float, the last ones (and the final re-preparation) in double.
  EXPECT_GT(r.float_evaluations, 0);
  EXPECT_LT(r.float_evaluations, r.evaluations - 2);
  EXPECT_NEAR(r.value, plain.value, 1e-6 * std::abs(plain.value));
  EXPECT_NEAR(r.value, fine->expectation(r.theta), 1e-12);
  // Through optimize_qaoa the seeds run on the coarse circuits too.
  const QaoaRun run = optimize_qaoa([&](int d) { return make_qaoa(q, d, {}); }, 2, Optimizer::lbfgs, 300, true,
                                    [&](int d) { return make_qaoa(q, d, f); });
  EXPECT_EQ(run.circuit->precision(), Precision::f64);
  EXPECT_GT(run.result.float_evaluations, 0);
  EXPECT_LT(run.result.float_evaluations, run.result.evaluations - 2);
}

// A circuit whose evaluation fails: the error must come out of minimize() as a gng::Error, not
// unwind through NLopt's C code.
class FailingCircuit final : public Circuit {
 public:
  explicit FailingCircuit(const Qubo& q) : Circuit(q, {}) {}
  std::size_t num_params() const override { return 2; }
  double expectation(std::span<const double>) override { throw Error("evaluation failed"); }
  double expectation_and_gradient(std::span<const double>, std::span<double>) override { throw Error("evaluation failed"); }
  std::vector<Bits> sample(std::size_t, uint64_t) const override { return {}; }
  std::vector<std::complex<double>> amplitudes() const override { return {}; }
  double valid_probability(const std::vector<std::vector<uint32_t>>&) const override { return 0; }
};

TEST(Optimize, AnEvaluationErrorComesOutAsAnError) {
  const Qubo q = random_qubo(3, 1);
  for (Optimizer opt : {Optimizer::lbfgs, Optimizer::cobyla}) {
    FailingCircuit c(q);
    try {
      minimize(c, {0.1, 0.2}, std::vector<double>{1.0, 1.0}, opt, 50);
      FAIL() << "no error";
    } catch (const Error& e) {
      EXPECT_STREQ(e.what(), "evaluation failed");
    }
  }
}

// A smooth valley in six parameters, −3 + Σ_i w_i (1 − cos(θ_i − c_i)), whose values carry a
// deterministic jitter of ±5e-5, as round-off in a low-precision state jitters ⟨H_C⟩, while the
// gradient is the smooth valley's: near the minimum it promises descent the values do not show.
class JitteryValley final : public Circuit {
 public:
  explicit JitteryValley(const Qubo& q) : Circuit(q, {}) {}
  static double centre(std::size_t i) { return 0.3 * static_cast<double>(i) - 0.5; }
  std::size_t num_params() const override { return 6; }
  double expectation(std::span<const double> t) override { return value(t, {}); }
  double expectation_and_gradient(std::span<const double> t, std::span<double> g) override { return value(t, g); }
  std::vector<Bits> sample(std::size_t, uint64_t) const override { return {}; }
  std::vector<std::complex<double>> amplitudes() const override { return {}; }
  double valid_probability(const std::vector<std::vector<uint32_t>>&) const override { return 0; }
  int calls = 0;

 private:
  double value(std::span<const double> t, std::span<double> g) {
    ++calls;
    double f = -3;
    for (std::size_t i = 0; i < t.size(); ++i) {  // six (num_params)
      const double w = 1.0 + static_cast<double>(i);
      f += w * (1 - std::cos(t[i] - centre(i)));
      if (!g.empty()) g[i] = w * std::sin(t[i] - centre(i));
    }
    const double h = std::sin(t[0] * 12.9898 + t[1] * 78.233 + (t.size() > 2 ? t[2] : 0.0) * 3.1) * 43758.5453;
    return f + 1e-4 * (h - std::floor(h) - 0.5);
  }
};

TEST(Optimize, LbfgsStopsWhenItStallsAtThePrecisionFloor) {
  JitteryValley c(random_qubo(3, 1));
  const OptimizeResult r = minimize(c, std::vector<double>(6, 1.0), std::vector<double>(6, 1.0), Optimizer::lbfgs, 300, 1e-7);
  EXPECT_NEAR(r.value, -3, 1e-4);
  for (std::size_t i = 0; i < 6; ++i) EXPECT_NEAR(r.theta[i], JitteryValley::centre(i), 0.02) << "parameter " << i;
  // Five evaluations in a row without a better value end the run (optimize.cpp, kStall): 16 here,
  // against 29 when NLopt is left to fail its line searches until it gives up. NLopt's calls
  // after the stop do not reach the circuit.
  EXPECT_EQ(c.calls, r.evaluations);
  EXPECT_LE(r.evaluations, 20);
}

TEST(Vqe, ReachesTheGroundStateOfASmallQubo) {
  const Qubo q = random_qubo(6, 11);
  auto c = make_vqe(q, 2, {});
  const double best = *std::min_element(c->diagonal().begin(), c->diagonal().end());
  // The VQE landscape has local minima: a few random starts, as the vqe sampler does.
  Rng r(3);
  double found = 1e300;
  for (int start = 0; start < 5; ++start) {
    std::vector<double> theta(c->num_params());
    for (auto& t : theta) t = r.uniform() * 2 * std::numbers::pi;
    found = std::min(found, minimize(*c, theta, std::vector<double>(theta.size(), 1.0), Optimizer::lbfgs, 500).value);
  }
  EXPECT_NEAR(found, best, 1e-3);
}

TEST(Sampling, IsSeededAndFollowsBornProbabilities) {
  const Qubo q = random_qubo(4, 12);
  auto c = make_qaoa(q, 1, {});
  c->expectation(std::vector<double>{0.9, 0.4});
  const auto a = c->sample(40000, 5), b = c->sample(40000, 5), d = c->sample(40000, 6);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, d);
  std::vector<double> freq(16, 0);
  for (const Bits& x : a) freq[x[0] | x[1] << 1 | x[2] << 2 | x[3] << 3] += 1.0 / a.size();
  const auto amp = c->amplitudes();
  for (int z = 0; z < 16; ++z) EXPECT_NEAR(freq[z], std::norm(amp[z]), 0.01) << z;
}

TEST(Sampling, ReadoutNoiseFlipsBits) {
  const Qubo q(3, {0, 0, 0}, {});
  CircuitOptions o;
  o.noise.readout = 0.2;
  auto c = make_vqe(q, 0, o);
  c->expectation(std::vector<double>{0, 0, 0});  // |000⟩
  double ones = 0;
  const auto shots = c->sample(20000, 1);
  for (const Bits& x : shots) ones += x[0] + x[1] + x[2];
  EXPECT_NEAR(ones / (3.0 * shots.size()), 0.2, 0.01);
}

TEST(Limits, RefuseStatesAboveTheMemoryBudgetWithTheNumbers) {
  CircuitOptions o;
  o.memory_budget_bytes = 1 << 20;
  try {
    make_qaoa(random_qubo(16, 1), 1, o);
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "quantum: n = 16 qubits needs 0.00244 GiB (two complex<double> state vectors and the diagonal of H_C); "
                 "the memory budget is 0.000977 GiB");
  }
  // A budget above what the machine has: refused with what it has, before allocating (2.7 TB).
  CircuitOptions vast;
  vast.memory_budget_bytes = 1e16;
  try {
    make_qaoa(random_qubo(36, 1), 1, vast);
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("quantum: n = 36 qubits needs 2.56e+03 GiB of state vectors; this machine has ", 0), 0u)
        << e.what();
  }
  CircuitOptions bad;
  bad.mixer = Mixer::xy;
  EXPECT_THROW(make_qaoa(random_qubo(4, 1), 1, bad), Error);  // xy without groups
  bad.groups = {{0, 1}, {1, 2}};
  EXPECT_THROW(make_qaoa(random_qubo(4, 1), 1, bad), Error);  // overlapping groups
}

TEST(Qasm, ExportedCircuitsResimulateToTheSameState) {
  const Qubo q = random_qubo(6, 13);
  const std::vector<double> theta = {0.7, -0.3, 0.45, 1.2};
  auto c = make_qaoa(q, 2, {});
  c->expectation(theta);
  EXPECT_LT(max_diff(simulate_qasm(qaoa_qasm(q, theta, {})), c->amplitudes()), 1e-10);
  CircuitOptions o;
  o.mixer = Mixer::xy;
  o.groups = {{0, 1, 2}, {3, 4}};
  auto x = make_qaoa(q, 2, o);
  x->expectation(theta);
  EXPECT_LT(max_diff(simulate_qasm(qaoa_qasm(q, theta, o)), x->amplitudes()), 1e-10);
  std::vector<double> v(18);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = 0.1 * i - 0.7;
  auto w = make_vqe(q, 2, {});
  w->expectation(v);
  EXPECT_LT(max_diff(simulate_qasm(vqe_qasm(6, 2, v)), w->amplitudes()), 1e-12);
  EXPECT_THROW(simulate_qasm("OPENQASM 3.0;\nqubit[2] q;\nswap q[0], q[1];\n"), Error);
}

}  // namespace
}  // namespace gng::quantum
