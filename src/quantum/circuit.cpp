#include "quantum/circuit.h"

#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <string>

#include "core/error.h"
#include "core/rng.h"
#include "quantum/kernels.h"
#include "qubo/enumerate.h"

namespace gng::quantum {

using detail::Cx;
using detail::StateBuffer;

std::vector<std::pair<int, int>> xy_ring_edges(const std::vector<std::vector<uint32_t>>& groups) {
  std::vector<std::pair<int, int>> edges;
  for (const auto& g : groups) {
    const std::size_t m = g.size();
    if (m == 2) edges.push_back({int(g[0]), int(g[1])});
    if (m < 3) continue;
    for (std::size_t t = 0; t + 1 < m; t += 2) edges.push_back({int(g[t]), int(g[t + 1])});
    for (std::size_t t = 1; t + 1 < m; t += 2) edges.push_back({int(g[t]), int(g[t + 1])});
    edges.push_back({int(g[m - 1]), int(g[0])});  // closes the ring
  }
  return edges;
}

// The memory the kernel says it can give without swapping (MemAvailable), in bytes; +inf when it
// does not say.
double available_memory() {
  std::FILE* f = std::fopen("/proc/meminfo", "r");
  if (!f) return HUGE_VAL;
  char line[256];
  double kib = -1;
  while (kib < 0 && std::fgets(line, sizeof line, f)) std::sscanf(line, "MemAvailable: %lf kB", &kib);
  std::fclose(f);
  return kib < 0 ? HUGE_VAL : kib * 1024;
}

double circuit_bytes(int n, Precision p, int layers) {
  const double amp = p == Precision::f64 ? 16 : 8;
  return std::ldexp((2 + layers) * amp + 8, n);
}

Circuit::Circuit(const Qubo& q, const CircuitOptions& o) : o_(o), n_(static_cast<int>(q.size())) {
  if (n_ < 1) throw Error("quantum: empty QUBO");
  if (n_ > 62) throw Error("quantum: n = " + std::to_string(n_) + " qubits: the simulator stops at 62");
  if (!(o.noise.depolarizing >= 0 && o.noise.depolarizing < 1) || !(o.noise.readout >= 0 && o.noise.readout < 0.5))
    throw Error("quantum: noise needs 0 <= depolarizing < 1 and 0 <= readout < 0.5");
  std::vector<int> owner(n_, -1);
  for (std::size_t g = 0; g < o.groups.size(); ++g) {
    if (o.groups[g].empty()) throw Error("quantum: one-hot group " + std::to_string(g) + " is empty");
    for (uint32_t v : o.groups[g]) {
      if (static_cast<int>(v) >= n_) throw Error("quantum: one-hot group " + std::to_string(g) + " names qubit " + std::to_string(v) + " of " + std::to_string(n_));
      if (owner[v] >= 0) throw Error("quantum: qubit " + std::to_string(v) + " is in two one-hot groups");
      owner[v] = static_cast<int>(g);
    }
  }
  if (o.mixer == Mixer::xy && o.groups.empty()) throw Error("quantum: the xy mixer needs one-hot groups");
  if (o.threads > 0) omp_set_num_threads(o.threads);
  // The mean of f over all 2^n bitstrings (what the maximally mixed state measures): each bit is 1
  // with probability 1/2, each pair both 1 with 1/4.
  mean_diag_ = q.offset();
  for (double a : q.linear()) mean_diag_ += a / 2;
  for (const auto& c : q.quadratic()) mean_diag_ += c.value / 4;
  const Ising m = to_ising(q);
  std::vector<double> local(n_);
  for (int i = 0; i < n_; ++i) local[i] = std::abs(m.h()[i]);
  for (const auto& t : m.j()) {
    local[t.i] += std::abs(t.value);
    local[t.j] += std::abs(t.value);
  }
  scale_ = *std::max_element(local.begin(), local.end());
  if (scale_ == 0) scale_ = 1;
}

double Circuit::fidelity() const { return std::pow(1.0 - o_.noise.depolarizing, layers_); }

namespace {

uint64_t group_mask(const std::vector<uint32_t>& g) {
  uint64_t m = 0;
  for (uint32_t v : g) m |= uint64_t{1} << v;
  return m;
}

// Everything that works on a prepared state of precision T over a basis of `dim` states: all 2^n
// (index = bitstring), or a subspace whose index → bitstring map is bits_of().
template <class T>
class StateCircuit : public Circuit {
 public:
  double expectation(std::span<const double> theta) override {
    forward(theta);
    return noisy(expect());
  }

