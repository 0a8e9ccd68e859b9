#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "core/rng.h"
#include "qubo/qubo.h"
#include "qubo/sample_set.h"

namespace gng {
namespace {

// A dense random QUBO with duplicate, reversed and diagonal couplings, plus its dense matrix.
struct Dense {
  Qubo q;
  std::vector<std::vector<double>> m;  // m[i][i] = a_i, m[i][j] (i<j) = b_ij
  double offset;
};

Dense random_qubo(std::size_t n, uint64_t seed) {
  Rng r(seed);
  Dense d{{}, std::vector<std::vector<double>>(n, std::vector<double>(n, 0.0)), r.uniform() * 10 - 5};
  std::vector<double> a(n);
  for (std::size_t i = 0; i < n; ++i) d.m[i][i] = a[i] = std::round(r.uniform() * 20 - 10);
  std::vector<Coupling> b;
  for (int k = 0; k < static_cast<int>(n * n); ++k) {
    const uint32_t i = r.below(n), j = r.below(n);
    const double v = std::round(r.uniform() * 20 - 10) / 4;
    b.push_back({i, j, v});
    if (i == j)
      d.m[i][i] += v;
    else
      d.m[std::min(i, j)][std::max(i, j)] += v;
  }
  d.q = Qubo(n, a, b, d.offset);
  return d;
}

double brute_energy(const Dense& d, const Bits& x) {
  double e = d.offset;
  for (std::size_t i = 0; i < x.size(); ++i)
    for (std::size_t j = i; j < x.size(); ++j) e += d.m[i][j] * x[i] * x[j];
  return e;
}

Bits bits_of(uint64_t code, std::size_t n) {
  Bits x(n);
  for (std::size_t i = 0; i < n; ++i) x[i] = (code >> i) & 1;
  return x;
}

TEST(Qubo, EnergyMatchesDenseBruteForceOnEveryState) {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    const Dense d = random_qubo(9, seed);
    for (uint64_t c = 0; c < (1u << 9); ++c) ASSERT_NEAR(d.q.energy(bits_of(c, 9)), brute_energy(d, bits_of(c, 9)), 1e-9);
  }
}

TEST(Qubo, FlipDeltaIsTheEnergyDifference) {
  const Dense d = random_qubo(30, 11);
  Rng r(3);
  for (int t = 0; t < 200; ++t) {
    Bits x(30);
    for (auto& b : x) b = r.below(2);
    const std::size_t i = r.below(30);
    Bits y = x;
    y[i] ^= 1;
    ASSERT_NEAR(d.q.flip_delta(x, i), d.q.energy(y) - d.q.energy(x), 1e-9);
  }
}

TEST(Qubo, FieldsAgreeWithFieldForEveryVariable) {
  const Dense d = random_qubo(25, 12);
  Rng r(4);
  Bits x(25);
  for (auto& b : x) b = r.below(2);
  const auto f = d.q.fields(x);
  for (std::size_t i = 0; i < 25; ++i) ASSERT_NEAR(f[i], d.q.field(x, i), 1e-12);
  EXPECT_THROW(d.q.fields(Bits(3)), Error);
}

TEST(Qubo, MergesDuplicatesFoldsDiagonalAndBuildsSymmetricAdjacency) {
  const Qubo q(3, {1, 2, 3}, {{0, 1, 1.5}, {1, 0, 0.5}, {2, 2, 4}, {1, 2, 1}, {1, 2, -1}}, 0.25);
  ASSERT_EQ(q.quadratic().size(), 1u);  // (1,2) cancels to zero and is dropped
  EXPECT_EQ(q.quadratic()[0].i, 0u);
  EXPECT_EQ(q.quadratic()[0].j, 1u);
  EXPECT_DOUBLE_EQ(q.quadratic()[0].value, 2.0);
  EXPECT_DOUBLE_EQ(q.linear()[2], 7.0);
  ASSERT_EQ(q.neighbours(1).size(), 1u);
  EXPECT_EQ(q.neighbours(1)[0], 0u);
  EXPECT_DOUBLE_EQ(q.weights(1)[0], 2.0);
  EXPECT_TRUE(q.neighbours(2).empty());
  EXPECT_DOUBLE_EQ(q.energy(Bits{1, 1, 1}), 0.25 + 1 + 2 + 7 + 2);
}

TEST(Qubo, RejectsOutOfRangeAndNonFiniteTerms) {
  EXPECT_THROW(Qubo(2, {0, 0}, {{0, 2, 1.0}}), Error);
  EXPECT_THROW(Qubo(2, {0}, {}), Error);
  EXPECT_THROW(Qubo(2, {0, std::nan("")}, {}), Error);
  EXPECT_THROW(Qubo(2, {0, 0}, {{0, 1, INFINITY}}), Error);
  EXPECT_THROW(Qubo(2, {0, 0}, {}).energy(Bits{1}), Error);
}

TEST(Ising, RoundTripsPreserveEveryEnergy) {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    const Dense d = random_qubo(8, seed + 100);
    const Ising m = to_ising(d.q);
    const Qubo back = to_qubo(m);
    const Ising again = to_ising(back);
    for (uint64_t c = 0; c < (1u << 8); ++c) {
      const Bits x = bits_of(c, 8);
      const auto s = spins_from_bits(x);
      EXPECT_EQ(bits_from_spins(s), x);
      ASSERT_NEAR(m.energy(s), d.q.energy(x), 1e-9);
      ASSERT_NEAR(back.energy(x), d.q.energy(x), 1e-9);
      ASSERT_NEAR(again.energy(s), m.energy(s), 1e-9);
    }
  }
}

TEST(Ising, KnownSmallConversion) {
  // f = x0 + x1 − 2 x0 x1 (XOR-like): s = 1 − 2x gives h = 0, J = −1/2, offset 1/2.
  const Qubo q(2, {1, 1}, {{0, 1, -2}});
  const Ising m = to_ising(q);
  EXPECT_NEAR(m.h()[0], 0.0, 1e-12);
  EXPECT_NEAR(m.h()[1], 0.0, 1e-12);
  ASSERT_EQ(m.j().size(), 1u);
  EXPECT_NEAR(m.j()[0].value, -0.5, 1e-12);
  EXPECT_NEAR(m.offset(), 0.5, 1e-12);
}

TEST(SampleSet, MergesCountsSortsAndRecomputesEnergies) {
  const Qubo q(2, {1, -3}, {{0, 1, 1}});
  const SampleSet s(q, {{1, 1}, {0, 1}, {1, 1}, {0, 0}, {0, 1}, {0, 1}});
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s.best().x, (Bits{0, 1}));
  EXPECT_DOUBLE_EQ(s.best().energy, -3);
  EXPECT_EQ(s.best().count, 3u);
  EXPECT_DOUBLE_EQ(s.samples()[1].energy, -1);
  EXPECT_EQ(s.samples()[1].count, 2u);
  EXPECT_DOUBLE_EQ(s.samples()[2].energy, 0);
  EXPECT_THROW(SampleSet().best(), Error);
}

}  // namespace
}  // namespace gng
