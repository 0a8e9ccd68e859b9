#pragma once
// Merkle tree hashing exactly as RFC 9162 §2.1 (Certificate Transparency v2), SHA-256 from OpenSSL:
//   leaf  = SHA-256(0x00 ‖ entry)          node = SHA-256(0x01 ‖ left ‖ right)
//   MTH({}) = SHA-256("");  MTH of n > 1 leaves splits at k, the largest power of two < n.
// Inclusion proofs (§2.1.3) and consistency proofs (§2.1.4), generated from a tree's leaf hashes and
// verified against roots; CompactRange keeps the right edge of a growing tree so that appending a
// leaf and reading the new root cost O(log n) hashes.
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "secure/crypto.h"

namespace gng::audit {

using Hash = std::array<uint8_t, 32>;

Hash leaf_hash(secure::View entry);
Hash node_hash(const Hash& left, const Hash& right);
Hash empty_root();  // SHA-256 of the empty string
std::string to_hex(const Hash& h);
Hash hash_from_hex(const std::string& hex);  // gng::Error unless 64 hex digits

// MTH over leaf hashes (not entries): root(leaf_hash(d_0), ..., leaf_hash(d_{n-1})).
Hash root(std::span<const Hash> leaves);

// PATH(index, D[n]) for n = leaves.size(); gng::Error unless index < n.
std::vector<Hash> inclusion_proof(std::span<const Hash> leaves, uint64_t index);
// PROOF(m, D[n]) for n = leaves.size(); empty for m == 0 and m == n; gng::Error if m > n.
std::vector<Hash> consistency_proof(std::span<const Hash> leaves, uint64_t m);

// §2.1.3.2: true when `proof` shows that `leaf` is entry `index` of the tree of `size` leaves with `root`.
bool verify_inclusion(uint64_t index, uint64_t size, const Hash& leaf, std::span<const Hash> proof, const Hash& root);
// §2.1.4.2: true when `proof` shows that the tree (m, root_m) is a prefix of the tree (n, root_n).
// m == n needs an empty proof and equal roots; m == 0 needs an empty proof and root_m == empty_root().
bool verify_consistency(uint64_t m, uint64_t n, const Hash& root_m, const Hash& root_n, std::span<const Hash> proof);

// The perfect subtrees along the right edge of a tree (one per set bit of its size, largest first).
class CompactRange {
 public:
  CompactRange() = default;
  // Resumes from the subtree hashes of a tree of `size` leaves; gng::Error unless there is one per set bit.
  CompactRange(uint64_t size, std::vector<Hash> subtrees);
  void append(const Hash& leaf);
  uint64_t size() const { return size_; }
  Hash root() const;  // MTH of the leaves appended so far
  // After append(): the hash of the largest perfect subtree that ends at the last leaf.
  const Hash& last_subtree() const { return subtrees_.back(); }
  const std::vector<Hash>& subtrees() const { return subtrees_; }

 private:
  uint64_t size_ = 0;
  std::vector<Hash> subtrees_;
};

}  // namespace gng::audit