  std::vector<Bits> sample(std::size_t shots, uint64_t seed) const override {
    Rng rng(seed, 0x5a3b1e);
    const double f = fidelity();
    const uint64_t all = (uint64_t{1} << n_) - 1;  // n <= 62
    // Which shots come from the state and which from the maximally mixed part (uniform over all
    // 2^n bitstrings); then the ideal ones by one walk over the sorted uniforms.
    std::vector<uint64_t> z(shots);
    std::vector<std::pair<double, std::size_t>> draws;
    for (std::size_t s = 0; s < shots; ++s) {
      if (f >= 1 || rng.uniform() < f)
        draws.push_back({rng.uniform(), s});
      else
        z[s] = rng.next() & all;
    }
    std::sort(draws.begin(), draws.end());
    // Inverse-CDF sampling in parallel: probability mass per chunk, then each chunk walks its own
    // share of the sorted uniforms.
    const std::size_t size = psi_.size(), chunks = std::min<std::size_t>(256, size);
    const auto begin = [&](std::size_t c) { return c * size / chunks; };
    std::vector<double> mass(chunks + 1, 0.0);
#pragma omp parallel for schedule(static)
    for (std::ptrdiff_t c = 0; c < static_cast<std::ptrdiff_t>(chunks); ++c)
      mass[c + 1] = detail::norm2(psi_.data() + begin(c), begin(c + 1) - begin(c));
    for (std::size_t c = 0; c < chunks; ++c) mass[c + 1] += mass[c];
    const double total = mass[chunks];
    // first[c]: the first draw of chunk c; draws that rounding puts at or past the total mass
    // fall to the last chunk, whose walk stops at its last amplitude.
    std::vector<std::size_t> first(chunks + 1, draws.size());
    for (std::size_t c = 0, d = 0; c < chunks; ++c) {
      first[c] = d;
      while (d < draws.size() && draws[d].first * total < mass[c + 1]) ++d;
    }
#pragma omp parallel for schedule(dynamic)
    for (std::ptrdiff_t c = 0; c < static_cast<std::ptrdiff_t>(chunks); ++c) {
      double acc = mass[c];
      std::size_t at = begin(c);
      const std::size_t end = begin(c + 1);
      for (std::size_t d = first[c]; d < first[c + 1]; ++d) {
        const double target = draws[d].first * total;
        while (at + 1 < end) {
          const double p = std::norm(psi_.data()[at]);
          if (acc + p > target) break;
          acc += p;
          ++at;
        }
        z[draws[d].second] = bits_of(at);
      }
    }
    std::vector<Bits> out(shots, Bits(n_));
    for (std::size_t s = 0; s < shots; ++s)
      for (int i = 0; i < n_; ++i) {
        uint8_t bit = (z[s] >> i) & 1;
        if (o_.noise.readout > 0 && rng.uniform() < o_.noise.readout) bit ^= 1;
        out[s][i] = bit;
      }
    return out;
  }

  std::vector<std::complex<double>> amplitudes() const override {
    if (n_ > 30 || std::ldexp(16.0, n_) > o_.memory_budget_bytes)
      throw Error("quantum: the amplitudes of all 2^" + std::to_string(n_) + " states do not fit the memory budget");
    std::vector<std::complex<double>> out(std::size_t{1} << n_);
    for (std::size_t i = 0; i < psi_.size(); ++i) out[bits_of(i)] = psi_.data()[i];
    return out;
  }

  double valid_probability(const std::vector<std::vector<uint32_t>>& groups) const override {
    std::vector<uint64_t> masks;
    for (const auto& g : groups) masks.push_back(group_mask(g));
    double p = 0;
    for (std::size_t i = 0; i < psi_.size(); ++i) {
      const uint64_t z = bits_of(i);
      bool ok = true;
      for (uint64_t m : masks) ok = ok && std::popcount(z & m) == 1;
      if (ok) p += std::norm(psi_.data()[i]);
    }
    return p;
  }

