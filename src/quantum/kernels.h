#pragma once
// Internal to src/quantum: state-vector kernels, templated on the real type (float or double).
// Amplitude z has bit q = qubit q = QUBO variable x_q. Loops are written over interleaved re/im
// arrays so that GCC vectorises them; OpenMP splits the outer loops over threads.
#include <algorithm>
#include <complex>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace gng::quantum::detail {

template <class T>
using Cx = std::complex<T>;

// Zero-initialised, 2 MiB-aligned, transparent-huge-page advised buffer of `size` amplitudes.
template <class T>
class StateBuffer {
 public:
  StateBuffer() = default;
  explicit StateBuffer(std::size_t size);
  StateBuffer(const StateBuffer&) = delete;
  StateBuffer& operator=(const StateBuffer&) = delete;
  StateBuffer(StateBuffer&& o) noexcept : data_(o.data_), size_(o.size_) { o.data_ = nullptr, o.size_ = 0; }
  StateBuffer& operator=(StateBuffer&& o) noexcept;
  ~StateBuffer();
  Cx<T>* data() { return data_; }
  const Cx<T>* data() const { return data_; }
  std::size_t size() const { return size_; }
  std::span<Cx<T>> span() { return {data_, size_}; }
  std::span<const Cx<T>> span() const { return {data_, size_}; }

 private:
  Cx<T>* data_ = nullptr;
  std::size_t size_ = 0;
};

// Block size (in qubits) of the cache-blocked passes: 2^14 amplitudes = 256 KiB in double.
inline constexpr int kBlockBits = 14;

// The high qubits [bb, n) (2^q beyond a cache block) are done in place, three per pass: a pass
// over qubits q .. q + K − 1 streams the state once, 2^K rows at strides 2^q at a time, in chunks
// of kChunk amplitudes per row, each chunk's 2^K vectors at a position held in registers through
// all K butterfly levels. Each pass is a sequential stream per row, which the hardware prefetchers
// follow.
inline constexpr std::size_t kChunk = std::size_t{1} << 10;

// Calls f(K, q, row0) for every chunk of every pass, inside an OpenMP parallel region, one pass
// after the other (each `omp for` ends with a barrier); row0 is the index of the chunk's first
// amplitude in row 0 and the rows are row0 + k·2^q.
template <class F>
void high_passes(int n, int bb, F&& f) {
  for (int q = bb; q < n;) {
    const int K = std::min(3, n - q);
    const std::size_t s = std::size_t{1} << q, span = s << K, per = s / kChunk;
    const std::ptrdiff_t items = static_cast<std::ptrdiff_t>(((std::size_t{1} << n) / span) * per);
#pragma omp for schedule(static)
    for (std::ptrdiff_t it = 0; it < items; ++it) {
      const std::size_t i = static_cast<std::size_t>(it);
      f(K, q, (i / per) * span + (i % per) * kChunk);
    }
    q += K;
  }
}

// A diagonal phase applied during the low pass, one cache block at a time.
template <class T>
struct PhaseFill {
  // Multiplies v[0 .. len), the amplitudes start .. start + len, by their phase factors.
  virtual void apply(uint64_t start, std::size_t len, Cx<T>* v) const = 0;
  virtual ~PhaseFill() = default;
};

// Applies  Π_{q<n} (α I − i δ X_q) · diag(phase)  to psi, or  Π_{q<n} (α I − i δ X_q) · scale  when
// phase is null. Low qubits inside cache blocks, high qubits three per pass in place. With `save`
// (32-byte aligned: it is written with streaming stores), the state between the phase and the
// mixer is also written there (no extra read).
template <class T>
void apply_phase_and_x_mixer(Cx<T>* psi, int n, const PhaseFill<T>* phase, Cx<T> scale, T alpha, T delta,
                             Cx<T>* save = nullptr);

// exp(−iβX) = g (α I − i δ X): returns {α, δ, g}; α = 1 unless |cos β| < 0.3, |α|, |δ| ≤ 1/0.3.
struct XFactors {
  double alpha, delta, g;
};
XFactors x_factors(double beta);

// In one sweep over λ and ψ: Σ_q Im⟨λ|X_q|ψ⟩ over all n qubits, and Im Σ conj(λ_z) d_z ψ_z.
struct ImTerms {
  double x = 0, diag = 0;
};
template <class T>
ImTerms im_terms(const Cx<T>* lambda, const Cx<T>* psi, const double* d, int n);

// Im Σ conj(λ_z) d_z ψ_z  and  Σ |ψ_z|² d_z.
template <class T>
double im_diag(const Cx<T>* lambda, const Cx<T>* psi, const double* d, std::size_t len);
template <class T>
double expect_diag(const Cx<T>* psi, const double* d, std::size_t len);

// λ ← diag(d) ψ; returns ⟨ψ|diag(d)|ψ⟩ from the same pass.
template <class T>
double mul_diag(Cx<T>* out, const Cx<T>* psi, const double* d, std::size_t len);

// RY(θ) = e^{−iθY/2} on qubit q;  Im⟨λ|Y_q|ψ⟩;  CZ on (q, q+1) for every q < n−1.
template <class T>
void apply_ry(Cx<T>* psi, int n, int q, double theta);
template <class T>
double im_y(const Cx<T>* lambda, const Cx<T>* psi, int n, int q);
template <class T>
void apply_cz_ladder(Cx<T>* psi, int n);

template <class T>
double norm2(const Cx<T>* psi, std::size_t len);

}  // namespace gng::quantum::detail
