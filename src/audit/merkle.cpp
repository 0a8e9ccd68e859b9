#include "audit/merkle.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "core/error.h"

namespace gng::audit {

namespace {

Hash to_hash(const secure::Bytes& b) {
  Hash h;
  std::memcpy(h.data(), b.data(), h.size());
  return h;
}

// The largest power of two smaller than n (n >= 2): where RFC 9162 splits a tree of n leaves.
uint64_t split(uint64_t n) { return std::bit_floor(n - 1); }

// MTH over a non-empty range of leaf hashes.
Hash mth(std::span<const Hash> d) {
  if (d.size() == 1) return d[0];
  const uint64_t k = split(d.size());
  return node_hash(mth(d.first(k)), mth(d.subspan(k)));
}

// PATH(m, D[n]), §2.1.3.1, appended leaf-to-root.
void path(std::span<const Hash> d, uint64_t m, std::vector<Hash>& out) {
  if (d.size() <= 1) return;
  const uint64_t k = split(d.size());
  if (m < k) {
    path(d.first(k), m, out);
    out.push_back(mth(d.subspan(k)));
  } else {
    path(d.subspan(k), m - k, out);
    out.push_back(mth(d.first(k)));
  }
}

// SUBPROOF(m, D[n], b), §2.1.4.1.
void subproof(std::span<const Hash> d, uint64_t m, bool b, std::vector<Hash>& out) {
  if (m == d.size()) {
    if (!b) out.push_back(mth(d));
    return;
  }
  const uint64_t k = split(d.size());
  if (m <= k) {
    subproof(d.first(k), m, b, out);
    out.push_back(mth(d.subspan(k)));
  } else {
    subproof(d.subspan(k), m - k, false, out);
    out.push_back(mth(d.first(k)));
  }
}

// Right-shifts fn and sn together until LSB(fn) is set or fn is 0 (§2.1.3.2 step 4.b.ii).
void shift_while_even(uint64_t& fn, uint64_t& sn) {
  while (fn != 0 && (fn & 1) == 0) {
    fn >>= 1;
    sn >>= 1;
  }
}

}  // namespace

Hash leaf_hash(secure::View entry) {
  secure::Bytes buf;
  buf.reserve(entry.size() + 1);
  buf.push_back(0x00);
  buf.insert(buf.end(), entry.begin(), entry.end());
  return to_hash(secure::sha256(buf));
}

Hash node_hash(const Hash& left, const Hash& right) {
  std::array<uint8_t, 65> buf;
  buf[0] = 0x01;
  std::memcpy(buf.data() + 1, left.data(), 32);
  std::memcpy(buf.data() + 33, right.data(), 32);
  return to_hash(secure::sha256(buf));
}

Hash empty_root() { return to_hash(secure::sha256({})); }

std::string to_hex(const Hash& h) { return secure::hex(h); }

Hash hash_from_hex(const std::string& hex) {
  auto digit = [&](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    throw Error("not a SHA-256 hash (64 hex digits): '" + hex + "'");
  };
  if (hex.size() != 64) throw Error("not a SHA-256 hash (64 hex digits): '" + hex + "'");
  Hash h;
  for (std::size_t i = 0; i < 32; ++i) h[i] = static_cast<uint8_t>(digit(hex[2 * i]) << 4 | digit(hex[2 * i + 1]));
  return h;
}

Hash root(std::span<const Hash> leaves) { return leaves.empty() ? empty_root() : mth(leaves); }

std::vector<Hash> inclusion_proof(std::span<const Hash> leaves, uint64_t index) {
  if (index >= leaves.size())
    throw Error("no inclusion proof for entry " + std::to_string(index) + " in a tree of " + std::to_string(leaves.size()) +
                " entries");
  std::vector<Hash> out;
  path(leaves, index, out);
  return out;
}

std::vector<Hash> consistency_proof(std::span<const Hash> leaves, uint64_t m) {
  if (m > leaves.size())
    throw Error("no consistency proof from size " + std::to_string(m) + " to the smaller size " +
                std::to_string(leaves.size()));
  std::vector<Hash> out;
  if (m > 0) subproof(leaves, m, true, out);
  return out;
}

bool verify_inclusion(uint64_t index, uint64_t size, const Hash& leaf, std::span<const Hash> proof, const Hash& root) {
  if (index >= size) return false;
  uint64_t fn = index, sn = size - 1;
  Hash r = leaf;
  for (const Hash& p : proof) {
    if (sn == 0) return false;
    if ((fn & 1) || fn == sn) {
      r = node_hash(p, r);
      if (!(fn & 1)) shift_while_even(fn, sn);
    } else {
      r = node_hash(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  return sn == 0 && r == root;
}

bool verify_consistency(uint64_t m, uint64_t n, const Hash& root_m, const Hash& root_n, std::span<const Hash> proof) {
  if (m > n) return false;
  if (m == n) return proof.empty() && root_m == root_n;
  if (m == 0) return proof.empty() && root_m == empty_root();
  if (proof.empty()) return false;
  // When m is a power of two the old root is itself a node of the new tree: it starts the path.
  const bool power_of_two = std::has_single_bit(m);
  std::size_t i = 0;
  Hash fr = power_of_two ? root_m : proof[i++];
  Hash sr = fr;
  uint64_t fn = m - 1, sn = n - 1;
  while (fn & 1) {
    fn >>= 1;
    sn >>= 1;
  }
  for (; i < proof.size(); ++i) {
    const Hash& c = proof[i];
    if (sn == 0) return false;
    if ((fn & 1) || fn == sn) {
      fr = node_hash(c, fr);
      sr = node_hash(c, sr);
      if (!(fn & 1)) shift_while_even(fn, sn);
    } else {
      sr = node_hash(sr, c);
    }
    fn >>= 1;
    sn >>= 1;
  }
  return fr == root_m && sr == root_n && sn == 0;
}

CompactRange::CompactRange(uint64_t size, std::vector<Hash> subtrees) : size_(size), subtrees_(std::move(subtrees)) {
  if (subtrees_.size() != static_cast<std::size_t>(std::popcount(size)))
    throw Error("a tree of " + std::to_string(size) + " leaves has " + std::to_string(std::popcount(size)) +
                " right-edge subtrees, not " + std::to_string(subtrees_.size()));
}

void CompactRange::append(const Hash& leaf) {
  subtrees_.push_back(leaf);
  ++size_;
  // Each trailing zero bit of the new size is a pair of equal-sized subtrees that now merge.
  for (uint64_t s = size_; (s & 1) == 0; s >>= 1) {
    const Hash merged = node_hash(subtrees_[subtrees_.size() - 2], subtrees_.back());
    subtrees_.pop_back();
    subtrees_.back() = merged;
  }
}

Hash CompactRange::root() const {
  if (subtrees_.empty()) return empty_root();
  Hash h = subtrees_.back();
  for (std::size_t i = subtrees_.size() - 1; i-- > 0;) h = node_hash(subtrees_[i], h);
  return h;
}

}  // namespace gng::audit