 protected:
  // `subspace`: the dim states are the one-hot ones (the budget's refusal says so), not all 2^n.
  StateCircuit(const Qubo& q, const CircuitOptions& o, std::size_t dim, bool subspace)
      : Circuit(q, o), psi_(fits(dim, subspace)), lam_(dim) {}
  virtual uint64_t bits_of(std::size_t index) const { return index; }
  // Prepares the ideal state ψ(θ) in psi_.
  virtual void forward(std::span<const double> theta) = 0;
  double noisy(double ideal) const { return fidelity() * ideal + (1 - fidelity()) * mean_diag_; }
  double expect() const { return detail::expect_diag(psi_.data(), diag_.data(), diag_.size()); }

  StateBuffer<T> psi_, lam_;

 private:
  // Checked before a byte is allocated: against the budget, and against what the machine has free
  // now (an allocation beyond it would swap or be killed, not fail cleanly).
  std::size_t fits(std::size_t dim, bool subspace) const {
    const double need = static_cast<double>(dim) * (2 * sizeof(Cx<T>) + sizeof(double));
    if (const double free = available_memory(); need > 0.9 * free) {
      char msg[320];
      std::snprintf(msg, sizeof msg, "quantum: n = %d qubits needs %.3g GiB of state vectors; this machine has %.3g GiB available",
                    n_, need / (1ull << 30), free / (1ull << 30));
      throw Error(msg);
    }
    if (need > o_.memory_budget_bytes) {
      char msg[320];
      std::snprintf(msg, sizeof msg,
                    "quantum: n = %d qubits needs %.3g GiB (two %s state vectors%s and the diagonal of H_C); the memory "
                    "budget is %.3g GiB",
                    n_, need / (1ull << 30), sizeof(T) == 8 ? "complex<double>" : "complex<float>",
                    subspace ? (" over the " + std::to_string(dim) + " one-hot states").c_str() : "",
                    o_.memory_budget_bytes / (1ull << 30));
      throw Error(msg);
    }
    return dim;
  }
};

// out[m] = first · Π_{j ∈ m} e[j] for every subset m of the factors: one product per entry.
void subset_products(std::span<const std::complex<double>> e, std::complex<double> first, std::span<std::complex<double>> out) {
  out[0] = first;
  for (std::size_t j = 0; j < e.size(); ++j)
    for (std::size_t m = 0; m < (std::size_t{1} << j); ++m) out[m | (std::size_t{1} << j)] = out[m] * e[j];
}

// The diagonal phase e^{−iγ f(z)} · scale, applied in place, from the factorisation of qubo/enumerate.h:
// f = base(H) + Qlow[m] + Llo[m & 255] + Lhi[m >> 8], so each factor is a product of three table
// entries: no transcendental function per amplitude.
template <class T>
class PhaseTables final : public detail::PhaseFill<T> {
 public:
  PhaseTables(const LowHighSplit& s, const std::vector<double>& base, const std::vector<double>& c)
      : s_(s), base_(base), c_(c), k_(s.low_bits()), lo_(std::min(k_, 8)), hi_(k_ - lo_) {}

  void set(double gamma, std::complex<double> scale) {
    const std::size_t nq = s_.qlow().size();
    pq_.resize(nq);
#pragma omp parallel for schedule(static)
    for (std::ptrdiff_t m = 0; m < static_cast<std::ptrdiff_t>(nq); ++m)
      pq_[m] = Cx<T>(std::polar(1.0, -gamma * s_.qlow()[m]) * scale);
    const std::size_t highs = s_.high_states(), nlo = std::size_t{1} << lo_, nhi = std::size_t{1} << hi_;
    plo_.resize(highs * nlo);
    phi_.resize(highs * nhi);
#pragma omp parallel
    {
      // e^{−iγ(base + Σ_{j∈m} c_j)} as products of e^{−iγ base} and the k factors e^{−iγ c_j}:
      // k + 1 sin/cos pairs per high state instead of 2^lo + 2^hi; each entry is a product of at
      // most 9 factors, so within a few ulps of its exact value.
      std::vector<std::complex<double>> e(k_), lo(nlo), hi(nhi);
#pragma omp for schedule(static)
      for (std::ptrdiff_t h = 0; h < static_cast<std::ptrdiff_t>(highs); ++h) {
        for (int j = 0; j < k_; ++j) e[j] = std::polar(1.0, -gamma * c_[h * k_ + j]);
        subset_products(std::span(e).first(lo_), 1.0, lo);
        subset_products(std::span(e).subspan(lo_), std::polar(1.0, -gamma * base_[h]), hi);
        for (std::size_t m = 0; m < nlo; ++m) plo_[h * nlo + m] = Cx<T>(lo[m]);
        for (std::size_t m = 0; m < nhi; ++m) phi_[h * nhi + m] = Cx<T>(hi[m]);
      }
    }
  }

