#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "core/rng.h"
#include "qubo/enumerate.h"
#include "support/random_qubo.h"

namespace gng {
namespace {

Qubo random_qubo(std::size_t n, uint64_t seed) { return test::random_qubo(n, seed, 0.4, 2.0, 0.5); }

TEST(Enumerate, AllEnergiesMatchQuboEnergyOnEveryState) {
  for (std::size_t n : {1, 5, 16, 19}) {
    const Qubo q = random_qubo(n, n);
    const auto e = all_energies(q);
    ASSERT_EQ(e.size(), std::size_t{1} << n);
    Bits x(n);
    for (uint64_t z = 0; z < e.size(); z += (n > 16 ? 7 : 1)) {
      for (std::size_t i = 0; i < n; ++i) x[i] = (z >> i) & 1;
      ASSERT_NEAR(e[z], q.energy(x), 1e-9) << "n=" << n << " z=" << z;
    }
  }
}

TEST(Enumerate, WalkVisitsEachHighStateOnceInGrayOrder) {
  const Qubo q = random_qubo(20, 3);
  const LowHighSplit s(q, 14);
  EXPECT_EQ(s.low_bits(), 14);
  EXPECT_EQ(s.high_bits(), 6);
  std::vector<int> seen(64, 0);
  uint64_t prev = 0;
  bool first = true;
  s.walk(0, 64, [&](uint64_t high, double, std::span<const double> c) {
    EXPECT_EQ(c.size(), 14u);
    ++seen[high];
    if (!first) {
      EXPECT_EQ(std::popcount(prev ^ high), 1);
    }
    prev = high;
    first = false;
  });
  for (int v : seen) EXPECT_EQ(v, 1);
}

TEST(Enumerate, RefusesHugeN) { EXPECT_THROW(all_energies(random_qubo(31, 1)), Error); }

}  // namespace
}  // namespace gng
