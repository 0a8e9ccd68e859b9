#pragma once
// Classical post-processing of a QKD key: Cascade information reconciliation (Brassard & Salvail,
// EUROCRYPT '93) and privacy amplification by Toeplitz hashing (a 2-universal family; Krawczyk,
// CRYPTO '94). Both are public algorithms over bits; neither is a cipher or a cryptographic hash.
#include <cstddef>
#include <cstdint>
#include <set>
#include <span>
#include <vector>

namespace gng::qkd {

using Bits = std::vector<uint8_t>;  // one 0/1 byte per bit

// Binary entropy h(p) = −p log2 p − (1−p) log2(1−p); 0 at p ∈ {0, 1}.
double binary_entropy(double p);

struct CascadeResult {
  uint64_t leaked = 0;     // parity bits disclosed in all: top_level + one per binary-search step
  uint64_t top_level = 0;  // block parities disclosed at the start of each pass
  uint64_t corrected = 0;  // bits Bob flipped
};

// First-pass block size: round(0.73 / qber) clamped to [1, n]; n when qber <= 0.
std::size_t cascade_first_block(double qber, std::size_t n);

// Cascade between two parties (Brassard & Salvail): Alice holds the reference key and answers
// parity queries, Bob asks them and corrects his key in place. Both derive the same permutations
// from the public (n, seed, passes): pass 0 in order, later passes through a random permutation
// drawn from `seed`; Bob cuts pass i (0-based) into blocks of k1·2^i bits, k1 from the QBER. Bob first asks every block's
// parity of a pass; each block whose parity differs is bisected (one parity per step) down to one
// error, which he flips. A flip makes the blocks holding that bit in the passes already run odd, and
// those are corrected in turn, earliest pass first (the cascade). Bisections of one pass run side by
// side, one query batch per step (its blocks are disjoint, so each finds its own error): a round
// trip per step over a network, not per parity. Errors can survive in rare cases (an even number in
// every block holding them): the caller verifies. Keys hold < 2^32 bits.
struct ParityQuery {
  uint32_t pass, lo, hi;  // the parity of positions [lo, hi) of that pass's order
};

class CascadeAlice {
 public:
  CascadeAlice(std::span<const uint8_t> key, uint64_t seed, int passes);  // her layout needs no QBER
  // Her parities for Bob's queries; gng::Error for a query outside the layout (a forged message).
  Bits parities(std::span<const ParityQuery> queries);
  uint64_t disclosed() const { return disclosed_; }  // parities answered so far: the leak

 private:
  std::span<const uint8_t> key_;
  std::vector<std::vector<uint32_t>> order_;  // per pass: position → bit index
  uint64_t disclosed_ = 0;
};

class CascadeBob {
 public:
  CascadeBob(std::span<uint8_t> key, double qber, uint64_t seed, int passes);
  // What to ask Alice next; empty when Cascade has ended.
  const std::vector<ParityQuery>& queries() const { return queries_; }
  // Her answers to queries(), in order; gng::Error when their number is wrong, or when they
  // contradict each other (more corrections than bits).
  void answer(std::span<const uint8_t> parities);
  CascadeResult result() const { return result_; }

 private:
  struct Pass {
    std::size_t k = 0;
    std::vector<uint32_t> order, where;  // position → bit index, and back
    Bits alice, bob;                     // block parities: Alice's (disclosed; empty before), Bob's
    std::set<std::size_t> odd;           // blocks whose parities differ
  };
  struct Bisection {
    std::size_t block, lo, hi;
  };
  void flip(uint32_t bit);
  void plan();  // the next queries: a bisection step, the next wave, the next pass's top level, or none
  uint8_t own_parity(const Pass& p, std::size_t lo, std::size_t hi) const;
  std::span<uint8_t> key_;
  std::size_t k1_;
  uint64_t seed_;
  int passes_;
  std::vector<Pass> ps_;
  int wave_pass_ = -1;  // the pass whose odd blocks are being bisected (-1: a top level is asked)
  std::vector<Bisection> active_;
  std::vector<ParityQuery> queries_;
  CascadeResult result_;
};

// Both parties in one process: brings `bob` to `alice` in place. alice.size() == bob.size() < 2^32.
CascadeResult cascade(std::span<const uint8_t> alice, std::span<uint8_t> bob, double qber, uint64_t seed, int passes = 4);

// y = T·x over GF(2), T the m×n Toeplitz matrix T[i][j] = seed[i − j + n − 1]; `seed` holds
// n + m − 1 bits. Computed 64 bits at a time (AND, XOR, popcount): O(n·m/64).
Bits toeplitz_hash(std::span<const uint8_t> x, std::span<const uint8_t> seed, std::size_t m);

}  // namespace gng::qkd