  void apply(uint64_t start, std::size_t len, Cx<T>* v) const override {
    const uint64_t kmask = (uint64_t{1} << k_) - 1, lomask = (uint64_t{1} << lo_) - 1;
    for (std::size_t i = 0; i < len;) {
      const uint64_t h = (start + i) >> k_, m = (start + i) & kmask;  // a block may span several H
      const Cx<T>* lo = plo_.data() + (h << lo_);
      const Cx<T> row = phi_.data()[(h << hi_) + (m >> lo_)];
      const std::size_t run = std::min<std::size_t>(len - i, (lomask + 1) - (m & lomask));
      const T* a = reinterpret_cast<const T*>(pq_.data() + m);
      const T* b = reinterpret_cast<const T*>(lo + (m & lomask));
      T* o = reinterpret_cast<T*>(v + i);
      const T rr = row.real(), ri = row.imag();
#pragma omp simd
      for (std::size_t j = 0; j < run; ++j) {
        const T xr = a[2 * j] * b[2 * j] - a[2 * j + 1] * b[2 * j + 1];
        const T xi = a[2 * j] * b[2 * j + 1] + a[2 * j + 1] * b[2 * j];
        const T fr = xr * rr - xi * ri, fi = xr * ri + xi * rr;
        const T vr = o[2 * j], vi = o[2 * j + 1];
        o[2 * j] = vr * fr - vi * fi;
        o[2 * j + 1] = vr * fi + vi * fr;
      }
      i += run;
    }
  }

 private:
  const LowHighSplit& s_;
  const std::vector<double>& base_;
  const std::vector<double>& c_;
  int k_, lo_, hi_;
  std::vector<Cx<T>> pq_, plo_, phi_;
};

// QAOA with the X mixer over all 2^n basis states.
template <class T>
class Qaoa final : public StateCircuit<T> {
  using B = StateCircuit<T>;
  using B::diag_;
  using B::lam_;
  using B::n_;
  using B::o_;
  using B::psi_;

 public:
  // k low bits for the phase tables: each layer costs 2^k + 2^(n−k)·(k + 1) sin/cos pairs and
  // 2^(n−k)·(2^lo + 2^hi) complex products, so small n wants k well below 16. Above n = 20, k = 16
  // (k = 15 measured twice as slow at n = 21, when the tables still cost 2^lo + 2^hi sin/cos pairs
  // per high state; not measured again since).
  Qaoa(const Qubo& q, int p, const CircuitOptions& o)
      : B(q, o, std::size_t{1} << q.size(), false), p_(p),
        split_(q, q.size() > 20 ? 16 : std::max(1, static_cast<int>(q.size()) - 6)), phase_(split_, base_, c_) {
    if (p < 1) throw Error("qaoa: depth p must be >= 1");
    this->layers_ = p;
    diag_ = all_energies(q);
    const int k = split_.low_bits();
    base_.resize(split_.high_states());
    c_.resize(split_.high_states() * k);
    split_.walk(0, split_.high_states(), [&](uint64_t h, double base, std::span<const double> c) {
      base_[h] = base;
      std::copy(c.begin(), c.end(), c_.begin() + h * k);
    });
  }

  std::size_t num_params() const override { return 2 * static_cast<std::size_t>(p_); }

