#include "qkd/postprocess.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <numeric>
#include <queue>
#include <string>

#include "core/error.h"
#include "core/rng.h"

namespace gng::qkd {

double binary_entropy(double p) {
  if (p <= 0 || p >= 1) return 0;
  return -p * std::log2(p) - (1 - p) * std::log2(1 - p);
}

std::size_t cascade_first_block(double qber, std::size_t n) {
  if (n == 0) return 0;
  if (!(qber > 0)) return n;
  const double k = std::round(0.73 / qber);
  return k >= static_cast<double>(n) ? n : std::max<std::size_t>(1, static_cast<std::size_t>(k));
}

namespace {

struct Pass {
  std::size_t k;                // block size
  std::vector<uint32_t> order;  // position in this pass → bit index
  std::vector<uint32_t> where;  // bit index → position
  Bits alice, bob;              // block parities: Alice's (disclosed), Bob's (tracked as he flips)
};

}  // namespace

CascadeResult cascade(std::span<const uint8_t> alice, std::span<uint8_t> bob, double qber, uint64_t seed, int passes) {
  const std::size_t n = alice.size();
  if (bob.size() != n) throw Error("cascade: Alice's key has " + std::to_string(n) + " bits, Bob's " + std::to_string(bob.size()));
  if (n >= (uint64_t{1} << 32)) throw Error("cascade: at most 2^32 - 1 bits per block");
  if (passes < 1) throw Error("cascade: passes must be >= 1, got " + std::to_string(passes));
  CascadeResult r;
  if (n == 0) return r;
  Rng rng(seed);
  const std::size_t k1 = cascade_first_block(qber, n);
  std::vector<Pass> ps;
  ps.reserve(passes);

  // Odd blocks waiting for a bisection, smallest (earliest pass) first.
  using Item = std::pair<int, std::size_t>;  // (pass, block)
  std::priority_queue<Item, std::vector<Item>, std::greater<>> odd;

  auto parity = [](std::span<const uint8_t> bits, const std::vector<uint32_t>& order, std::size_t lo, std::size_t hi) {
    uint8_t s = 0;
    for (std::size_t i = lo; i < hi; ++i) s ^= bits[order[i]];
    return s;
  };

  for (int p = 0; p < passes; ++p) {
    Pass& P = ps.emplace_back();
    P.k = p >= 62 || k1 > (n >> p) ? n : std::min(n, k1 << p);
    P.order.resize(n);
    std::iota(P.order.begin(), P.order.end(), 0u);
    if (p > 0)
      for (std::size_t i = n - 1; i > 0; --i) std::swap(P.order[i], P.order[rng.below(i + 1)]);
    P.where.resize(n);
    for (std::size_t i = 0; i < n; ++i) P.where[P.order[i]] = static_cast<uint32_t>(i);
    const std::size_t blocks = (n + P.k - 1) / P.k;
    P.alice.assign(blocks, 0);
    P.bob.assign(blocks, 0);
    for (std::size_t i = 0; i < n; ++i) {
      P.alice[i / P.k] ^= alice[P.order[i]];
      P.bob[i / P.k] ^= bob[P.order[i]];
    }
    r.top_level += blocks;
    r.leaked += blocks;
    for (std::size_t b = 0; b < blocks; ++b)
      if (P.alice[b] != P.bob[b]) odd.push({p, b});

    while (!odd.empty()) {
      const auto [q, b] = odd.top();
      odd.pop();
      const Pass& Q = ps[q];
      if (Q.alice[b] == Q.bob[b]) continue;  // made even again by a later flip
      std::size_t lo = b * Q.k, hi = std::min(lo + Q.k, n);
      while (hi - lo > 1) {  // Alice discloses the parity of the first half
        const std::size_t mid = lo + (hi - lo) / 2;
        ++r.leaked;
        if (parity(alice, Q.order, lo, mid) != parity(bob, Q.order, lo, mid))
          hi = mid;
        else
          lo = mid;
      }
      const uint32_t x = Q.order[lo];
      bob[x] ^= 1;
      ++r.corrected;
      for (int s = 0; s <= p; ++s) {
        Pass& S = ps[s];
        const std::size_t blk = S.where[x] / S.k;
        S.bob[blk] ^= 1;
        if (S.alice[blk] != S.bob[blk]) odd.push({s, blk});
      }
    }
  }
  return r;
}

Bits toeplitz_hash(std::span<const uint8_t> x, std::span<const uint8_t> seed, std::size_t m) {
  const std::size_t n = x.size();
  if (n == 0 || m == 0) return Bits(m, 0);
  if (seed.size() != n + m - 1)
    throw Error("toeplitz_hash: the seed must hold n + m - 1 = " + std::to_string(n + m - 1) + " bits, got " +
                std::to_string(seed.size()));
  // With x reversed (xr[j] = x[n−1−j]), y_i = parity(seed[i .. i+n) AND xr): a sliding window.
  const std::size_t nw = (n + 63) / 64;
  std::vector<uint64_t> xr(nw, 0);
  for (std::size_t j = 0; j < n; ++j) xr[j / 64] |= uint64_t{x[n - 1 - j] & 1u} << (j % 64);
  // shifted[r][q] holds seed bits r + 64q .. r + 64q + 63, so that every window is word-aligned in
  // one of the 64 copies: row i reads shifted[i % 64][i / 64 ..].
  const std::size_t words = (n + m - 1 + 63) / 64 + 1;
  std::vector<uint64_t> packed(words + 1, 0);
  for (std::size_t j = 0; j < seed.size(); ++j) packed[j / 64] |= uint64_t{seed[j] & 1u} << (j % 64);
  std::vector<uint64_t> shifted(64 * words);
  for (std::size_t r = 0; r < 64; ++r)
    for (std::size_t q = 0; q < words; ++q)
      shifted[r * words + q] = r == 0 ? packed[q] : (packed[q] >> r) | (packed[q + 1] << (64 - r));
  Bits y(m);
  // Rows in order of their copy: consecutive rows then slide one word through the same copy.
  for (std::size_t r = 0; r < 64 && r < m; ++r) {
    const uint64_t* s = shifted.data() + r * words;
    std::size_t i = r;
    for (; i + 192 < m; i += 256) {  // four rows at once share the loads of xr
      const uint64_t* w = s + i / 64;
      uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
      for (std::size_t j = 0; j < nw; ++j) {
        const uint64_t v = xr[j];
        a0 ^= w[j] & v;
        a1 ^= w[j + 1] & v;
        a2 ^= w[j + 2] & v;
        a3 ^= w[j + 3] & v;
      }
      y[i] = static_cast<uint8_t>(std::popcount(a0) & 1);
      y[i + 64] = static_cast<uint8_t>(std::popcount(a1) & 1);
      y[i + 128] = static_cast<uint8_t>(std::popcount(a2) & 1);
      y[i + 192] = static_cast<uint8_t>(std::popcount(a3) & 1);
    }
    for (; i < m; i += 64) {
      const uint64_t* w = s + i / 64;
      uint64_t acc = 0;
      for (std::size_t j = 0; j < nw; ++j) acc ^= w[j] & xr[j];
      y[i] = static_cast<uint8_t>(std::popcount(acc) & 1);
    }
  }
  return y;
}

}  // namespace gng::qkd
