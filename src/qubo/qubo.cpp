#include "qubo/qubo.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"

namespace gng {

namespace {

// Validates indices, orders each pair i < j, folds i == j into `linear`, sums duplicates and drops
// exact zeros. Returns couplings sorted by (i, j).
std::vector<Coupling> merge_couplings(std::size_t n, std::vector<double>& linear, const std::vector<Coupling>& in) {
  std::vector<Coupling> c;
  c.reserve(in.size());
  for (const auto& t : in) {
    if (t.i >= n || t.j >= n)
      throw Error("coupling (" + std::to_string(t.i) + ", " + std::to_string(t.j) + ") out of range for n = " + std::to_string(n));
    if (!std::isfinite(t.value)) throw Error("coupling (" + std::to_string(t.i) + ", " + std::to_string(t.j) + ") is not finite");
    if (t.i == t.j) {
      linear[t.i] += t.value;
      continue;
    }
    c.push_back(t.i < t.j ? t : Coupling{t.j, t.i, t.value});
  }
  std::sort(c.begin(), c.end(), [](const Coupling& a, const Coupling& b) { return a.i != b.i ? a.i < b.i : a.j < b.j; });
  std::vector<Coupling> out;
  out.reserve(c.size());
  for (const auto& t : c) {
    if (!out.empty() && out.back().i == t.i && out.back().j == t.j)
      out.back().value += t.value;
    else
      out.push_back(t);
  }
  std::erase_if(out, [](const Coupling& t) { return t.value == 0.0; });
  return out;
}

void check_linear(std::size_t n, const std::vector<double>& v, const char* what) {
  if (v.size() != n) throw Error(std::string(what) + " has " + std::to_string(v.size()) + " entries, expected n = " + std::to_string(n));
  for (std::size_t i = 0; i < n; ++i)
    if (!std::isfinite(v[i])) throw Error(std::string(what) + "[" + std::to_string(i) + "] is not finite");
}

}  // namespace

Qubo::Qubo(std::size_t n, std::vector<double> linear, const std::vector<Coupling>& quadratic, double offset)
    : linear_(std::move(linear)), offset_(offset) {
  if (n > UINT32_MAX) throw Error("QUBO too large: n = " + std::to_string(n));
  check_linear(n, linear_, "linear");
  if (!std::isfinite(offset)) throw Error("offset is not finite");
  quadratic_ = merge_couplings(n, linear_, quadratic);
  std::vector<uint64_t> degree(n + 1, 0);
  for (const auto& t : quadratic_) {
    ++degree[t.i + 1];
    ++degree[t.j + 1];
  }
  row_.assign(n + 1, 0);
  for (std::size_t i = 0; i < n; ++i) row_[i + 1] = row_[i] + degree[i + 1];
  col_.resize(row_[n]);
  val_.resize(row_[n]);
  std::vector<uint64_t> fill(row_.begin(), row_.end() - 1);
  for (const auto& t : quadratic_) {
    col_[fill[t.i]] = t.j;
    val_[fill[t.i]++] = t.value;
    col_[fill[t.j]] = t.i;
    val_[fill[t.j]++] = t.value;
  }
}

double Qubo::energy(std::span<const uint8_t> x) const {
  if (x.size() != size()) throw Error("energy: state has " + std::to_string(x.size()) + " bits, QUBO has " + std::to_string(size()));
  // Kahan-free but order-fixed: linear terms, then couplings in (i, j) order.
  double e = offset_;
  for (std::size_t i = 0; i < linear_.size(); ++i)
    if (x[i]) e += linear_[i];
  for (const auto& t : quadratic_)
    if (x[t.i] && x[t.j]) e += t.value;
  return e;
}

double Qubo::field(std::span<const uint8_t> x, std::size_t i) const {
  double f = linear_[i];
  for (uint64_t k = row_[i]; k < row_[i + 1]; ++k)
    if (x[col_[k]]) f += val_[k];
  return f;
}

std::vector<double> Qubo::fields(std::span<const uint8_t> x) const {
  if (x.size() != size()) throw Error("fields: state has " + std::to_string(x.size()) + " bits, QUBO has " + std::to_string(size()));
  std::vector<double> f(linear_);
  for (std::size_t i = 0; i < size(); ++i)
    if (x[i])
      for (uint64_t k = row_[i]; k < row_[i + 1]; ++k) f[col_[k]] += val_[k];
  return f;
}

Ising::Ising(std::size_t n, std::vector<double> h, const std::vector<Coupling>& j, double offset)
    : h_(std::move(h)), offset_(offset) {
  check_linear(n, h_, "h");
  if (!std::isfinite(offset)) throw Error("offset is not finite");
  std::vector<double> diag(n, 0.0);
  j_ = merge_couplings(n, diag, j);
  // s_i² = 1: a diagonal J_ii is a constant.
  for (double d : diag) offset_ += d;
}

double Ising::energy(std::span<const int8_t> s) const {
  if (s.size() != size()) throw Error("energy: state has " + std::to_string(s.size()) + " spins, model has " + std::to_string(size()));
  double e = offset_;
  for (std::size_t i = 0; i < h_.size(); ++i) e += h_[i] * s[i];
  for (const auto& t : j_) e += t.value * s[t.i] * s[t.j];
  return e;
}

// x = (1 − s)/2:  a x = a/2 − (a/2) s;  b x_i x_j = b/4 (1 − s_i − s_j + s_i s_j).
Ising to_ising(const Qubo& q) {
  const std::size_t n = q.size();
  std::vector<double> h(n);
  double offset = q.offset();
  for (std::size_t i = 0; i < n; ++i) {
    h[i] = -q.linear()[i] / 2;
    offset += q.linear()[i] / 2;
  }
  std::vector<Coupling> j;
  j.reserve(q.quadratic().size());
  for (const auto& t : q.quadratic()) {
    const double b = t.value / 4;
    h[t.i] -= b;
    h[t.j] -= b;
    offset += b;
    j.push_back({t.i, t.j, b});
  }
  return Ising(n, std::move(h), j, offset);
}

// s = 1 − 2x:  h s = h − 2h x;  J s_i s_j = J − 2J x_i − 2J x_j + 4J x_i x_j.
Qubo to_qubo(const Ising& m) {
  const std::size_t n = m.size();
  std::vector<double> a(n);
  double offset = m.offset();
  for (std::size_t i = 0; i < n; ++i) {
    a[i] = -2 * m.h()[i];
    offset += m.h()[i];
  }
  std::vector<Coupling> b;
  b.reserve(m.j().size());
  for (const auto& t : m.j()) {
    a[t.i] -= 2 * t.value;
    a[t.j] -= 2 * t.value;
    offset += t.value;
    b.push_back({t.i, t.j, 4 * t.value});
  }
  return Qubo(n, std::move(a), b, offset);
}

std::vector<int8_t> spins_from_bits(std::span<const uint8_t> x) {
  std::vector<int8_t> s(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) s[i] = x[i] ? -1 : 1;
  return s;
}

Bits bits_from_spins(std::span<const int8_t> s) {
  Bits x(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) x[i] = s[i] < 0 ? 1 : 0;
  return x;
}

}  // namespace gng
