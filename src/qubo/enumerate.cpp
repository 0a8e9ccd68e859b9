#include "qubo/enumerate.h"

#include <algorithm>
#include <bit>
#include <string>

#include "core/error.h"

namespace gng {

LowHighSplit::LowHighSplit(const Qubo& q, int max_low) : q_(q) {
  const int n = static_cast<int>(q.size());
  if (n < 1 || n > 62) throw Error("enumeration needs 1 <= n <= 62, got n = " + std::to_string(n));
  k_ = std::min(n, max_low);
  h_ = n - k_;
  // Qlow[m] = Qlow[m without its top bit t] + Σ_{j ∈ rest} b_tj.
  std::vector<double> b(static_cast<std::size_t>(k_) * k_, 0.0);
  for (const auto& t : q.quadratic())
    if (static_cast<int>(t.j) < k_) b[t.i * k_ + t.j] = b[t.j * k_ + t.i] = t.value;
  qlow_.assign(std::size_t{1} << k_, 0.0);
  for (std::size_t m = 1; m < qlow_.size(); ++m) {
    const int top = std::bit_width(m) - 1;
    const std::size_t rest = m ^ (std::size_t{1} << top);
    double s = qlow_[rest];
    for (std::size_t r = rest; r; r &= r - 1) s += b[top * k_ + std::countr_zero(r)];
    qlow_[m] = s;
  }
}

void LowHighSplit::walk(uint64_t begin, uint64_t end,
                        const std::function<void(uint64_t, double, std::span<const double>)>& fn) const {
  if (begin >= end) return;
  const std::size_t n = q_.size();
  const int k = k_;
  // State Gray(begin): fields of every variable from the high bits alone, and base(H).
  const uint64_t g = begin ^ (begin >> 1);
  std::vector<uint8_t> x(n, 0);
  for (int b = 0; b < h_; ++b) x[k + b] = (g >> b) & 1;
  std::vector<double> field(n);
  for (std::size_t i = 0; i < n; ++i) {
    double f = q_.linear()[i];
    const auto nb = q_.neighbours(i);
    const auto w = q_.weights(i);
    for (std::size_t e = 0; e < nb.size(); ++e)
      if (static_cast<int>(nb[e]) >= k && x[nb[e]]) f += w[e];
    field[i] = f;
  }
  double base = q_.offset();
  for (int b = 0; b < h_; ++b) {
    const std::size_t v = k + b;
    if (!x[v]) continue;
    base += q_.linear()[v];
    const auto nb = q_.neighbours(v);
    const auto w = q_.weights(v);
    for (std::size_t e = 0; e < nb.size(); ++e)
      if (nb[e] > v && x[nb[e]]) base += w[e];
  }
  const std::span<const double> c(field.data(), static_cast<std::size_t>(k));
  for (uint64_t idx = begin;; ++idx) {
    fn(idx ^ (idx >> 1), base, c);
    if (idx + 1 == end) return;
    // Next Gray state flips high bit ctz(idx + 1).
    const std::size_t v = k + std::countr_zero(idx + 1);
    const double d = x[v] ? -1.0 : 1.0;
    base += d * field[v];
    x[v] ^= 1;
    const auto nb = q_.neighbours(v);
    const auto w = q_.weights(v);
    for (std::size_t e = 0; e < nb.size(); ++e) field[nb[e]] += d * w[e];
  }
}

void subset_sums(std::span<const double> c, std::span<double> out) {
  out[0] = 0;
  for (std::size_t m = 1; m < out.size(); ++m) out[m] = out[m & (m - 1)] + c[std::countr_zero(m)];
}

std::vector<double> all_energies(const Qubo& q) {
  if (q.size() > 30) throw Error("all_energies: n = " + std::to_string(q.size()) + " is above 30 (2^n doubles would not fit)");
  const LowHighSplit s(q);
  const int k = s.low_bits();
  std::vector<double> out(std::size_t{1} << q.size());
  std::vector<double> lin(std::size_t{1} << k);
  s.walk(0, s.high_states(), [&](uint64_t high, double base, std::span<const double> c) {
    subset_sums(c, lin);
    double* o = out.data() + (high << k);
    for (std::size_t m = 0; m < lin.size(); ++m) o[m] = base + s.qlow()[m] + lin[m];
  });
  return out;
}

}  // namespace gng