  double expectation_and_gradient(std::span<const double> theta, std::span<double> grad) override {
    check(theta);
    if (grad.size() != num_params()) throw Error("qaoa: gradient has the wrong size");
    // Keep each layer's state between its phase and its mixer when the memory budget allows: the
    // backward sweep then only runs λ back. Both gradients of layer l are taken there, in one
    // sweep: e^{−iβΣX} commutes with ΣX, so Im⟨λ|ΣX|ψ⟩ is the same before and after the mixer.
    const bool keep = circuit_bytes(n_, o_.precision, p_) <= o_.memory_budget_bytes;
    forward(theta, keep);
    const double e = detail::mul_diag(lam_.data(), psi_.data(), diag_.data(), diag_.size());
    for (int l = p_ - 1; l >= 0; --l) {
      // λ (and ψ without checkpoints) back through layer l + 1's phase and layer l's mixer, in
      // one pass each.
      const auto f = detail::x_factors(-theta[p_ + l]);
      const double gn = std::pow(f.g, n_);
      if (l < p_ - 1) phase_.set(-theta[l + 1], gn);
      const detail::PhaseFill<T>* ph = l < p_ - 1 ? &phase_ : nullptr;
      const Cx<T> scale = ph ? Cx<T>(1) : Cx<T>(gn);
      detail::apply_phase_and_x_mixer<T>(lam_.data(), n_, ph, scale, T(f.alpha), T(f.delta));
      if (!keep) detail::apply_phase_and_x_mixer<T>(psi_.data(), n_, ph, scale, T(f.alpha), T(f.delta));
      const detail::ImTerms t = detail::im_terms(lam_.data(), keep ? ckpt_[l].data() : psi_.data(), diag_.data(), n_);
      const double unscale = keep ? 1 / ckpt_scale_[l] : 1;
      grad[p_ + l] = 2 * t.x * unscale;
      grad[l] = 2 * t.diag * unscale;
    }
    const double f = this->fidelity();
    for (double& g : grad) g *= f;
    return this->noisy(e);
  }

 private:
  void check(std::span<const double> theta) const {
    if (theta.size() != num_params())
      throw Error("qaoa: expected " + std::to_string(num_params()) + " parameters (γ_1..γ_p, β_1..β_p), got " + std::to_string(theta.size()));
  }

  void forward(std::span<const double> theta) override { forward(theta, false); }

  // Prepares ψ(θ) from |+⟩^n; with keep, ckpt_[l] holds layer l's state between its phase and its
  // mixer, e^{−iγ_l H_C} ψ_{l−1}.
  void forward(std::span<const double> theta, bool keep) {
    check(theta);
    const T a = static_cast<T>(std::pow(2.0, -0.5 * n_));
    Cx<T>* v = psi_.data();
#pragma omp parallel for schedule(static)
    for (std::ptrdiff_t z = 0; z < static_cast<std::ptrdiff_t>(psi_.size()); ++z) v[z] = a;
    if (keep)
      while (static_cast<int>(ckpt_.size()) < p_) ckpt_.emplace_back(psi_.size());
    for (int l = 0; l < p_; ++l) {
      const auto f = detail::x_factors(theta[p_ + l]);
      // The mixer's factor g^n rides in the phase, so the saved state is g^n times the true one.
      ckpt_scale_[l] = std::pow(f.g, n_);
      phase_.set(theta[l], ckpt_scale_[l]);
      detail::apply_phase_and_x_mixer<T>(psi_.data(), n_, &phase_, 1, T(f.alpha), T(f.delta),
                                         keep ? ckpt_[l].data() : nullptr);
    }
  }

  int p_;
  LowHighSplit split_;
  std::vector<double> base_, c_;
  PhaseTables<T> phase_;
  std::vector<detail::StateBuffer<T>> ckpt_;
  std::vector<double> ckpt_scale_ = std::vector<double>(p_);  // ckpt_[l] is ckpt_scale_[l] × the state
};

// QAOA with the XY mixer, simulated on the one-hot subspace only: Π_j m_j · 2^f states for groups
// of sizes m_j and f free qubits, instead of 2^n (NAS-Bench-201's 6 groups of 5: 15,625 states
// instead of 2^30). Exact, because the W start states and every XY ring gate keep each group at
// exactly one 1. Index = free bits (low f bits, free qubits in ascending order) + 2^f · (mixed-radix
// digits: group j's position, group 0 lowest).
template <class T>
class OneHotQaoa final : public StateCircuit<T> {
  using B = StateCircuit<T>;
  using B::diag_;
  using B::lam_;
  using B::n_;
  using B::o_;
  using B::psi_;

