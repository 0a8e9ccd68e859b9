#pragma once
// The design objective: minimise f(x) = offset + Σ a_i x_i + Σ_{i<j} b_ij x_i x_j over x ∈ {0,1}^n,
// and its Ising form E(s) = offset + Σ h_i s_i + Σ_{i<j} J_ij s_i s_j over s ∈ {−1,+1}^n, related by
// x_i = (1 − s_i)/2 (so s_i = +1 ⇔ x_i = 0). Both are immutable once built; couplings are merged
// (duplicates summed, i > j swapped, i == j folded into the linear term since x_i² = x_i).
#include <cstdint>
#include <span>
#include <vector>

namespace gng {

using Bits = std::vector<uint8_t>;  // one 0/1 byte per variable

struct Coupling {
  uint32_t i, j;
  double value;
};

class Qubo {
 public:
  Qubo() = default;
  Qubo(std::size_t n, std::vector<double> linear, const std::vector<Coupling>& quadratic, double offset = 0.0);

  std::size_t size() const { return linear_.size(); }
  double offset() const { return offset_; }
  const std::vector<double>& linear() const { return linear_; }
  // Merged couplings with i < j, sorted by (i, j); exact zeros dropped.
  const std::vector<Coupling>& quadratic() const { return quadratic_; }

  // Symmetric adjacency (CSR): neighbours of i are col[row[i] .. row[i+1]) with weights val[..].
  std::span<const uint32_t> neighbours(std::size_t i) const { return {col_.data() + row_[i], row_[i + 1] - row_[i]}; }
  std::span<const double> weights(std::size_t i) const { return {val_.data() + row_[i], row_[i + 1] - row_[i]}; }
  const std::vector<uint64_t>& row() const { return row_; }
  const std::vector<uint32_t>& col() const { return col_; }
  const std::vector<double>& val() const { return val_; }

  // f(x), computed exactly from the terms. x.size() must equal size().
  double energy(std::span<const uint8_t> x) const;
  // a_i + Σ_j b_ij x_j: the change of f when x_i goes 0 → 1. O(degree).
  double field(std::span<const uint8_t> x, std::size_t i) const;
  // field(x, i) for every i at once: O(n + couplings).
  std::vector<double> fields(std::span<const uint8_t> x) const;
  // f(x with bit i flipped) − f(x). O(degree).
  double flip_delta(std::span<const uint8_t> x, std::size_t i) const {
    return x[i] ? -field(x, i) : field(x, i);
  }

 private:
  std::vector<double> linear_;
  std::vector<Coupling> quadratic_;
  double offset_ = 0.0;
  std::vector<uint64_t> row_{0};
  std::vector<uint32_t> col_;
  std::vector<double> val_;
};

class Ising {
 public:
  Ising() = default;
  Ising(std::size_t n, std::vector<double> h, const std::vector<Coupling>& j, double offset = 0.0);

  std::size_t size() const { return h_.size(); }
  double offset() const { return offset_; }
  const std::vector<double>& h() const { return h_; }
  const std::vector<Coupling>& j() const { return j_; }
  // E(s) for spins s_i ∈ {−1, +1}.
  double energy(std::span<const int8_t> s) const;

 private:
  std::vector<double> h_;
  std::vector<Coupling> j_;
  double offset_ = 0.0;
};

Ising to_ising(const Qubo& q);
Qubo to_qubo(const Ising& m);
std::vector<int8_t> spins_from_bits(std::span<const uint8_t> x);  // s = 1 − 2x
Bits bits_from_spins(std::span<const int8_t> s);

}  // namespace gng
