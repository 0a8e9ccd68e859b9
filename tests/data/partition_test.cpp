#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/rng.h"
#include "data/dataset.h"
#include "support/error_of.h"

namespace gng {
namespace {

using test::error_of;
using Parts = std::vector<std::vector<std::size_t>>;

// `per_class[c]` rows of class c, in a shuffled order; one feature per row (its index).
Dataset labelled(const std::vector<std::size_t>& per_class, uint64_t seed = 5) {
  Dataset d;
  d.classes = static_cast<int>(per_class.size());
  for (std::size_t c = 0; c < per_class.size(); ++c) d.labels.insert(d.labels.end(), per_class[c], static_cast<int32_t>(c));
  Rng rng(seed);
  for (std::size_t i = d.labels.size(); i > 1; --i) std::swap(d.labels[i - 1], d.labels[rng.below(i)]);
  d.count = d.labels.size();
  d.width = d.height = 1;
  d.pixels.resize(d.count);
  for (std::size_t i = 0; i < d.count; ++i) d.pixels[i] = static_cast<float>(i);
  return d;
}

// 10 classes of unequal size: 600, 650, ..., 1050 (8250 rows).
Dataset ten_classes() {
  std::vector<std::size_t> n;
  for (int c = 0; c < 10; ++c) n.push_back(600 + 50 * c);
  return labelled(n);
}

// Every row in exactly one part, each part sorted and not empty.
::testing::AssertionResult disjoint_cover(const Parts& parts, std::size_t count) {
  std::vector<int> seen(count, 0);
  for (std::size_t p = 0; p < parts.size(); ++p) {
    if (parts[p].empty()) return ::testing::AssertionFailure() << "part " << p << " is empty";
    if (!std::is_sorted(parts[p].begin(), parts[p].end())) return ::testing::AssertionFailure() << "part " << p << " is not sorted";
    for (std::size_t i : parts[p]) {
      if (i >= count) return ::testing::AssertionFailure() << "row " << i << " out of range";
      ++seen[i];
    }
  }
  for (std::size_t i = 0; i < count; ++i)
    if (seen[i] != 1) return ::testing::AssertionFailure() << "row " << i << " appears " << seen[i] << " times";
  return ::testing::AssertionSuccess();
}

std::vector<double> label_distribution(const Dataset& d, const std::vector<std::size_t>& rows) {
  std::vector<double> h(d.classes, 0.0);
  for (std::size_t i : rows) h[d.labels[i]] += 1;
  for (double& x : h) x /= static_cast<double>(rows.size());
  return h;
}

// Mean over parts of the total-variation distance between the part's label distribution and the
// whole set's: 0 for perfectly IID parts, near 1 when each part holds classes the others lack.
double mean_tv(const Dataset& d, const Parts& parts) {
  std::vector<std::size_t> all(d.count);
  for (std::size_t i = 0; i < d.count; ++i) all[i] = i;
  const std::vector<double> global = label_distribution(d, all);
  double sum = 0;
  for (const auto& part : parts) {
    const std::vector<double> h = label_distribution(d, part);
    double tv = 0;
    for (int c = 0; c < d.classes; ++c) tv += 0.5 * std::abs(h[c] - global[c]);
    sum += tv;
  }
  return sum / static_cast<double>(parts.size());
}

TEST(PartitionIid, IsADisjointCoverWithEveryClassSpreadEvenly) {
  const Dataset d = ten_classes();
  for (int parts : {1, 2, 7, 10}) {
    SCOPED_TRACE(parts);
    const Parts p = partition_iid(d, parts, 1);
    ASSERT_EQ(p.size(), static_cast<std::size_t>(parts));
    EXPECT_TRUE(disjoint_cover(p, d.count));
    for (const auto& part : p) {
      EXPECT_LE(part.size(), d.count / parts + 1);
      EXPECT_GE(part.size(), d.count / parts);
      std::vector<std::size_t> per_class(d.classes, 0);
      for (std::size_t i : part) ++per_class[d.labels[i]];
      for (int c = 0; c < d.classes; ++c) {
        const std::size_t n = 600 + 50 * c;
        EXPECT_GE(per_class[c], n / parts);
        EXPECT_LE(per_class[c], (n + parts - 1) / parts);
      }
    }
    EXPECT_LT(mean_tv(d, p), 0.01);
  }
}

TEST(PartitionDirichlet, IsADisjointCoverForAnyAlpha) {
  const Dataset d = ten_classes();
  for (double alpha : {0.01, 0.1, 0.5, 1.0, 100.0}) {
    for (int parts : {1, 3, 5, 20}) {
      SCOPED_TRACE("alpha " + std::to_string(alpha) + ", " + std::to_string(parts) + " parts");
      const Parts p = partition_dirichlet(d, parts, alpha, 9);
      ASSERT_EQ(p.size(), static_cast<std::size_t>(parts));
      EXPECT_TRUE(disjoint_cover(p, d.count));
    }
  }
}

// Small alpha: parts dominated by a few classes; large alpha: close to the global mix.
TEST(PartitionDirichlet, SkewFollowsAlpha) {
  const Dataset d = ten_classes();
  double tv_iid = 0, tv_100 = 0, tv_1 = 0, tv_01 = 0;
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    tv_iid += mean_tv(d, partition_iid(d, 5, seed)) / 5;
    tv_100 += mean_tv(d, partition_dirichlet(d, 5, 100, seed)) / 5;
    tv_1 += mean_tv(d, partition_dirichlet(d, 5, 1, seed)) / 5;
    tv_01 += mean_tv(d, partition_dirichlet(d, 5, 0.1, seed)) / 5;
  }
  RecordProperty("tv_iid", std::to_string(tv_iid));
  RecordProperty("tv_alpha_100", std::to_string(tv_100));
  RecordProperty("tv_alpha_1", std::to_string(tv_1));
  RecordProperty("tv_alpha_0.1", std::to_string(tv_01));
  EXPECT_LT(tv_iid, 0.01);
  EXPECT_LT(tv_100, 0.06);
  EXPECT_GT(tv_1, 0.2);
  EXPECT_GT(tv_01, 0.5);
  EXPECT_LT(tv_iid, tv_100);
  EXPECT_LT(tv_100, tv_1);
  EXPECT_LT(tv_1, tv_01);
}

TEST(Partition, IsReproducibleWithASeedAndDiffersWithAnother) {
  const Dataset d = ten_classes();
  EXPECT_EQ(partition_iid(d, 5, 1), partition_iid(d, 5, 1));
  EXPECT_NE(partition_iid(d, 5, 1), partition_iid(d, 5, 2));
  EXPECT_EQ(partition_dirichlet(d, 5, 0.5, 1), partition_dirichlet(d, 5, 0.5, 1));
  EXPECT_NE(partition_dirichlet(d, 5, 0.5, 1), partition_dirichlet(d, 5, 0.5, 2));
}

// One class, two parts: part 0's share is Beta(α, α) — mean 1/2, variance 1 / (4 (2α + 1)); three
// parts: Beta(α, 2α) — mean 1/3, variance (2/9) / (3α + 1). This checks the Gamma sampler on both
// of its branches (α < 1 and α ≥ 1).
TEST(PartitionDirichlet, SharesHaveTheDirichletMoments) {
  const Dataset d = labelled({200});
  for (double alpha : {0.3, 0.5, 2.0, 5.0}) {
    for (int parts : {2, 3}) {
      SCOPED_TRACE("alpha " + std::to_string(alpha) + ", " + std::to_string(parts) + " parts");
      const int draws = 2000;
      double sum = 0, sum2 = 0;
      for (int s = 0; s < draws; ++s) {
        const double share = static_cast<double>(partition_dirichlet(d, parts, alpha, 1000 + s)[0].size()) / 200.0;
        sum += share;
        sum2 += share * share;
      }
      const double mean = sum / draws, var = sum2 / draws - mean * mean;
      const double want_mean = 1.0 / parts, want_var = want_mean * (1 - want_mean) / (parts * alpha + 1);
      EXPECT_NEAR(mean, want_mean, 4 * std::sqrt(want_var / draws));
      EXPECT_NEAR(var, want_var, 0.1 * want_var);
    }
  }
}

TEST(PartitionDirichlet, EveryPartGetsAtLeastOneRow) {
  // 12 rows, 12 parts, tiny alpha: nearly every draw puts a class in one part; the fix-up moves
  // single rows so that each part ends with exactly one.
  const Dataset d = labelled({4, 4, 4});
  for (uint64_t seed = 0; seed < 50; ++seed) {
    const Parts p = partition_dirichlet(d, 12, 0.01, seed);
    EXPECT_TRUE(disjoint_cover(p, d.count));
    for (const auto& part : p) EXPECT_EQ(part.size(), 1u);
  }
  // Classes absent from the data (labels 0 and 2 only) are fine.
  Dataset gaps = labelled({5, 0, 5});
  EXPECT_TRUE(disjoint_cover(partition_dirichlet(gaps, 4, 0.5, 1), gaps.count));
}

TEST(Partition, ErrorsSayWhatIsWrong) {
  Dataset d = labelled({3, 3});
  EXPECT_EQ(error_of([&] { partition_iid(d, 0, 1); }), "partition_iid: parts = 0 must be >= 1");
  EXPECT_EQ(error_of([&] { partition_iid(d, 7, 1); }), "partition_iid: 7 parts but only 6 rows");
  EXPECT_EQ(error_of([&] { partition_dirichlet(d, -1, 1, 1); }), "partition_dirichlet: parts = -1 must be >= 1");
  EXPECT_EQ(error_of([&] { partition_dirichlet(d, 7, 1, 1); }), "partition_dirichlet: 7 parts but only 6 rows");
  EXPECT_EQ(error_of([&] { partition_dirichlet(d, 2, 0, 1); }), "partition_dirichlet: alpha = 0 must be a finite number > 0");
  EXPECT_EQ(error_of([&] { partition_dirichlet(d, 2, INFINITY, 1); }), "partition_dirichlet: alpha = inf must be a finite number > 0");
  d.labels[4] = 2;
  EXPECT_EQ(error_of([&] { partition_iid(d, 2, 1); }), "partition_iid: row 4 has label 2 outside 0..1");
  EXPECT_EQ(error_of([&] { partition_dirichlet(d, 2, 1, 1); }), "partition_dirichlet: row 4 has label 2 outside 0..1");
}

}  // namespace
}  // namespace gng
