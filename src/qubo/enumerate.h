#pragma once
// Enumerating f(x) over all 2^n states fast. The variables split into k "low" ones (0..k−1) and
// h = n − k "high" ones; for a fixed high state H,
//     f(H·2^k + m) = base(H) + Qlow[m] + Σ_{i∈m} c_i(H),
// where Qlow (couplings among low variables) is one table of 2^k entries and c_i(H) are the low
// variables' fields from the high bits. The high states are walked in Gray-code order, so each
// step flips one bit and updates base and c in O(degree). The exact sampler streams this; the
// quantum simulator keeps the per-H values to build the diagonal and its phases.
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "qubo/qubo.h"

namespace gng {

class LowHighSplit {
 public:
  // k = min(n, max_low) low variables. Keeps a reference to q for walk(): q must outlive it.
  explicit LowHighSplit(const Qubo& q, int max_low = 16);

  int low_bits() const { return k_; }
  int high_bits() const { return h_; }
  uint64_t high_states() const { return uint64_t{1} << h_; }
  // Qlow[m] for m < 2^k.
  const std::vector<double>& qlow() const { return qlow_; }

  // Calls fn(high_code, base, c) for the Gray-code indices g = begin … end−1, where high_code =
  // Gray(g) (bit b of it is x_{k+b}) and c[0..k) are the low variables' fields.
  void walk(uint64_t begin, uint64_t end,
            const std::function<void(uint64_t high_code, double base, std::span<const double> c)>& fn) const;

 private:
  const Qubo& q_;
  int k_, h_;
  std::vector<double> qlow_;
};

// out[m] = Σ_{i ∈ m} c[i] for every m < 2^c.size() (one add per entry).
void subset_sums(std::span<const double> c, std::span<double> out);

// f(x) for all 2^n states, index bit i = x_i. Refuses n > 30 (8 GiB of doubles).
std::vector<double> all_energies(const Qubo& q);

}  // namespace gng