 public:
  OneHotQaoa(const Qubo& q, int p, const CircuitOptions& o, const std::vector<uint32_t>& free)
      : B(q, o, dimension(o.groups, free.size()), true),
        p_(p), free_(free) {
    if (p < 1) throw Error("qaoa: depth p must be >= 1");
    this->layers_ = p;
    std::size_t stride = std::size_t{1} << free_.size();
    for (const auto& g : o.groups) {
      strides_.push_back(stride);
      stride *= g.size();
    }
    // The mixer's gates in the order the QASM export writes them: each group's ring edges, then
    // e^{−iβX} on every free qubit.
    for (const auto& [a, b] : xy_ring_edges(o.groups)) {
      const auto [ga, pa] = place(a);
      const auto [gb, pb] = place(b);
      edges_.push_back({strides_[ga], o.groups[ga].size(), pa, pb});
    }
    diag_.resize(psi_.size());
    const std::size_t free_states = std::size_t{1} << free_.size(), assignments = psi_.size() / free_states;
#pragma omp parallel
    {
      Bits x(n_);
#pragma omp for schedule(static)
      for (std::ptrdiff_t g = 0; g < static_cast<std::ptrdiff_t>(assignments); ++g) {
        const std::size_t base = static_cast<std::size_t>(g) * free_states;
        const uint64_t z = bits_of(base);
        for (int i = 0; i < n_; ++i) x[i] = (z >> i) & 1;
        double e = q.energy(x);
        diag_[base] = e;
        // The free bits in Gray-code order: one flip, O(degree), per state.
        for (std::size_t k = 1; k < free_states; ++k) {
          const uint32_t v = free_[std::countr_zero(k)];
          e += q.flip_delta(x, v);
          x[v] ^= 1;
          diag_[base + (k ^ (k >> 1))] = e;
        }
      }
    }
  }

  std::size_t num_params() const override { return 2 * static_cast<std::size_t>(p_); }

  double expectation_and_gradient(std::span<const double> theta, std::span<double> grad) override {
    if (grad.size() != num_params()) throw Error("qaoa: gradient has the wrong size");
    forward(theta);
    const double e = detail::mul_diag(lam_.data(), psi_.data(), diag_.data(), diag_.size());
    for (int l = p_ - 1; l >= 0; --l) {
      const double beta = theta[p_ + l];
      double g = 0;
      for (std::size_t k = free_.size(); k-- > 0;) {
        g += 2 * im_pairs(std::size_t{1} << k, 2, 0, 1);
        mix_free(psi_.data(), k, -beta);
        mix_free(lam_.data(), k, -beta);
      }
      for (auto it = edges_.rbegin(); it != edges_.rend(); ++it) {
        g += 2 * im_pairs(it->stride, it->size, it->a, it->b);
        rotate(psi_.data(), *it, -beta);
        rotate(lam_.data(), *it, -beta);
      }
      grad[p_ + l] = g;
      grad[l] = 2 * detail::im_diag(lam_.data(), psi_.data(), diag_.data(), diag_.size());
      if (l > 0) {
        phase(psi_.data(), -theta[l]);
        phase(lam_.data(), -theta[l]);
      }
    }
    const double f = this->fidelity();
    for (double& x : grad) x *= f;
    return this->noisy(e);
  }

 private:
  struct Edge {
    std::size_t stride, size, a, b;  // group digit's stride and radix; the two positions it rotates
  };

  static std::size_t dimension(const std::vector<std::vector<uint32_t>>& groups, std::size_t free) {
    double d = std::ldexp(1.0, static_cast<int>(free));
    for (const auto& g : groups) d *= static_cast<double>(g.size());
    if (d > 1e15) throw Error("qaoa: the one-hot subspace has " + std::to_string(d) + " states: too many to simulate");
    return static_cast<std::size_t>(d);
  }

