#include "quantum/kernels.h"

#include <sys/mman.h>
#ifdef __AVX__
#include <immintrin.h>
#endif

#include <algorithm>
#include <bit>
#include <cassert>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>

namespace gng::quantum::detail {

namespace {

constexpr std::size_t kAlign = std::size_t{2} << 20;

// z with a zero bit inserted at position q: the index of the q-bit-0 partner of pair r.
inline uint64_t insert_zero(uint64_t r, int q) { return ((r >> q) << (q + 1)) | (r & ((uint64_t{1} << q) - 1)); }

// The widest vectors the target has (512-bit with AVX-512, else 256-bit: AVX2 with -march=native,
// plain SSE or scalar code elsewhere), through GCC's vector extensions. V holds C complex numbers,
// re/im interleaved; the lowest Q = log2 C qubits pair amplitudes inside one vector. On the Zen 4
// here 512-bit vectors took a block's butterflies from 0.13 to 0.11 ns per amplitude and qubit.
#ifdef __AVX512F__
inline constexpr int kVectorBytes = 64;
#else
inline constexpr int kVectorBytes = 32;
#endif

template <class T>
struct Simd {
  using I = std::conditional_t<sizeof(T) == 8, long long, int>;
  typedef T V __attribute__((vector_size(kVectorBytes)));
  typedef I M __attribute__((vector_size(kVectorBytes)));
  static constexpr int C = kVectorBytes / (2 * sizeof(T));
  static constexpr int Q = std::countr_zero(static_cast<unsigned>(C));
  static V swap(V v) { return permute<1>(v); }  // (r, i) → (i, r)
  // Qubit q < Q: each amplitude's partner in its vector, as it is and with re and im swapped.
  template <int q>
  static V partner(V v) {
    return permute<2 << q>(v);
  }
  template <int q>
  static V partner_swapped(V v) {
    return permute<1 | (2 << q)>(v);
  }
  static V alt(T d) { return lanes([d](int i) { return i % 2 ? -d : d; }); }
  static V splat(T a) { return lanes([a](int) { return a; }); }

