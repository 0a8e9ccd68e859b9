#include "quantum/kernels.h"

#include <sys/mman.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

namespace gng::quantum::detail {

namespace {

constexpr std::size_t kAlign = std::size_t{2} << 20;

// z with a zero bit inserted at position q: the index of the q-bit-0 partner of pair r.
inline uint64_t insert_zero(uint64_t r, int q) { return ((r >> q) << (q + 1)) | (r & ((uint64_t{1} << q) - 1)); }

// Π over the pairs of qubit q in v[0 .. len): x' = α x − i δ y, y' = α y − i δ x.
template <class T>
void x_pass(T* r, std::size_t len, int q, T a, T d) {
  const std::size_t s = std::size_t{1} << q;
  if (q == 0) {
    for (std::size_t k = 0; k < len; k += 2) {
      T* x = r + 2 * k;
      const T xr = x[0], xi = x[1], yr = x[2], yi = x[3];
      x[0] = a * xr + d * yi;
      x[1] = a * xi - d * yr;
      x[2] = a * yr + d * xi;
      x[3] = a * yi - d * xr;
    }
    return;
  }
  for (std::size_t base = 0; base < len; base += 2 * s) {
    T* __restrict x = r + 2 * base;
    T* __restrict y = x + 2 * s;
#pragma omp simd
    for (std::size_t i = 0; i < s; ++i) {
      const T xr = x[2 * i], xi = x[2 * i + 1], yr = y[2 * i], yi = y[2 * i + 1];
      x[2 * i] = a * xr + d * yi;
      x[2 * i + 1] = a * xi - d * yr;
      y[2 * i] = a * yr + d * xi;
      y[2 * i + 1] = a * yi - d * xr;
    }
  }
}

// Σ over the pairs of qubit q in [0, len) of Im(conj(λ_x) ψ_y + conj(λ_y) ψ_x).
template <class T>
double im_x_pass(const T* l, const T* p, std::size_t len, int q) {
  const std::size_t s = std::size_t{1} << q;
  double acc = 0;
  for (std::size_t base = 0; base < len; base += 2 * s) {
    const T* lx = l + 2 * base;
    const T* ly = lx + 2 * s;
    const T* px = p + 2 * base;
    const T* py = px + 2 * s;
    T part = 0;
#pragma omp simd reduction(+ : part)
    for (std::size_t i = 0; i < s; ++i)
      part += lx[2 * i] * py[2 * i + 1] - lx[2 * i + 1] * py[2 * i] + ly[2 * i] * px[2 * i + 1] - ly[2 * i + 1] * px[2 * i];
    acc += part;
  }
  return acc;
}

template <class T>
inline Cx<T> cmul(Cx<T> a, Cx<T> b) {
  return {a.real() * b.real() - a.imag() * b.imag(), a.real() * b.imag() + a.imag() * b.real()};
}

}  // namespace

template <class T>
StateBuffer<T>::StateBuffer(int n) : size_(std::size_t{1} << n) {
  const std::size_t bytes = ((size_ * sizeof(Cx<T>) + kAlign - 1) / kAlign) * kAlign;
  data_ = static_cast<Cx<T>*>(std::aligned_alloc(kAlign, bytes));
  if (!data_) throw std::bad_alloc();
  madvise(data_, bytes, MADV_HUGEPAGE);
  T* r = reinterpret_cast<T*>(data_);
  const std::ptrdiff_t len = static_cast<std::ptrdiff_t>(2 * size_);
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
  const double c = std::cos(beta), s = std::sin(beta);
  if (std::abs(c) >= std::abs(s)) return {1.0, s / c, c};
  return {c / s, 1.0, s};
}

template <class T>
void apply_phase_and_x_mixer(Cx<T>* psi, int n, const PhaseFill<T>* phase, Cx<T> scale, bool mix, T alpha, T delta) {
  const int bb = std::min(n, kBlockBits);
  const std::size_t block = std::size_t{1} << bb;
  const std::ptrdiff_t blocks = std::ptrdiff_t{1} << (n - bb);
  const bool rescale = scale != Cx<T>(1, 0);
#pragma omp parallel
  {
    std::vector<Cx<T>> fac(phase ? block : 0);
#pragma omp for schedule(static)
    for (std::ptrdiff_t b = 0; b < blocks; ++b) {
      Cx<T>* v = psi + static_cast<std::size_t>(b) * block;
      if (phase) {
        phase->fill(static_cast<uint64_t>(b) * block, block, fac.data());
        T* r = reinterpret_cast<T*>(v);
        const T* f = reinterpret_cast<const T*>(fac.data());
#pragma omp simd
        for (std::size_t i = 0; i < block; ++i) {
          const T vr = r[2 * i], vi = r[2 * i + 1], fr = f[2 * i], fi = f[2 * i + 1];
          r[2 * i] = vr * fr - vi * fi;
          r[2 * i + 1] = vr * fi + vi * fr;
        }
      } else if (rescale) {
        for (std::size_t i = 0; i < block; ++i) v[i] = cmul(v[i], scale);
      }
      if (mix)
        for (int q = 0; q < bb; ++q) x_pass(reinterpret_cast<T*>(v), block, q, alpha, delta);
    }
  }
  if (!mix || n == bb) return;
  // High qubits: gather runs of 2^w amplitudes from every high index into a tile, mix there.
  const int hq = n - bb, w = std::min(kTileBits, bb);
  const std::size_t run = std::size_t{1} << w, rows = std::size_t{1} << hq;
  const std::ptrdiff_t mids = std::ptrdiff_t{1} << (bb - w);
#pragma omp parallel
  {
    std::vector<Cx<T>> tile(rows * run);
#pragma omp for schedule(static)
    for (std::ptrdiff_t mid = 0; mid < mids; ++mid) {
      const std::size_t off = static_cast<std::size_t>(mid) << w;
      for (std::size_t h = 0; h < rows; ++h) std::memcpy(&tile[h * run], psi + ((h << bb) | off), run * sizeof(Cx<T>));
      for (int j = 0; j < hq; ++j) x_pass(reinterpret_cast<T*>(tile.data()), tile.size(), w + j, alpha, delta);
      for (std::size_t h = 0; h < rows; ++h) std::memcpy(psi + ((h << bb) | off), &tile[h * run], run * sizeof(Cx<T>));
    }
  }
}

template <class T>
double im_sum_x(const Cx<T>* lambda, const Cx<T>* psi, int n) {
  const int bb = std::min(n, kBlockBits);
  const std::size_t block = std::size_t{1} << bb;
  const std::ptrdiff_t blocks = std::ptrdiff_t{1} << (n - bb);
  double acc = 0;
#pragma omp parallel for schedule(static) reduction(+ : acc)
  for (std::ptrdiff_t b = 0; b < blocks; ++b) {
    const T* l = reinterpret_cast<const T*>(lambda + static_cast<std::size_t>(b) * block);
    const T* p = reinterpret_cast<const T*>(psi + static_cast<std::size_t>(b) * block);
    for (int q = 0; q < bb; ++q) acc += im_x_pass(l, p, block, q);
  }
  if (n == bb) return acc;
  const int hq = n - bb, w = std::min(kTileBits, bb);
  const std::size_t run = std::size_t{1} << w, rows = std::size_t{1} << hq;
  const std::ptrdiff_t mids = std::ptrdiff_t{1} << (bb - w);
#pragma omp parallel reduction(+ : acc)
  {
    std::vector<Cx<T>> tl(rows * run), tp(rows * run);
#pragma omp for schedule(static)
    for (std::ptrdiff_t mid = 0; mid < mids; ++mid) {
      const std::size_t off = static_cast<std::size_t>(mid) << w;
      for (std::size_t h = 0; h < rows; ++h) {
        std::memcpy(&tl[h * run], lambda + ((h << bb) | off), run * sizeof(Cx<T>));
        std::memcpy(&tp[h * run], psi + ((h << bb) | off), run * sizeof(Cx<T>));
      }
      for (int j = 0; j < hq; ++j)
        acc += im_x_pass(reinterpret_cast<const T*>(tl.data()), reinterpret_cast<const T*>(tp.data()), tl.size(), w + j);
    }
  }
  return acc;
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
void mul_diag(Cx<T>* out, const Cx<T>* psi, const double* d, std::size_t len) {
  const std::ptrdiff_t m = static_cast<std::ptrdiff_t>(len);
#pragma omp parallel for simd schedule(static)
  for (std::ptrdiff_t i = 0; i < m; ++i) out[i] = psi[i] * static_cast<T>(d[i]);
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
void apply_xy(Cx<T>* psi, int n, int a, int b, double beta) {
  const int lo = std::min(a, b), hi = std::max(a, b);
  const T c = static_cast<T>(std::cos(beta)), s = static_cast<T>(std::sin(beta));
  const std::ptrdiff_t pairs = std::ptrdiff_t{1} << (n - 2);
#pragma omp parallel for schedule(static)
  for (std::ptrdiff_t r = 0; r < pairs; ++r) {
    const uint64_t z0 = insert_zero(insert_zero(static_cast<uint64_t>(r), lo), hi);
    Cx<T>& u = psi[z0 | (uint64_t{1} << a)];
    Cx<T>& v = psi[z0 | (uint64_t{1} << b)];
    const Cx<T> uu = u, vv = v;
    u = {c * uu.real() + s * vv.imag(), c * uu.imag() - s * vv.real()};
    v = {c * vv.real() + s * uu.imag(), c * vv.imag() - s * uu.real()};
  }
}

template <class T>
double im_xy(const Cx<T>* lambda, const Cx<T>* psi, int n, int a, int b) {
  const int lo = std::min(a, b), hi = std::max(a, b);
  const std::ptrdiff_t pairs = std::ptrdiff_t{1} << (n - 2);
  double acc = 0;
#pragma omp parallel for schedule(static) reduction(+ : acc)
  for (std::ptrdiff_t r = 0; r < pairs; ++r) {
    const uint64_t z0 = insert_zero(insert_zero(static_cast<uint64_t>(r), lo), hi);
    const uint64_t u = z0 | (uint64_t{1} << a), v = z0 | (uint64_t{1} << b);
    acc += std::imag(std::conj(lambda[u]) * psi[v] + std::conj(lambda[v]) * psi[u]);
  }
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
  template void apply_phase_and_x_mixer<T>(Cx<T>*, int, const PhaseFill<T>*, Cx<T>, bool, T, T);                \
  template double im_sum_x<T>(const Cx<T>*, const Cx<T>*, int);                                                 \
  template double im_diag<T>(const Cx<T>*, const Cx<T>*, const double*, std::size_t);                           \
  template double expect_diag<T>(const Cx<T>*, const double*, std::size_t);                                     \
  template void mul_diag<T>(Cx<T>*, const Cx<T>*, const double*, std::size_t);                                  \
  template double norm2<T>(const Cx<T>*, std::size_t);                                                          \
  template void apply_xy<T>(Cx<T>*, int, int, int, double);                                                     \
  template double im_xy<T>(const Cx<T>*, const Cx<T>*, int, int, int);                                          \
  template void apply_ry<T>(Cx<T>*, int, int, double);                                                          \
  template double im_y<T>(const Cx<T>*, const Cx<T>*, int, int);                                                \
  template void apply_cz_ladder<T>(Cx<T>*, int);
GNG_INSTANTIATE(float)
GNG_INSTANTIATE(double)

}  // namespace gng::quantum::detail