  std::pair<std::size_t, std::size_t> place(uint32_t qubit) const {
    for (std::size_t g = 0; g < o_.groups.size(); ++g)
      for (std::size_t i = 0; i < o_.groups[g].size(); ++i)
        if (o_.groups[g][i] == qubit) return {g, i};
    throw Error("qaoa: qubit " + std::to_string(qubit) + " is in no one-hot group");
  }

  uint64_t bits_of(std::size_t index) const override {
    uint64_t z = 0;
    for (std::size_t k = 0; k < free_.size(); ++k) z |= ((index >> k) & 1) << free_[k];
    std::size_t rest = index >> free_.size();
    for (const auto& g : o_.groups) {
      z |= uint64_t{1} << g[rest % g.size()];
      rest /= g.size();
    }
    return z;
  }

  // Im⟨λ|G|ψ⟩ for G = X on a free qubit or (XX + YY)/2 on a ring edge: both swap the states u, v
  // whose digit (stride, size) is a and b, the other digits equal, so the sum is over
  // Im(conj(λ_u) ψ_v + conj(λ_v) ψ_u). The pairs come in contiguous runs of `stride` states.
  double im_pairs(std::size_t stride, std::size_t size, std::size_t a, std::size_t b) const {
    const std::size_t span = stride * size, blocks = psi_.size() / span;
    const Cx<T>* l = lam_.data();
    const Cx<T>* p = psi_.data();
    double acc = 0;
#pragma omp parallel for schedule(static) reduction(+ : acc) if (psi_.size() > (1u << 14))
    for (std::ptrdiff_t blk = 0; blk < static_cast<std::ptrdiff_t>(blocks); ++blk)
      for (std::size_t i = 0; i < stride; ++i) {
        const std::size_t u = static_cast<std::size_t>(blk) * span + a * stride + i, v = u + (b - a) * stride;
        acc += static_cast<double>(std::imag(std::conj(l[u]) * p[v] + std::conj(l[v]) * p[u]));
      }
    return acc;
  }

  // (u, v) → (c u − i s v, c v − i s u): e^{−iβG} on every pair of the edge or free qubit.
  void swap_rotate(Cx<T>* w, std::size_t stride, std::size_t size, std::size_t a, std::size_t b, double beta) {
    const T c = static_cast<T>(std::cos(beta)), s = static_cast<T>(std::sin(beta));
    const std::size_t span = stride * size, blocks = psi_.size() / span;
#pragma omp parallel for schedule(static) if (psi_.size() > (1u << 14))
    for (std::ptrdiff_t blk = 0; blk < static_cast<std::ptrdiff_t>(blocks); ++blk) {
      Cx<T>* x = w + static_cast<std::size_t>(blk) * span + a * stride;
      Cx<T>* y = w + static_cast<std::size_t>(blk) * span + b * stride;
      for (std::size_t i = 0; i < stride; ++i) {
        const Cx<T> u = x[i], v = y[i];
        x[i] = {c * u.real() + s * v.imag(), c * u.imag() - s * v.real()};
        y[i] = {c * v.real() + s * u.imag(), c * v.imag() - s * u.real()};
      }
    }
  }
  void rotate(Cx<T>* w, const Edge& e, double beta) { swap_rotate(w, e.stride, e.size, e.a, e.b, beta); }
  void mix_free(Cx<T>* w, std::size_t k, double beta) { swap_rotate(w, std::size_t{1} << k, 2, 0, 1, beta); }

  void phase(Cx<T>* w, double gamma) {
#pragma omp parallel for schedule(static) if (psi_.size() > (1u << 14))
    for (std::ptrdiff_t i = 0; i < static_cast<std::ptrdiff_t>(psi_.size()); ++i) {
      const double a = -gamma * diag_[i];
      w[i] *= Cx<T>(static_cast<T>(std::cos(a)), static_cast<T>(std::sin(a)));
    }
  }

  // Prepares ψ(θ) from the W state of every group and |+⟩ on the free qubits: uniform over the
  // subspace.
  void forward(std::span<const double> theta) override {
    if (theta.size() != num_params())
      throw Error("qaoa: expected " + std::to_string(num_params()) + " parameters (γ_1..γ_p, β_1..β_p), got " + std::to_string(theta.size()));
    const T a = static_cast<T>(1 / std::sqrt(static_cast<double>(psi_.size())));
    std::fill(psi_.data(), psi_.data() + psi_.size(), Cx<T>(a));
    for (int l = 0; l < p_; ++l) {
      phase(psi_.data(), theta[l]);
      for (const Edge& e : edges_) rotate(psi_.data(), e, theta[p_ + l]);
      for (std::size_t k = 0; k < free_.size(); ++k) mix_free(psi_.data(), k, theta[p_ + l]);
    }
  }

