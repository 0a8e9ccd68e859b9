#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <set>

#include "core/error.h"
#include "core/rng.h"
#include "search/nb201.h"
#include "search/search.h"
#include "solve/sampler.h"
#include "support/paths.h"
#include "surrogate/surrogate.h"

namespace gng {
namespace {

std::vector<Bits> all_states(std::size_t n) {
  std::vector<Bits> out;
  for (uint64_t c = 0; c < (uint64_t{1} << n); ++c) {
    Bits x(n);
    for (std::size_t i = 0; i < n; ++i) x[i] = (c >> i) & 1;
    out.push_back(x);
  }
  return out;
}

TEST(Surrogate, RecoversAQuadraticFunctionFromItsValues) {
  const Qubo truth(6, {1, -2, 0.5, 3, -1, 0}, {{0, 1, 2}, {2, 4, -3}, {3, 5, 1.5}}, 0.7);
  const auto xs = all_states(6);
  std::vector<double> ys;
  for (const auto& x : xs) ys.push_back(-truth.energy(x));  // the surrogate maximises y
  QuadraticSurrogate s(6);
  s.fit(xs, ys);
  for (const auto& x : xs) EXPECT_NEAR(s.predict(x), -truth.energy(x), 0.05);
  const Qubo m = s.mean_qubo();
  for (const auto& x : xs) EXPECT_NEAR(m.energy(x), truth.energy(x), 0.05);
  EXPECT_LT(s.noise_variance(), 0.01);  // the evidence picks the low-noise setting
}

TEST(Surrogate, ThompsonSamplesSpreadWhereDataIsScarceAndAgreeWhereItIsDense) {
  const auto xs = all_states(5);
  std::vector<Bits> few(xs.begin(), xs.begin() + 4);
  std::vector<double> y = {0, 1, 2, 3};
  QuadraticSurrogate s(5);
  s.fit(few, y);
  Rng r(1);
  const Bits seen = few[2], unseen = xs.back();
  double spread_seen = 0, spread_unseen = 0;
  const double ms = s.mean_qubo().energy(seen), mu = s.mean_qubo().energy(unseen);
  for (int k = 0; k < 200; ++k) {
    const Qubo t = s.thompson(r);
    spread_seen += std::pow(t.energy(seen) - ms, 2);
    spread_unseen += std::pow(t.energy(unseen) - mu, 2);
  }
  EXPECT_GT(spread_unseen, 4 * spread_seen);
  EXPECT_THROW(s.fit({}, {}), Error);
}

TEST(Penalty, OneHotPenaltyMakesEveryMinimumValid) {
  Rng r(5);
  const std::vector<std::vector<uint32_t>> groups = {{0, 1, 2}, {3, 4, 5, 6}};
  for (int t = 0; t < 20; ++t) {
    std::vector<double> a(9);
    for (auto& v : a) v = r.uniform() * 40 - 20;
    std::vector<Coupling> b;
    for (uint32_t i = 0; i < 9; ++i)
      for (uint32_t j = i + 1; j < 9; ++j) b.push_back({i, j, r.uniform() * 40 - 20});
    const Qubo q = with_one_hot_penalty(Qubo(9, a, b), groups);
    const Bits x = make_sampler("exact")->sample(q, {}).best().x;
    EXPECT_EQ(x[0] + x[1] + x[2], 1);
    EXPECT_EQ(x[3] + x[4] + x[5] + x[6], 1);
  }
}

TEST(Nb201, LoadsTheTableAndRoundTripsCodes) {
  const Nb201 t = Nb201::load(test::shared("data/nb201/nb201-cifar10.csv"));
  EXPECT_NEAR(t.best_test(), 89.16, 1e-9);
  double best_val = 0;
  int arg = 0;
  for (int c = 0; c < Nb201::kCells; ++c) {
    EXPECT_EQ(Nb201::decode(Nb201::encode(c)), c);
    if (t.val(c) > best_val) best_val = t.val(c), arg = c;
  }
  EXPECT_NEAR(best_val, 84.892, 1e-9);
  EXPECT_NEAR(t.test(arg), 89.03, 1e-9);
  Bits bad = Nb201::encode(0);
  bad[1] = 1;
  EXPECT_FALSE(Nb201::decode(bad).has_value());
  EXPECT_THROW(Nb201::load("/no/such.csv"), Error);
}

TEST(Nb201, MalformedTablesGetFileAndLine) {
  const std::string path = testing::TempDir() + "/nb201-bad.csv";
  const std::string header = "index,cell,val_acc_12ep,test_acc_12ep,test_acc_200ep\n";
  const std::string cell = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|";
  auto error_of = [&](const std::string& body) {
    std::ofstream(path) << header << body;
    try {
      Nb201::load(path);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(error_of("0,|none~0|+|none~0|none~1|+|none~0|none~1|none~2|none~3|,1,2,3\n"),
            path + ":2: cell '|none~0|+|none~0|none~1|+|none~0|none~1|none~2|none~3|' has more than six edges");
  EXPECT_EQ(error_of("0,|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|,1,2,3\n"), path + ":2: unknown operation 'conv'");
  EXPECT_EQ(error_of("0," + cell + ",x,2,3\n"), path + ":2: 'x' is not a number");
  EXPECT_EQ(error_of("0," + cell + ",1,2,3\n1," + cell + ",1,2,3\n"), path + ":3: cell " + cell + " appears twice");
  EXPECT_EQ(error_of("0," + cell + ",1,2,3\n"), path + ": 1 cells, expected 15625");
}

TEST(Search, NormalScoresAreMonotoneSymmetricAndShareTies) {
  const auto z = normal_scores({10, -5, 3, 3, 1000});
  ASSERT_EQ(z.size(), 5u);
  EXPECT_LT(z[1], z[2]);
  EXPECT_DOUBLE_EQ(z[2], z[3]);
  EXPECT_LT(z[3], z[0]);
  EXPECT_LT(z[0], z[4]);
  EXPECT_NEAR(z[2], -0.2533471031, 1e-8);  // the tied pair shares rank 1.5: Φ⁻¹(0.4)
  EXPECT_NEAR(z[4], 1.2815515655, 1e-8);  // Φ⁻¹(0.9): rank 4 of 5
  EXPECT_NEAR(z[1], -z[4], 1e-12);
}

TEST(Search, BeatsRandomSearchOnNb201) {
  const Nb201 t = Nb201::load(test::shared("data/nb201/nb201-cifar10.csv"));
  auto eval = [&](const Bits& x) -> std::optional<double> {
    const auto c = Nb201::decode(x);
    return c ? std::optional<double>(t.val(*c)) : std::nullopt;
  };
  const int seeds = 8, budget = 100;
  double search_best = 0, random_best = 0;
  for (int s = 1; s <= seeds; ++s) {
    SearchOptions o;
    o.budget = budget;
    o.seed = s;
    const auto obs = surrogate_search(Nb201::kBits, one_hot_feasibility(Nb201::kBits, Nb201::groups()), eval, o);
    ASSERT_EQ(obs.size(), static_cast<std::size_t>(budget));
    std::set<Bits> distinct;
    double best = 0;
    for (const auto& ob : obs) distinct.insert(ob.x), best = std::max(best, ob.score);
    EXPECT_EQ(distinct.size(), obs.size()) << "a design was evaluated twice";
    search_best += best / seeds;
    // Random search with the same budget of distinct cells.
    Rng r(1000 + s);
    std::set<int> cells;
    double rbest = 0;
    while (static_cast<int>(cells.size()) < budget) {
      const int c = static_cast<int>(r.below(Nb201::kCells));
      if (cells.insert(c).second) rbest = std::max(rbest, t.val(c));
    }
    random_best += rbest / seeds;
  }
  EXPECT_GT(search_best, random_best + 0.5) << "search " << search_best << " vs random " << random_best;
  std::printf("mean best validation accuracy after %d: search %.3f, random %.3f\n", budget, search_best, random_best);
}

}  // namespace
}  // namespace gng
