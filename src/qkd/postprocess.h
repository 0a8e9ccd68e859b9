#pragma once
// Classical post-processing of a QKD key: Cascade information reconciliation (Brassard & Salvail,
// EUROCRYPT '93) and privacy amplification by Toeplitz hashing (a 2-universal family; Krawczyk,
// CRYPTO '94). Both are public algorithms over bits; neither is a cipher or a cryptographic hash.
#include <cstddef>
#include <cstdint>
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

// Cascade: brings `bob` to `alice` in place, given the estimated error rate. Pass i (0-based) cuts
// the key into blocks of k1·2^i bits (pass 0 in order, later passes through a random permutation
// drawn from the public `seed`); Alice discloses every block's parity, and each block whose parity
// differs is bisected (one disclosed parity per step) down to one error, which Bob flips. A flip
// makes the blocks holding that bit in the passes already run odd, and those are corrected in turn,
// smallest first (the cascade). Errors can survive in rare cases (an even number in every block
// holding them): the caller verifies. alice.size() == bob.size() < 2^32.
CascadeResult cascade(std::span<const uint8_t> alice, std::span<uint8_t> bob, double qber, uint64_t seed, int passes = 4);

// y = T·x over GF(2), T the m×n Toeplitz matrix T[i][j] = seed[i − j + n − 1]; `seed` holds
// n + m − 1 bits. Computed 64 bits at a time (AND, XOR, popcount): O(n·m/64).
Bits toeplitz_hash(std::span<const uint8_t> x, std::span<const uint8_t> seed, std::size_t m);

}  // namespace gng::qkd
