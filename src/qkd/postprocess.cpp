#include "qkd/postprocess.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <numeric>
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

void check_layout(std::size_t n, int passes) {
  if (n >= (uint64_t{1} << 32)) throw Error("cascade: at most 2^32 - 1 bits per block");
  if (passes < 1 || passes > 62) throw Error("cascade: passes must be in 1..62, got " + std::to_string(passes));
}

std::size_t block_size(std::size_t k1, std::size_t n, int pass) {
  return k1 > (n >> pass) ? n : std::min(n, k1 << pass);
}

// Every pass's order (position → bit index): pass 0 the identity, later ones Fisher–Yates from `seed`.
std::vector<std::vector<uint32_t>> layout(std::size_t n, uint64_t seed, int passes) {
  Rng rng(seed);
  std::vector<std::vector<uint32_t>> out(passes);
  for (int p = 0; p < passes; ++p) {
    auto& o = out[p];
    o.resize(n);
    std::iota(o.begin(), o.end(), 0u);
    if (p > 0 && n > 1)
      for (std::size_t i = n - 1; i > 0; --i) std::swap(o[i], o[rng.below(i + 1)]);
  }
  return out;
}

}  // namespace

CascadeAlice::CascadeAlice(std::span<const uint8_t> key, uint64_t seed, int passes) : key_(key) {
  check_layout(key.size(), passes);
  order_ = layout(key.size(), seed, passes);
}

Bits CascadeAlice::parities(std::span<const ParityQuery> queries) {
  Bits out;
  out.reserve(queries.size());
  for (const ParityQuery& q : queries) {
    if (q.pass >= order_.size() || q.lo >= q.hi || q.hi > key_.size())
      throw Error("cascade: parity query outside the key (pass " + std::to_string(q.pass) + ", [" + std::to_string(q.lo) + ", " +
                  std::to_string(q.hi) + ") of " + std::to_string(key_.size()) + " bits)");
    const auto& o = order_[q.pass];
    uint8_t s = 0;
    for (uint32_t i = q.lo; i < q.hi; ++i) s ^= key_[o[i]];
    out.push_back(s);
  }
  disclosed_ += queries.size();
  return out;
}

CascadeBob::CascadeBob(std::span<uint8_t> key, double qber, uint64_t seed, int passes)
    : key_(key), k1_(cascade_first_block(qber, key.size())), seed_(seed), passes_(passes) {
  check_layout(key.size(), passes);
  if (key.empty()) return;
  auto orders = layout(key.size(), seed_, passes_);
  ps_.resize(passes_);
  for (int p = 0; p < passes_; ++p) {
    Pass& P = ps_[p];
    P.k = block_size(k1_, key.size(), p);
    P.order = std::move(orders[p]);
    P.where.resize(key.size());
    for (std::size_t i = 0; i < key.size(); ++i) P.where[P.order[i]] = static_cast<uint32_t>(i);
  }
  plan();
}

uint8_t CascadeBob::own_parity(const Pass& p, std::size_t lo, std::size_t hi) const {
  uint8_t s = 0;
  for (std::size_t i = lo; i < hi; ++i) s ^= key_[p.order[i]];
  return s;
}

void CascadeBob::flip(uint32_t bit) {
  // Honest parities find each error once; more flips than bits means they contradict each other
  // (and would make the cascade flip the same bits back and forth for ever).
  if (result_.corrected >= key_.size()) throw Error("cascade: Alice's parities contradict each other (more corrections than bits)");
  key_[bit] ^= 1;
  ++result_.corrected;
  for (Pass& S : ps_)
    if (!S.alice.empty()) {
      const std::size_t b = S.where[bit] / S.k;
      S.bob[b] ^= 1;
      if (S.alice[b] != S.bob[b])
        S.odd.insert(b);
      else
        S.odd.erase(b);
    }
}