  int p_;
  std::vector<uint32_t> free_;
  std::vector<std::size_t> strides_;
  std::vector<Edge> edges_;
};

template <class T>
class Vqe final : public StateCircuit<T> {
  using B = StateCircuit<T>;
  using B::diag_;
  using B::lam_;
  using B::n_;
  using B::psi_;

 public:
  Vqe(const Qubo& q, int layers, const CircuitOptions& o) : B(q, o, std::size_t{1} << q.size(), false), layers_n_(layers) {
    if (layers < 0) throw Error("vqe: layers must be >= 0");
    diag_ = all_energies(q);
    if (o.mixer != Mixer::x) throw Error("vqe: the hardware-efficient ansatz has no mixer option");
    this->layers_ = layers + 1;
  }

  std::size_t num_params() const override { return static_cast<std::size_t>(n_) * (layers_n_ + 1); }

  double expectation_and_gradient(std::span<const double> theta, std::span<double> grad) override {
    if (grad.size() != num_params()) throw Error("vqe: gradient has the wrong size");
    forward(theta);
    const double e = detail::mul_diag(lam_.data(), psi_.data(), diag_.data(), diag_.size());
    for (int l = layers_n_; l >= 0; --l) {
      for (int q = n_ - 1; q >= 0; --q) {
        const std::size_t i = static_cast<std::size_t>(l) * n_ + q;
        grad[i] = detail::im_y(lam_.data(), psi_.data(), n_, q);  // 2 Im⟨λ|Y/2|ψ⟩
        detail::apply_ry(psi_.data(), n_, q, -theta[i]);
        detail::apply_ry(lam_.data(), n_, q, -theta[i]);
      }
      if (l > 0) {
        detail::apply_cz_ladder(psi_.data(), n_);
        detail::apply_cz_ladder(lam_.data(), n_);
      }
    }
    const double f = this->fidelity();
    for (double& g : grad) g *= f;
    return this->noisy(e);
  }

 private:
  void forward(std::span<const double> theta) override {
    if (theta.size() != num_params())
      throw Error("vqe: expected " + std::to_string(num_params()) + " parameters (n × (layers + 1)), got " + std::to_string(theta.size()));
    Cx<T>* v = psi_.data();
    std::fill(v, v + psi_.size(), Cx<T>(0));
    v[0] = 1;
    for (int l = 0; l <= layers_n_; ++l) {
      if (l > 0) detail::apply_cz_ladder(v, n_);
      for (int q = 0; q < n_; ++q) detail::apply_ry(v, n_, q, theta[static_cast<std::size_t>(l) * n_ + q]);
    }
  }

  int layers_n_;
};

}  // namespace

std::unique_ptr<Circuit> make_qaoa(const Qubo& q, int p, const CircuitOptions& o) {
  if (o.mixer == Mixer::xy) {
    std::vector<bool> grouped(q.size(), false);
    for (const auto& g : o.groups)
      for (uint32_t v : g)
        if (v < q.size()) grouped[v] = true;
    std::vector<uint32_t> free;
    for (uint32_t v = 0; v < q.size(); ++v)
      if (!grouped[v]) free.push_back(v);
    if (o.precision == Precision::f32) return std::make_unique<OneHotQaoa<float>>(q, p, o, free);
    return std::make_unique<OneHotQaoa<double>>(q, p, o, free);
  }
  if (o.precision == Precision::f32) return std::make_unique<Qaoa<float>>(q, p, o);
  return std::make_unique<Qaoa<double>>(q, p, o);
}

std::unique_ptr<Circuit> make_vqe(const Qubo& q, int layers, const CircuitOptions& o) {
  if (o.precision == Precision::f32) return std::make_unique<Vqe<float>>(q, layers, o);
  return std::make_unique<Vqe<double>>(q, layers, o);
}

}  // namespace gng::quantum
