// RFC 9162 Merkle hashing and proofs: the Certificate Transparency known-answer vectors (the data of
// transparency-dev/merkle proof/verify_test.go), then exhaustive properties for every tree up to 64.
#include <gtest/gtest.h>

#include <bit>

#include "audit/merkle.h"
#include "support/error_of.h"

namespace gng::audit {
namespace {

secure::Bytes unhex(const std::string& h) {
  secure::Bytes b;
  for (std::size_t i = 0; i < h.size(); i += 2) b.push_back(static_cast<uint8_t>(std::stoi(h.substr(i, 2), nullptr, 16)));
  return b;
}

std::vector<Hash> hashes(const std::vector<std::string>& hex) {
  std::vector<Hash> out;
  for (const auto& h : hex) out.push_back(hash_from_hex(h));
  return out;
}

// The eight CT test leaves and the roots of their prefixes of size 1..8.
const std::vector<std::string> kLeaves = {"",         "00",       "10", "2021", "3031", "40414243", "5051525354555657",
                                          "606162636465666768696a6b6c6d6e6f"};
const std::vector<std::string> kRoots = {
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

std::vector<Hash> ct_leaves() {
  std::vector<Hash> out;
  for (const auto& l : kLeaves) out.push_back(leaf_hash(unhex(l)));
  return out;
}

TEST(Merkle, EmptyTreeAndLeafHashesAreRfc9162) {
  EXPECT_EQ(to_hex(empty_root()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(to_hex(root({})), to_hex(empty_root()));
  // A one-leaf tree's root is its leaf hash SHA-256(0x00 ‖ "").
  EXPECT_EQ(to_hex(leaf_hash({})), kRoots[0]);
}

TEST(Merkle, RootsOfTheCtTestLeaves) {
  const auto leaves = ct_leaves();
  for (std::size_t n = 1; n <= 8; ++n) EXPECT_EQ(to_hex(root(std::span(leaves).first(n))), kRoots[n - 1]) << "size " << n;
}

TEST(Merkle, InclusionProofsOfTheCtTestLeaves) {
  struct Vector {
    uint64_t index, size;
    std::vector<std::string> path;
  };
  const std::vector<Vector> vectors = {
      {0, 1, {}},
      {0, 8,
       {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
      {5, 8,
       {"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
      {2, 3, {"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"}},
      {1, 5,
       {"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
  };
  const auto leaves = ct_leaves();
  for (const auto& v : vectors) {
    const auto tree = std::span(leaves).first(v.size);
    const auto want = hashes(v.path);
    EXPECT_EQ(inclusion_proof(tree, v.index), want) << v.index << " in " << v.size;
    EXPECT_TRUE(verify_inclusion(v.index, v.size, leaves[v.index], want, hash_from_hex(kRoots[v.size - 1])));
  }
}

TEST(Merkle, ConsistencyProofsOfTheCtTestLeaves) {
  struct Vector {
    uint64_t m, n;
    std::vector<std::string> path;
  };
  const std::vector<Vector> vectors = {
      {1, 1, {}},
      {1, 8,
       {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
      {6, 8,
       {"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
      {2, 5,
       {"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
      {6, 7,
       {"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
  };
  const auto leaves = ct_leaves();
  for (const auto& v : vectors) {
    const auto want = hashes(v.path);
    EXPECT_EQ(consistency_proof(std::span(leaves).first(v.n), v.m), want) << v.m << " -> " << v.n;
    EXPECT_TRUE(verify_consistency(v.m, v.n, hash_from_hex(kRoots[v.m - 1]), hash_from_hex(kRoots[v.n - 1]), want));
  }
}

// Distinct leaves for the property tests, and the roots of every prefix.
struct Tree {
  std::vector<Hash> leaves, roots;  // roots[k]: root of the first k leaves
  explicit Tree(std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) leaves.push_back(leaf_hash(secure::view("entry " + std::to_string(i))));
    for (std::size_t k = 0; k <= n; ++k) roots.push_back(root(std::span(leaves).first(k)));
  }
};

TEST(Merkle, EveryInclusionProofUpTo64VerifiesAndNoAlteredOneDoes) {
  const Tree t(129);
  for (uint64_t n = 1; n <= 64; ++n) {
    const auto tree = std::span(t.leaves).first(n);
    for (uint64_t i = 0; i < n; ++i) {
      const auto proof = inclusion_proof(tree, i);
      ASSERT_TRUE(verify_inclusion(i, n, t.leaves[i], proof, t.roots[n])) << i << " in " << n;
      for (std::size_t k = 0; k < proof.size(); ++k)
        for (std::size_t byte : {std::size_t{0}, std::size_t{17}, std::size_t{31}}) {
          auto bad = proof;
          bad[k][byte] ^= 0x01;
          EXPECT_FALSE(verify_inclusion(i, n, t.leaves[i], bad, t.roots[n])) << i << " in " << n << ", element " << k;
        }
      for (uint64_t j = 0; j <= n; ++j) {
        if (j == i) continue;
        EXPECT_FALSE(verify_inclusion(j, n, t.leaves[i], proof, t.roots[n])) << i << " as " << j << " in " << n;
      }
      for (uint64_t s = 0; s <= 2 * n; ++s) {
        if (s == n) continue;
        EXPECT_FALSE(verify_inclusion(i, s, t.leaves[i], proof, t.roots[s])) << i << " in " << n << " as size " << s;
      }
      EXPECT_FALSE(verify_inclusion(i, 2 * n, t.leaves[i], proof, t.roots[n]));
      EXPECT_FALSE(verify_inclusion(i, n, t.leaves[n], proof, t.roots[n]));  // a leaf that is not in the tree
      auto longer = proof;
      longer.push_back(t.roots[n]);
      EXPECT_FALSE(verify_inclusion(i, n, t.leaves[i], longer, t.roots[n]));
      if (!proof.empty()) {
        EXPECT_FALSE(verify_inclusion(i, n, t.leaves[i], std::span(proof).first(proof.size() - 1), t.roots[n]));
      }
    }
  }
}

TEST(Merkle, EveryConsistencyProofUpTo64VerifiesAndNoAlteredOneDoes) {
  const Tree t(129);
  for (uint64_t n = 0; n <= 64; ++n) {
    const auto tree = std::span(t.leaves).first(n);
    for (uint64_t m = 0; m <= n; ++m) {
      const auto proof = consistency_proof(tree, m);
      ASSERT_TRUE(verify_consistency(m, n, t.roots[m], t.roots[n], proof)) << m << " -> " << n;
      EXPECT_EQ(proof.empty(), m == 0 || m == n);
      if (m != n) {
        EXPECT_FALSE(verify_consistency(m, n, t.roots[n], t.roots[m], proof)) << "swapped roots " << m << " -> " << n;
      }
      for (std::size_t k = 0; k < proof.size(); ++k)
        for (std::size_t byte : {std::size_t{0}, std::size_t{17}, std::size_t{31}}) {
          auto bad = proof;
          bad[k][byte] ^= 0x01;
          EXPECT_FALSE(verify_consistency(m, n, t.roots[m], t.roots[n], bad)) << m << " -> " << n << ", element " << k;
        }
      for (uint64_t m2 = 0; m2 <= n; ++m2) {
        if (m2 == m || (proof.empty() && (m2 == 0 || m2 == n))) continue;  // sizes that need no proof
        EXPECT_FALSE(verify_consistency(m2, n, t.roots[m2], t.roots[n], proof)) << m << " as " << m2 << " -> " << n;
      }
      for (uint64_t n2 = 0; n2 <= 2 * n; ++n2) {
        if (n2 == n || n2 == m || m == 0) continue;
        EXPECT_FALSE(verify_consistency(m, n2, t.roots[m], t.roots[n2], proof)) << m << " -> " << n << " as " << n2;
      }
      auto longer = proof;
      longer.push_back(t.roots[n]);
      EXPECT_FALSE(verify_consistency(m, n, t.roots[m], t.roots[n], longer)) << m << " -> " << n;
      if (!proof.empty()) {
        EXPECT_FALSE(verify_consistency(m, n, t.roots[m], t.roots[n], std::span(proof).first(proof.size() - 1)));
      }
    }
  }
}

TEST(Merkle, CompactRangeTracksTheRootAndResumes) {
  const Tree t(300);
  CompactRange edge;
  EXPECT_EQ(edge.root(), empty_root());
  for (std::size_t n = 1; n <= 300; ++n) {
    edge.append(t.leaves[n - 1]);
    ASSERT_EQ(edge.root(), t.roots[n]) << n;
    const uint64_t low = n & (~n + 1);  // the largest perfect subtree ending at leaf n - 1
    ASSERT_EQ(edge.last_subtree(), root(std::span(t.leaves).subspan(n - low, low))) << n;
    ASSERT_EQ(edge.subtrees().size(), static_cast<std::size_t>(std::popcount(n)));
    CompactRange resumed(n, edge.subtrees());
    if (n < 300) {
      resumed.append(t.leaves[n]);
      ASSERT_EQ(resumed.root(), t.roots[n + 1]) << n;
    }
  }
  EXPECT_EQ(test::error_of([] { CompactRange(5, {Hash{}}); }), "a tree of 5 leaves has 2 right-edge subtrees, not 1");
}

TEST(Merkle, BadRequestsAreErrors) {
  const Tree t(4);
  EXPECT_EQ(test::error_of([&] { inclusion_proof(t.leaves, 4); }), "no inclusion proof for entry 4 in a tree of 4 entries");
  EXPECT_EQ(test::error_of([&] { consistency_proof(t.leaves, 5); }), "no consistency proof from size 5 to the smaller size 4");
  EXPECT_EQ(test::error_of([] { hash_from_hex("abc"); }), "not a SHA-256 hash (64 hex digits): 'abc'");
  EXPECT_FALSE(verify_inclusion(0, 0, t.leaves[0], {}, empty_root()));
  EXPECT_FALSE(verify_consistency(0, 1, t.roots[1], t.roots[1], {}));  // size 0 has the empty root only
  EXPECT_TRUE(verify_consistency(0, 1, empty_root(), t.roots[1], {}));
  EXPECT_FALSE(verify_consistency(2, 1, t.roots[2], t.roots[1], {}));
}

}  // namespace
}  // namespace gng::audit