void CascadeBob::plan() {
  queries_.clear();
  const std::size_t n = key_.size();
  for (;;) {
    // A bisection step of the current wave.
    for (const Bisection& b : active_)
      queries_.push_back({static_cast<uint32_t>(wave_pass_), static_cast<uint32_t>(b.lo), static_cast<uint32_t>(b.lo + (b.hi - b.lo) / 2)});
    if (!queries_.empty()) return;
    // A new wave: every odd block of the earliest pass with any (disjoint blocks: one error each).
    std::size_t p = 0;
    while (p < ps_.size() && !ps_[p].alice.empty() && ps_[p].odd.empty()) ++p;
    if (p < ps_.size() && !ps_[p].alice.empty()) {
      wave_pass_ = static_cast<int>(p);
      for (const std::size_t b : ps_[p].odd) active_.push_back({b, b * ps_[p].k, std::min(n, (b + 1) * ps_[p].k)});
      // A one-bit block needs no bisection: its bit is the error.
      std::vector<Bisection> ready;
      std::erase_if(active_, [&](const Bisection& b) { return b.hi - b.lo == 1 ? (ready.push_back(b), true) : false; });
      for (const Bisection& b : ready) flip(ps_[p].order[b.lo]);
      continue;  // their bisection's first step, or (all were one bit) the next wave
    }
    // The next pass's top level (p is the first pass not begun), or the end.
    if (p == ps_.size()) return;
    wave_pass_ = -1;
    for (std::size_t lo = 0; lo < n; lo += ps_[p].k)
      queries_.push_back({static_cast<uint32_t>(p), static_cast<uint32_t>(lo), static_cast<uint32_t>(std::min(n, lo + ps_[p].k))});
    return;
  }
}

void CascadeBob::answer(std::span<const uint8_t> parities) {
  if (parities.size() != queries_.size())
    throw Error("cascade: " + std::to_string(parities.size()) + " parities answer " + std::to_string(queries_.size()) + " queries");
  result_.leaked += parities.size();
  if (wave_pass_ < 0) {  // a top level
    Pass& P = ps_[queries_.front().pass];
    const std::size_t blocks = queries_.size();
    P.alice.assign(parities.begin(), parities.end());
    for (uint8_t& a : P.alice) a &= 1;
    P.bob.assign(blocks, 0);
    for (std::size_t b = 0; b < blocks; ++b) {
      P.bob[b] = own_parity(P, queries_[b].lo, queries_[b].hi);
      if (P.alice[b] != P.bob[b]) P.odd.insert(b);
    }
    result_.top_level += blocks;
  } else {
    const Pass& P = ps_[wave_pass_];
    for (std::size_t i = 0; i < active_.size(); ++i) {
      Bisection& b = active_[i];
      const std::size_t mid = b.lo + (b.hi - b.lo) / 2;
      if ((parities[i] & 1) != own_parity(P, b.lo, mid))
        b.hi = mid;
      else
        b.lo = mid;
    }
    std::vector<uint32_t> found;
    std::erase_if(active_, [&](const Bisection& b) { return b.hi - b.lo == 1 ? (found.push_back(P.order[b.lo]), true) : false; });
    for (const uint32_t bit : found) flip(bit);
  }
  plan();
}

CascadeResult cascade(std::span<const uint8_t> alice, std::span<uint8_t> bob, double qber, uint64_t seed, int passes) {
  const std::size_t n = alice.size();
  if (bob.size() != n) throw Error("cascade: Alice's key has " + std::to_string(n) + " bits, Bob's " + std::to_string(bob.size()));
  if (passes < 1) throw Error("cascade: passes must be >= 1, got " + std::to_string(passes));
  CascadeAlice a(alice, seed, passes);
  CascadeBob b(bob, qber, seed, passes);
  while (!b.queries().empty()) {
    const std::vector<ParityQuery> q = b.queries();
    b.answer(a.parities(q));
  }
  return b.result();
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