 private:
  template <int X>
  static V permute(V v) {
    return [v]<std::size_t... L>(std::index_sequence<L...>) {
      return __builtin_shuffle(v, M{static_cast<I>(L ^ X)...});
    }(std::make_index_sequence<2 * C>());
  }
  template <class F>
  static V lanes(F f) {
    return [f]<std::size_t... L>(std::index_sequence<L...>) {
      return V{f(static_cast<int>(L))...};
    }(std::make_index_sequence<2 * C>());
  }
};

// Calls f.template operator()<q>() for the in-vector qubit q < Simd<T>::Q.
template <class T, class F>
void with_inside(int q, F&& f) {
  static_assert(Simd<T>::Q <= 3, "at most 8 complex numbers per vector");
  if (q == 0)
    f.template operator()<0>();
  else if constexpr (Simd<T>::Q > 1) {
    if (q == 1)
      f.template operator()<1>();
    else if constexpr (Simd<T>::Q > 2)
      f.template operator()<2>();
  }
}

// Vector load/store with no alignment assumed.
template <class V, class T>
inline V vload(const T* p) {
  V v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
template <class V, class T>
inline void vstore(T* p, V v) {
  __builtin_memcpy(p, &v, sizeof v);
}

// On a pair (x, y): x' = α x − i δ y, y' = α y − i δ x; with D = (δ, −δ, …), −iδy = D·swap(y).
// With α = 1 (the usual case, see x_factors) each output is one permute and one FMA.
template <class T, class V = typename Simd<T>::V>
inline void x_pair(V& x, V& y, V a, V d, bool unit) {
  if (unit) {
    const V nx = x + d * Simd<T>::swap(y);
    y = y + d * Simd<T>::swap(x);
    x = nx;
  } else {
    const V nx = a * x + d * Simd<T>::swap(y);
    y = a * y + d * Simd<T>::swap(x);
    x = nx;
  }
}

// Π (α − iδX_q) for one qubit q whose pairs lie inside one vector (q < Q).
template <class T>
void x_pass_small(T* r, std::size_t len, int q, T a, T d) {
  using S = Simd<T>;
  using V = typename S::V;
  const V av = S::splat(a), dv = S::alt(d);
  with_inside<T>(q, [&]<int Q>() {
    for (std::size_t k = 0; k < len; k += S::C) {
      T* p = r + 2 * k;
      const V v = vload<V>(p);
      vstore(p, av * v + dv * S::template partner_swapped<Q>(v));
    }
  });
}

// Π (α − iδX_q) for the K qubits q .. q + K − 1 (2^q = s >= C) on `count` amplitudes of each of
// the 2^K rows v0 + k·s: each position's 2^K vectors stay in registers through all K levels.
template <class T, bool Unit, int K>
void x_rows(T* v0, std::size_t s, std::size_t count, T a, T d) {
  using S = Simd<T>;
  using V = typename S::V;
  constexpr int R = 1 << K;
  const V av = S::splat(a), dv = S::alt(d);
  for (std::size_t i = 0; i < 2 * count; i += 2 * S::C) {
    V x[R];
    for (int k = 0; k < R; ++k) x[k] = vload<V>(v0 + 2 * s * k + i);
    for (int j = 0; j < K; ++j)
      for (int k = 0; k < R; ++k)
        if (!(k & (1 << j))) x_pair<T>(x[k], x[k | (1 << j)], av, dv, Unit);
    for (int k = 0; k < R; ++k) vstore(v0 + 2 * s * k + i, x[k]);
  }
}

template <class T, int K>
void x_rows(T* v0, std::size_t s, std::size_t count, T a, T d) {
  if (a == T(1))
    x_rows<T, true, K>(v0, s, count, a, d);
  else
    x_rows<T, false, K>(v0, s, count, a, d);
}

// Qubits q .. q + K − 1 (2^q >= C) of v[0 .. len), every block of 2^K rows in turn.
template <class T, int K>
void x_radix(T* r, std::size_t len, int q, T a, T d) {
  const std::size_t s = std::size_t{1} << q;
  for (std::size_t base = 0; base < len; base += s << K) x_rows<T, K>(r + 2 * base, s, s, a, d);
}

// Calls f.template operator()<K>() for K = 1, 2 or 3 .
template <class F>
void with_radix(int K, F&& f) {
  if (K == 3)
    f.template operator()<3>();
  else if (K == 2)
    f.template operator()<2>();
  else
    f.template operator()<1>();
}

// The lowest kLowQubits<T> qubits (the Q inside a vector and three across vectors: 8 C
// amplitudes) of every run of 8 consecutive vectors, all held in registers.
template <class T>
constexpr int kLowQubits = Simd<T>::Q + 3;

// The passes over a block's qubits [0, bits), for the mixer and the gradient's reductions alike:
// the lowest kLowQubits<T> together (low()), or, in a block narrower than that, the in-vector
// qubits one by one (small(q)); then three at a time (radix.template operator()<K>(q)). Radix 8
// instead of 4 took a block's 14 qubits from 0.18 to 0.13–0.14 ns per amplitude and qubit (one
// core, block in L2, 256-bit vectors).
template <class T, class Low, class Small, class Radix>
void block_passes(int bits, Low&& low, Small&& small, Radix&& radix) {
  int q = 0;
  if (bits >= kLowQubits<T>) {
    low();
    q = kLowQubits<T>;
  }
  for (; q < bits && q < Simd<T>::Q; ++q) small(q);
  for (int K; q < bits; q += K) {
    K = std::min(3, bits - q);
    with_radix(K, [&]<int R>() { radix.template operator()<R>(q); });
  }
}

template <class T, bool Unit>
void x_low(T* r, std::size_t len, T a, T d) {
  using S = Simd<T>;
  using V = typename S::V;
  const V av = S::splat(a), dv = S::alt(d);
  for (std::size_t k = 0; k < len; k += 8 * S::C) {
    V x[8];
    for (int j = 0; j < 8; ++j) x[j] = vload<V>(r + 2 * (k + j * S::C));
    for (int j = 0; j < 8; ++j)
      [&]<int... Q>(std::integer_sequence<int, Q...>) {
        ((x[j] = (Unit ? x[j] : av * x[j]) + dv * S::template partner_swapped<Q>(x[j])), ...);
      }(std::make_integer_sequence<int, S::Q>());
    for (int l = 0; l < 3; ++l)
      for (int j = 0; j < 8; ++j)
        if (!(j & (1 << l))) x_pair<T>(x[j], x[j | (1 << l)], av, dv, Unit);
    for (int j = 0; j < 8; ++j) vstore(r + 2 * (k + j * S::C), x[j]);
  }
}

// Qubits [0, bits) of v[0 .. 2^bits).
template <class T>
void x_block(T* r, int bits, T a, T d) {
  const std::size_t len = std::size_t{1} << bits;
  block_passes<T>(
      bits, [&] { a == T(1) ? x_low<T, true>(r, len, a, d) : x_low<T, false>(r, len, a, d); },
      [&](int q) { x_pass_small(r, len, q, a, d); }, [&]<int K>(int q) { x_radix<T, K>(r, len, q, a, d); });
}

// Σ of the even lanes minus Σ of the odd lanes (the real minus the imaginary slots).
template <class T>
double even_minus_odd(typename Simd<T>::V acc) {
  double out = 0;
  for (int k = 0; k < 2 * Simd<T>::C; ++k) out += (k % 2 ? -1.0 : 1.0) * static_cast<double>(acc[k]);
  return out;
}

// Σ of vectors whose even minus odd lanes are wanted (the Im⟨λ|·|ψ⟩ terms), in double: with
// complex<float> states, partial sums of 16 vectors are folded into it, so that the rounding of a
// gradient term does not grow with the 2^14 amplitudes of a block.
template <class T>
class ImSum {
 public:
  using V = typename Simd<T>::V;
  void add(V v) {
    acc_ += v;
    if constexpr (std::is_same_v<T, float>)
      if (++k_ == 16) flush();
  }
  double value() {
    flush();
    return total_;
  }

 private:
  void flush() {
    total_ += even_minus_odd<T>(acc_);
    acc_ = V{};
    k_ = 0;
  }
  V acc_{};
  double total_ = 0;
  int k_ = 0;
};

// A copy that only the backward sweep reads again: streaming stores write it without reading the
// lines in first or evicting the working set (7 % off a p = 3 gradient at n = 20). dst must be
// 32-byte aligned (a state buffer at a block boundary); an sfence orders the stores before the
// pass ends.
template <class T>
inline void save_run(Cx<T>* __restrict dst, const Cx<T>* __restrict src, std::size_t run) {
#ifdef __AVX__
  assert(reinterpret_cast<std::uintptr_t>(dst) % 32 == 0);
  const std::size_t bytes = run * sizeof(Cx<T>), whole = bytes / 32 * 32;
  const char* s = reinterpret_cast<const char*>(src);
  char* d = reinterpret_cast<char*>(dst);
  for (std::size_t i = 0; i < whole; i += 32)
    _mm256_stream_pd(reinterpret_cast<double*>(d + i), _mm256_loadu_pd(reinterpret_cast<const double*>(s + i)));
  std::memcpy(d + whole, s + whole, bytes - whole);
  _mm_sfence();
#else
  std::memcpy(dst, src, run * sizeof(Cx<T>));
#endif
}

// Im⟨λ|X_q|ψ⟩ summed over the pairs (x, y) of qubit q is Σ Im(conj(λ_x) ψ_y) + Im(conj(λ_y) ψ_x),
// and Im(conj(a) b) = a_r b_i − a_i b_r: the even minus the odd lanes of a · swap(b).

// One qubit q whose pairs lie inside one vector (q < Q), over [0, len).
template <class T>
void im_x_small(const T* l, const T* p, std::size_t len, int q, ImSum<T>& acc) {
  using S = Simd<T>;
  using V = typename S::V;
  with_inside<T>(q, [&]<int Q>() {
    for (std::size_t k = 0; k < len; k += S::C)
      acc.add(vload<V>(l + 2 * k) * S::template partner_swapped<Q>(vload<V>(p + 2 * k)));
  });
}

// The K qubits q .. q + K − 1 (2^q = s >= C) on `count` amplitudes of each of the 2^K rows l0 + k·s
// and p0 + k·s: λ's row k meets ψ's rows k ^ 2^j, j < K.
template <class T, int K>
[[gnu::always_inline]] inline void im_x_rows(const T* l0, const T* p0, std::size_t s, std::size_t count, ImSum<T>& acc) {
  using S = Simd<T>;
  using V = typename S::V;
  constexpr int R = 1 << K;
  for (std::size_t i = 0; i < 2 * count; i += 2 * S::C) {
    V y[R];
    for (int k = 0; k < R; ++k) y[k] = vload<V>(p0 + 2 * s * k + i);
    if constexpr (K == 2) {
      // λ's rows 0 and 3 both meet ψ's rows 1 and 2, λ's rows 1 and 2 both meet ψ's 0 and 3.
      const auto l = [&](int k) { return vload<V>(l0 + 2 * s * k + i); };
      acc.add((l(0) + l(3)) * S::swap(y[1] + y[2]) + (l(1) + l(2)) * S::swap(y[0] + y[3]));
    } else {
      for (int k = 0; k < R; ++k) {
        V nb = y[k ^ 1];
        for (int j = 1; j < K; ++j) nb += y[k ^ (1 << j)];
        acc.add(vload<V>(l0 + 2 * s * k + i) * S::swap(nb));
      }
    }
  }
}

// The lowest kLowQubits<T> qubits' terms over [0, len), 8 consecutive vectors at a time: λ's
// vector k meets ψ's in-vector partners of vector k and ψ's vectors k ^ 1, k ^ 2, k ^ 4.
template <class T>
void im_low(const T* l, const T* p, std::size_t len, ImSum<T>& acc) {
  using S = Simd<T>;
  using V = typename S::V;
  for (std::size_t k = 0; k < len; k += 8 * S::C) {
    V y[8];
    for (int j = 0; j < 8; ++j) y[j] = vload<V>(p + 2 * (k + j * S::C));
    for (int j = 0; j < 8; ++j) {
      V nb = y[j ^ 1] + y[j ^ 2] + y[j ^ 4];
      [&]<int... Q>(std::integer_sequence<int, Q...>) {
        ((nb += S::template partner<Q>(y[j])), ...);
      }(std::make_integer_sequence<int, S::Q>());
      acc.add(vload<V>(l + 2 * (k + j * S::C)) * S::swap(nb));
    }
  }
}

// Σ_{q < bits} of Im⟨λ|X_q|ψ⟩ over [0, 2^bits).
template <class T>
double im_x_block(const T* l, const T* p, int bits) {
  const std::size_t len = std::size_t{1} << bits;
  ImSum<T> acc;
  block_passes<T>(
      bits, [&] { im_low(l, p, len, acc); }, [&](int q) { im_x_small(l, p, len, q, acc); },
      [&]<int K>(int q) {
        const std::size_t s = std::size_t{1} << q;
        for (std::size_t base = 0; base < len; base += s << K) im_x_rows<T, K>(l + 2 * base, p + 2 * base, s, s, acc);
      });
  return acc.value();
}

template <class T>
inline Cx<T> cmul(Cx<T> a, Cx<T> b) {
  return {a.real() * b.real() - a.imag() * b.imag(), a.real() * b.imag() + a.imag() * b.real()};
}

}  // namespace

template <class T>
StateBuffer<T>::StateBuffer(std::size_t size) : size_(size) {
  // Zeroed up to a whole vector: a state of fewer amplitudes than a vector holds (n < Q) is loaded
  // and stored whole, and the lanes past its end must stay zero for the reductions.
  const std::size_t padded = std::max<std::size_t>(size_, Simd<T>::C);
  const std::size_t bytes = ((padded * sizeof(Cx<T>) + kAlign - 1) / kAlign) * kAlign;
  data_ = static_cast<Cx<T>*>(std::aligned_alloc(kAlign, bytes));
  if (!data_) throw std::bad_alloc();
  madvise(data_, bytes, MADV_HUGEPAGE);
  T* r = reinterpret_cast<T*>(data_);
  const std::ptrdiff_t len = static_cast<std::ptrdiff_t>(2 * padded);
#pragma omp parallel for schedule(static)
  for (std::ptrdiff_t i = 0; i < len; ++i) r[i] = 0;  // first touch by the threads that use it
}

template <class T>
StateBuffer<T>& StateBuffer<T>::operator=(StateBuffer&& o) noexcept {
  if (this != &o) {
    std::free(data_);
    data_ = o.data_;
    size_ = o.size_;
    o.data_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

template <class T>
StateBuffer<T>::~StateBuffer() {
  std::free(data_);
}

XFactors x_factors(double beta) {
  // α = 1 (the fast form) while |tan β| stays moderate, so that the unnormalised intermediate
  // amplitudes grow at most by (1 + tan²β)^{n/2} before the final factor g^n.
  const double c = std::cos(beta), s = std::sin(beta);
  if (std::abs(c) >= 0.3) return {1.0, s / c, c};
  return {c / s, 1.0, s};
}

// The high qubits go through high_passes (kernels.h), in place. Gathering the rows of more
// qubits into L2-sized tiles instead (two passes for any number of high qubits, plus the copies)
// was faster at n = 26 while the butterflies were radix 4 on 256-bit vectors. With radix 8 and
// 512-bit vectors in place won at every size measured on the 2-core Zen 4: mixer layer at n = 26
// 0.22–0.28 s against 0.27–0.30 s, a p = 1 gradient at n = 24 0.23–0.31 s against 0.30–0.33 s, at
// n = 27 2.6 s against 2.9 s. Built with 256-bit vectors (-mno-avx512f) a layer at n = 26 takes
// 0.37–0.45 s, against 0.30–0.37 s with the old tiles; from n = 24 to 25 the two are alike.
// Passes of four qubits (16 rows) were slower than of three.
template <class T>
void apply_phase_and_x_mixer(Cx<T>* psi, int n, const PhaseFill<T>* phase, Cx<T> scale, T alpha, T delta,
                             Cx<T>* save) {
  const int bb = std::min(n, kBlockBits);
  const std::size_t block = std::size_t{1} << bb;
  const std::ptrdiff_t blocks = std::ptrdiff_t{1} << (n - bb);
  const bool rescale = scale != Cx<T>(1, 0);
#pragma omp parallel for schedule(static)
  for (std::ptrdiff_t b = 0; b < blocks; ++b) {
    Cx<T>* v = psi + static_cast<std::size_t>(b) * block;
    if (phase)
      phase->apply(static_cast<uint64_t>(b) * block, block, v);
    else if (rescale)
      for (std::size_t i = 0; i < block; ++i) v[i] = cmul(v[i], scale);
    if (save) save_run(save + static_cast<std::size_t>(b) * block, v, block);
    x_block(reinterpret_cast<T*>(v), bb, alpha, delta);
  }
  if (n == bb) return;
  T* r = reinterpret_cast<T*>(psi);
#pragma omp parallel
  high_passes(n, bb, [&](int K, int q, std::size_t row0) {
    with_radix(K, [&]<int R>() { x_rows<T, R>(r + 2 * row0, std::size_t{1} << q, kChunk, alpha, delta); });
  });
}

template <class T>
ImTerms im_terms(const Cx<T>* lambda, const Cx<T>* psi, const double* d, int n) {
  const int bb = std::min(n, kBlockBits);
  const std::size_t block = std::size_t{1} << bb;
  const std::ptrdiff_t blocks = std::ptrdiff_t{1} << (n - bb);
  double acc = 0, diag = 0;
#pragma omp parallel for schedule(static) reduction(+ : acc, diag)
  for (std::ptrdiff_t b = 0; b < blocks; ++b) {
    const std::size_t at = static_cast<std::size_t>(b) * block;
    const T* l = reinterpret_cast<const T*>(lambda + at);
    const T* p = reinterpret_cast<const T*>(psi + at);
    acc += im_x_block(l, p, bb);
    double dg = 0;
#pragma omp simd reduction(+ : dg)
    for (std::size_t i = 0; i < block; ++i) dg += d[at + i] * static_cast<double>(l[2 * i] * p[2 * i + 1] - l[2 * i + 1] * p[2 * i]);
    diag += dg;
  }
  if (n == bb) return {acc, diag};
  const T* l = reinterpret_cast<const T*>(lambda);
  const T* p = reinterpret_cast<const T*>(psi);
#pragma omp parallel reduction(+ : acc)
  {
    ImSum<T> sum;
    high_passes(n, bb, [&](int K, int q, std::size_t row0) {
      with_radix(K, [&]<int R>() { im_x_rows<T, R>(l + 2 * row0, p + 2 * row0, std::size_t{1} << q, kChunk, sum); });
    });
    acc += sum.value();
  }
  return {acc, diag};
}

template <class T>
double im_diag(const Cx<T>* lambda, const Cx<T>* psi, const double* d, std::size_t len) {
  const T* l = reinterpret_cast<const T*>(lambda);
  const T* p = reinterpret_cast<const T*>(psi);
  double acc = 0;
  const std::ptrdiff_t m = static_cast<std::ptrdiff_t>(len);
#pragma omp parallel for simd schedule(static) reduction(+ : acc)
  for (std::ptrdiff_t i = 0; i < m; ++i) acc += d[i] * static_cast<double>(l[2 * i] * p[2 * i + 1] - l[2 * i + 1] * p[2 * i]);
  return acc;
}

template <class T>
double expect_diag(const Cx<T>* psi, const double* d, std::size_t len) {
  const T* p = reinterpret_cast<const T*>(psi);
  double acc = 0;
  const std::ptrdiff_t m = static_cast<std::ptrdiff_t>(len);
#pragma omp parallel for simd schedule(static) reduction(+ : acc)
  for (std::ptrdiff_t i = 0; i < m; ++i) acc += d[i] * static_cast<double>(p[2 * i] * p[2 * i] + p[2 * i + 1] * p[2 * i + 1]);
  return acc;
}

template <class T>
double mul_diag(Cx<T>* out, const Cx<T>* psi, const double* d, std::size_t len) {
  const T* p = reinterpret_cast<const T*>(psi);
  T* o = reinterpret_cast<T*>(out);
  double acc = 0;
  const std::ptrdiff_t m = static_cast<std::ptrdiff_t>(len);
#pragma omp parallel for simd schedule(static) reduction(+ : acc)
  for (std::ptrdiff_t i = 0; i < m; ++i) {
    const T re = p[2 * i], im = p[2 * i + 1], di = static_cast<T>(d[i]);
    o[2 * i] = re * di;
    o[2 * i + 1] = im * di;
    acc += d[i] * static_cast<double>(re * re + im * im);
  }
  return acc;
}

template <class T>
double norm2(const Cx<T>* psi, std::size_t len) {
  const T* p = reinterpret_cast<const T*>(psi);
  double acc = 0;
  const std::ptrdiff_t m = static_cast<std::ptrdiff_t>(2 * len);
#pragma omp parallel for simd schedule(static) reduction(+ : acc)
  for (std::ptrdiff_t i = 0; i < m; ++i) acc += static_cast<double>(p[i]) * p[i];
  return acc;
}

template <class T>
void apply_ry(Cx<T>* psi, int n, int q, double theta) {
  const T c = static_cast<T>(std::cos(theta / 2)), s = static_cast<T>(std::sin(theta / 2));
  const std::ptrdiff_t pairs = std::ptrdiff_t{1} << (n - 1);
#pragma omp parallel for schedule(static)
  for (std::ptrdiff_t r = 0; r < pairs; ++r) {
    const uint64_t z0 = insert_zero(static_cast<uint64_t>(r), q), z1 = z0 | (uint64_t{1} << q);
    const Cx<T> a = psi[z0], b = psi[z1];
    psi[z0] = c * a - s * b;
    psi[z1] = s * a + c * b;
  }
}

template <class T>
double im_y(const Cx<T>* lambda, const Cx<T>* psi, int n, int q) {
  const std::ptrdiff_t pairs = std::ptrdiff_t{1} << (n - 1);
  double acc = 0;
#pragma omp parallel for schedule(static) reduction(+ : acc)
  for (std::ptrdiff_t r = 0; r < pairs; ++r) {
    const uint64_t z0 = insert_zero(static_cast<uint64_t>(r), q), z1 = z0 | (uint64_t{1} << q);
    // (Yψ)_{z0} = −i ψ_{z1}, (Yψ)_{z1} = i ψ_{z0}.
    acc += std::real(std::conj(lambda[z1]) * psi[z0]) - std::real(std::conj(lambda[z0]) * psi[z1]);
  }
  return acc;
}

template <class T>
void apply_cz_ladder(Cx<T>* psi, int n) {
  if (n < 2) return;
  const uint64_t mask = (uint64_t{1} << (n - 1)) - 1;
  const std::ptrdiff_t len = std::ptrdiff_t{1} << n;
#pragma omp parallel for schedule(static)
  for (std::ptrdiff_t z = 0; z < len; ++z) {
    const uint64_t u = static_cast<uint64_t>(z);
    if (std::popcount(u & (u >> 1) & mask) & 1) psi[z] = -psi[z];
  }
}

#define GNG_INSTANTIATE(T)                                                                                      \
  template class StateBuffer<T>;                                                                                \
  template void apply_phase_and_x_mixer<T>(Cx<T>*, int, const PhaseFill<T>*, Cx<T>, T, T, Cx<T>*);              \
  template ImTerms im_terms<T>(const Cx<T>*, const Cx<T>*, const double*, int);                                \
  template double im_diag<T>(const Cx<T>*, const Cx<T>*, const double*, std::size_t);                           \
  template double expect_diag<T>(const Cx<T>*, const double*, std::size_t);                                     \
  template double mul_diag<T>(Cx<T>*, const Cx<T>*, const double*, std::size_t);                                \
  template double norm2<T>(const Cx<T>*, std::size_t);                                                          \
  template void apply_ry<T>(Cx<T>*, int, int, double);                                                          \
  template double im_y<T>(const Cx<T>*, const Cx<T>*, int, int);                                                \
  template void apply_cz_ladder<T>(Cx<T>*, int);
GNG_INSTANTIATE(float)
GNG_INSTANTIATE(double)

}  // namespace gng::quantum::detail
