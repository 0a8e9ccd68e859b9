#pragma once
// A seeded random QUBO for tests: every linear coefficient and, with probability `density`, every
// coupling uniform in [−amplitude, amplitude] (rounded to integers when asked).
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/rng.h"
#include "qubo/qubo.h"

namespace gng::test {

inline Qubo random_qubo(std::size_t n, uint64_t seed, double density, double amplitude, double offset, bool integer = false) {
  Rng r(seed);
  auto value = [&] {
    const double v = (r.uniform() * 2 - 1) * amplitude;
    return integer ? std::round(v) : v;
  };
  std::vector<double> a(n);
  for (auto& v : a) v = value();
  std::vector<Coupling> b;
  for (uint32_t i = 0; i < n; ++i)
    for (uint32_t j = i + 1; j < n; ++j)
      if (r.uniform() < density) b.push_back({i, j, value()});
  return Qubo(n, a, b, offset);
}

}  // namespace gng::test
