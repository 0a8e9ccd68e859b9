#include "fed/fed.h"
#include "fed/strategy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "support/error_of.h"

namespace gng::fed {
namespace {

using test::error_of;

// "h3" and the like. (Not "h" + std::to_string(i): GCC 12 warns falsely about it, -Wrestrict.)
std::string node(const char* prefix, std::size_t i) { return std::string(prefix).append(std::to_string(i)); }

// Two tensors, "w" (2 × 3) and "b" (3), filled from `values` (9 of them).
Update make(const std::string& from, double samples, const std::vector<float>& values) {
  Update u;
  u.from = from;
  u.samples = samples;
  u.tensors.push_back({"w", {2, 3}, std::vector<float>(values.begin(), values.begin() + 6)});
  u.tensors.push_back({"b", {3}, std::vector<float>(values.begin() + 6, values.begin() + 9)});
  return u;
}

// The strategy make_strategy(c) builds, applied to `results`.
Update aggregate_by(const StrategyConfig& c, std::span<const Update> results) { return make_strategy(c)->aggregate(results); }

Update fedavg(std::span<const Update> results) { return aggregate_by({}, results); }

std::vector<float> flat(const Update& u) {
  std::vector<float> v;
  for (const Tensor& t : u.tensors) v.insert(v.end(), t.values.begin(), t.values.end());
  return v;
}

// An honest node: the shared model `center` plus N(0, sigma²) noise per coordinate.
Update honest(const std::string& from, const std::vector<float>& center, double sigma, Rng& rng) {
  std::vector<float> v(center.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    const double z = std::sqrt(-2 * std::log(1 - rng.uniform())) * std::cos(6.283185307179586 * rng.uniform());
    v[i] = center[i] + static_cast<float>(sigma * z);
  }
  return make(from, 100 + static_cast<double>(rng.below(100)), v);
}

std::vector<float> centre(Rng& rng) {
  std::vector<float> c(9);
  for (float& x : c) x = 0.5f + static_cast<float>(rng.uniform());  // in [0.5, 1.5): sign flips move far
  return c;
}

enum class Attack { scaled, sign_flipped };

Update attacker(const std::string& from, const Update& victim, Attack a) {
  Update u = victim;
  u.from = from;
  u.samples = 1000;  // attackers also claim a large weight
  for (Tensor& t : u.tensors)
    for (float& x : t.values) x = a == Attack::scaled ? 100 * x : -x;
  return u;
}

// Every coordinate of `r` lies within the range of the honest updates' values there.
::testing::AssertionResult within_honest_range(const Update& r, const std::vector<Update>& updates, std::size_t honest_count) {
  const std::vector<float> got = flat(r);
  for (std::size_t k = 0; k < got.size(); ++k) {
    float lo = std::numeric_limits<float>::infinity(), hi = -lo;
    for (std::size_t i = 0; i < honest_count; ++i) {
      lo = std::min(lo, flat(updates[i])[k]);
      hi = std::max(hi, flat(updates[i])[k]);
    }
    if (!(got[k] >= lo && got[k] <= hi))
      return ::testing::AssertionFailure() << "coordinate " << k << " = " << got[k] << " outside honest [" << lo << ", " << hi << "]";
  }
  return ::testing::AssertionSuccess();
}

// ---- FedAvg --------------------------------------------------------------------------------------

TEST(FedAvg, IdenticalUpdatesGiveThatUpdate) {
  Rng rng(1);
  std::vector<float> v(9);
  for (float& x : v) x = static_cast<float>(rng.uniform() * 2 - 1);
  const std::vector<Update> updates = {make("a", 3, v), make("b", 7.5, v), make("c", 1234, v), make("d", 0.1, v)};
  const Update r = fedavg(updates);
  EXPECT_EQ(r.from, "");
  EXPECT_DOUBLE_EQ(r.samples, 3 + 7.5 + 1234 + 0.1);
  ASSERT_EQ(r.tensors.size(), 2u);
  EXPECT_EQ(r.tensors[0].name, "w");
  EXPECT_EQ(r.tensors[0].shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(r.tensors[1].name, "b");
  EXPECT_EQ(r.tensors[1].shape, (std::vector<int64_t>{3}));
  EXPECT_EQ(flat(r), v);  // exactly
}

TEST(FedAvg, WeightsBySamplesOnAHandExample) {
  // 1/4 · a + 3/4 · b, every value exact in binary.
  const Update a = make("a", 10, {0, 4, -8, 1, 0, 0, 2, 2, 100});
  const Update b = make("b", 30, {4, 8, 8, 1, 2, -4, 6, 2, 0});
  const std::vector<Update> updates = {a, b};
  const Update r = aggregate_by({.rule = "fedavg"}, updates);
  EXPECT_EQ(flat(r), (std::vector<float>{3, 7, 4, 1, 1.5, -3, 5, 2, 25}));
  EXPECT_EQ(r.samples, 40);
}

TEST(FedAvg, PoolsBatchNormStatisticsAsTheVarianceOfAllNodesData) {
  // Node a's data: mean 0, variance 1 (per channel); node b's: mean 2, variance 1, with 3× the
  // samples. Together: mean 1.5 and variance ¼·(1 + 0) + ¾·(1 + 4) − 1.5² = 1.75, not the mean
  // of the variances (1). Weights and biases are plain weighted means; a running_var without its
  // running_mean (or another shape) is averaged like any tensor.
  auto bn = [](const char* from, double samples, float mean, float var, float weight) {
    Update u;
    u.from = from;
    u.samples = samples;
    u.tensors.push_back({"bn.weight", {2}, {weight, weight}});
    u.tensors.push_back({"bn.running_mean", {2}, {mean, mean}});
    u.tensors.push_back({"bn.running_var", {2}, {var, var}});
    u.tensors.push_back({"lone.running_var", {1}, {var}});
    return u;
  };
  const std::vector<Update> updates = {bn("a", 10, 0, 1, 4), bn("b", 30, 2, 1, 8)};
  const Update r = aggregate_by({.rule = "fedavg"}, updates);
  EXPECT_EQ(r.tensors[0].values, (std::vector<float>{7, 7}));
  EXPECT_EQ(r.tensors[1].values, (std::vector<float>{1.5, 1.5}));
  EXPECT_EQ(r.tensors[2].values, (std::vector<float>{1.75, 1.75}));
  EXPECT_EQ(r.tensors[3].values, (std::vector<float>{1}));
  // Multi-Krum averages its choice the same way: five identical nodes pool to their own statistics.
  const std::vector<Update> five(5, bn("c", 10, 2, 1, 8));
  const Update k = aggregate_by({.rule = "krum", .byzantine = 1, .multi = 4}, five);
  EXPECT_EQ(k.tensors[1].values, (std::vector<float>{2, 2}));
  EXPECT_EQ(k.tensors[2].values, (std::vector<float>{1, 1}));
}

TEST(FedAvg, UpdatesWithZeroSamplesCountForNothing) {
  const std::vector<Update> updates = {make("a", 0, {1e30f, 1, 1, 1, 1, 1, 1, 1, 1}), make("b", 5, {1, 2, 3, 4, 5, 6, 7, 8, 9})};
  EXPECT_EQ(flat(fedavg(updates)), flat(updates[1]));
}

TEST(FedAvg, IsIndependentOfOrder) {
  Rng rng(7);
  std::vector<Update> updates;
  for (int i = 0; i < 5; ++i) {
    std::vector<float> v(9);
    for (float& x : v) x = static_cast<float>(rng.uniform() * 10 - 5);
    updates.push_back(make(node("n", i), 1 + rng.below(1000), v));
  }
  const std::vector<float> first = flat(fedavg(updates));
  std::vector<std::size_t> order = {0, 1, 2, 3, 4};
  int permutations = 0;
  while (std::next_permutation(order.begin(), order.end())) {
    std::vector<Update> shuffled;
    for (std::size_t i : order) shuffled.push_back(updates[i]);
    const std::vector<float> got = flat(fedavg(shuffled));
    for (std::size_t k = 0; k < got.size(); ++k) EXPECT_FLOAT_EQ(got[k], first[k]);
    ++permutations;
  }
  EXPECT_EQ(permutations, 119);
}

TEST(FedAvg, AllZeroSamplesIsAnError) {
  const std::vector<Update> updates = {make("a", 0, std::vector<float>(9, 1)), make("b", 0, std::vector<float>(9, 2))};
  EXPECT_EQ(error_of([&] { fedavg(updates); }), "fedavg: all 2 updates have 0 samples, so there is nothing to weight by");
}

// ---- trimmed mean and median ---------------------------------------------------------------------

TEST(TrimmedMean, DropsTheExtremesOfEachCoordinate) {
  std::vector<Update> updates;
  const std::vector<float> column = {3, 100, 1, 4, 2};  // sorted: 1 2 3 4 100
  for (std::size_t i = 0; i < column.size(); ++i) updates.push_back(make(node("n", i), 1 + i, std::vector<float>(9, column[i])));
  EXPECT_EQ(flat(aggregate_by({.rule = "trimmed_mean", .trim = 0.2}, updates)), std::vector<float>(9, 3));  // mean of 2 3 4
  EXPECT_EQ(flat(aggregate_by({.rule = "trimmed_mean", .trim = 0.0}, updates)), std::vector<float>(9, 22));  // unweighted
  EXPECT_EQ(flat(aggregate_by({.rule = "trimmed_mean", .trim = 0.45}, updates)), std::vector<float>(9, 3));  // ⌊2.25⌋ = 2 cut
  EXPECT_EQ(aggregate_by({.rule = "trimmed_mean", .trim = 0.2}, updates).samples, 15);
}

TEST(TrimmedMean, TrimOutsideTheRangeIsAnError) {
  // Refused when the strategy is made, before any update is seen.
  EXPECT_EQ(error_of([&] { make_strategy({.rule = "trimmed_mean", .trim = 0.5}); }), "trimmed_mean: trim 0.5 must be in [0, 0.5)");
  EXPECT_EQ(error_of([&] { make_strategy({.rule = "trimmed_mean", .trim = -0.1}); }), "trimmed_mean: trim -0.1 must be in [0, 0.5)");

}

TEST(Median, IsTheMiddleValueOfEachCoordinate) {
  std::vector<Update> odd, even;
  for (float x : {5.0f, -1.0f, 3.0f}) odd.push_back(make("o", 1, std::vector<float>(9, x)));
  for (float x : {10.0f, 1.0f, 3.0f, 2.0f}) even.push_back(make("e", 1, std::vector<float>(9, x)));
  EXPECT_EQ(flat(aggregate_by({.rule = "median"}, odd)), std::vector<float>(9, 3));
  EXPECT_EQ(flat(aggregate_by({.rule = "median"}, even)), std::vector<float>(9, 2.5));
  // Per coordinate, not per update: the median of each column can come from different updates.
  const std::vector<Update> mixed = {make("a", 1, {1, 9, 5, 0, 0, 0, 0, 0, 0}), make("b", 1, {5, 1, 9, 0, 0, 0, 0, 0, 0}),
                                     make("c", 1, {9, 5, 1, 0, 0, 0, 0, 0, 0})};
  EXPECT_EQ(flat(aggregate_by({.rule = "median"}, mixed)), (std::vector<float>{5, 5, 5, 0, 0, 0, 0, 0, 0}));
}

// With at most k attackers among n and k values cut from each end (trimmed mean), or fewer than
// n/2 attackers (median), every coordinate of the result lies within the honest values' range
// (Yin et al. 2018) — whatever the attackers send. FedAvg does not.
TEST(RobustRules, OutvoteScaledAndSignFlippedAttackers) {
  struct Case {
    int honest, attackers;
    StrategyConfig rule;
  };
  const std::vector<Case> cases = {
      {4, 1, {.rule = "trimmed_mean", .trim = 0.2}},  // n = 5: one cut from each end
      {8, 2, {.rule = "trimmed_mean", .trim = 0.2}},  // n = 10: two cut
      {4, 1, {.rule = "median"}},
      {4, 3, {.rule = "median"}},                     // n = 7, 3 attackers: still a minority
  };
  for (Attack attack : {Attack::scaled, Attack::sign_flipped}) {
    for (const Case& c : cases) {
      SCOPED_TRACE("attack " + std::to_string(static_cast<int>(attack)) + ", rule " + c.rule.rule + ", " +
                   std::to_string(c.honest) + " honest, " + std::to_string(c.attackers) + " attackers");
      Rng rng(42 + c.honest + c.attackers);
      const std::vector<float> model = centre(rng);
      std::vector<Update> updates;
      for (int i = 0; i < c.honest; ++i) updates.push_back(honest(node("h", i), model, 0.05, rng));
      for (int i = 0; i < c.attackers; ++i) updates.push_back(attacker(node("x", i), updates[i], attack));
      EXPECT_TRUE(within_honest_range(aggregate_by(c.rule, updates), updates, c.honest));
      EXPECT_FALSE(within_honest_range(aggregate_by({.rule = "fedavg"}, updates), updates, c.honest));
      // Order does not matter: attackers first gives the same values.
      std::vector<Update> attackers_first = updates;
      std::rotate(attackers_first.begin(), attackers_first.begin() + c.honest, attackers_first.end());
      EXPECT_EQ(flat(aggregate_by(c.rule, attackers_first)), flat(aggregate_by(c.rule, updates)));
    }
  }
}

// Too many attackers for the trim: the attackers move the result out of the honest range, which
// shows that the test above can fail.
TEST(RobustRules, TooLittleTrimLetsAnAttackerThrough) {
  Rng rng(3);
  const std::vector<float> model = centre(rng);
  std::vector<Update> updates;
  for (int i = 0; i < 4; ++i) updates.push_back(honest(node("h", i), model, 0.05, rng));
  updates.push_back(attacker("x0", updates[0], Attack::scaled));
  updates.push_back(attacker("x1", updates[1], Attack::scaled));
  EXPECT_FALSE(within_honest_range(aggregate_by({.rule = "trimmed_mean", .trim = 0.1}, updates), updates, 4));  // cuts 0
  EXPECT_FALSE(within_honest_range(aggregate_by({.rule = "trimmed_mean", .trim = 0.2}, updates), updates, 4));  // cuts 1 of 2
  EXPECT_TRUE(within_honest_range(aggregate_by({.rule = "trimmed_mean", .trim = 0.34}, updates), updates, 4));  // cuts 2
}

// ---- Krum ----------------------------------------------------------------------------------------

TEST(Krum, ScoresBySquaredDistancesToNearestNeighbours) {
  // Scalars 0, 1, 10 in every coordinate of 9; f = 0, so each scores its 1 nearest other:
  // 0 → 9·1, 1 → 9·1, 10 → 9·81. A tie goes to the first sent.
  const std::vector<Update> updates = {make("a", 1, std::vector<float>(9, 0)), make("b", 2, std::vector<float>(9, 1)),
                                       make("c", 3, std::vector<float>(9, 10))};
  const Update r = aggregate_by({.rule = "krum", .byzantine = 0}, updates);
  EXPECT_EQ(flat(r), flat(updates[0]));
  EXPECT_EQ(r.samples, 1);
  EXPECT_EQ(r.from, "");
  // Multi-Krum, m = 2: a and b, weighted 1 : 2.
  const Update m = aggregate_by({.rule = "krum", .byzantine = 0, .multi = 2}, updates);
  for (float x : flat(m)) EXPECT_FLOAT_EQ(x, 2.0f / 3.0f);
  EXPECT_EQ(m.samples, 3);
}

TEST(Krum, PicksAnHonestUpdateAndMultiKrumAveragesTheHonest) {
  for (Attack attack : {Attack::scaled, Attack::sign_flipped}) {
    for (int f : {1, 2}) {
      SCOPED_TRACE("attack " + std::to_string(static_cast<int>(attack)) + ", f = " + std::to_string(f));
      const int n = 2 * f + 3, honest_count = n - f;
      Rng rng(11 + f);
      const std::vector<float> model = centre(rng);
      std::vector<Update> updates;
      for (int i = 0; i < honest_count; ++i) updates.push_back(honest(node("h", i), model, 0.05, rng));
      for (int i = 0; i < f; ++i) updates.push_back(attacker(node("x", i), updates[i], attack));
      std::rotate(updates.begin(), updates.begin() + honest_count, updates.end());  // attackers first
      const std::vector<Update> honest_only(updates.begin() + f, updates.end());

      const Update r = aggregate_by({.rule = "krum", .byzantine = f}, updates);
      const bool is_honest = std::any_of(honest_only.begin(), honest_only.end(), [&](const Update& h) {
        return flat(h) == flat(r) && h.samples == r.samples;
      });
      EXPECT_TRUE(is_honest);

      // m = n − f: exactly the honest ones, weighted by samples, i.e. their FedAvg.
      const Update m = aggregate_by({.rule = "krum", .byzantine = f, .multi = honest_count}, updates);
      const std::vector<float> want = flat(fedavg(honest_only));
      const std::vector<float> got = flat(m);
      for (std::size_t k = 0; k < got.size(); ++k) EXPECT_FLOAT_EQ(got[k], want[k]);
      EXPECT_EQ(m.samples, fedavg(honest_only).samples);
    }
  }
}

TEST(Krum, NeedsNAtLeast2fPlus3) {
  std::vector<Update> updates;
  for (int i = 0; i < 4; ++i) updates.push_back(make(node("n", i), 1, std::vector<float>(9, static_cast<float>(i))));
  EXPECT_EQ(error_of([&] { aggregate_by({.rule = "krum", .byzantine = 1}, updates); }),
            "krum: n = 4 updates with f = 1 byzantine; Krum needs n >= 2f + 3 = 5");
  EXPECT_EQ(error_of([&] { aggregate_by({.rule = "krum", .byzantine = 0}, updates); }), "no error");
  // Settings out of range are refused when the strategy is made.
  EXPECT_EQ(error_of([&] { aggregate_by({.rule = "krum", .byzantine = -1}, updates); }), "krum: byzantine = -1 must be >= 0");
  EXPECT_EQ(error_of([&] { aggregate_by({.rule = "krum", .byzantine = 0, .multi = 0}, updates); }), "krum: multi = 0 must be >= 1");
}

// Multi-Krum with m > n − f averages the n − f best: here, with f = 1 of n = 5, the four that lie
// together, never the outlier, weighted by samples.
TEST(Krum, MultiAboveNMinusFAveragesTheNMinusFBest) {
  std::vector<Update> updates;
  for (int i = 0; i < 4; ++i) updates.push_back(make(node("n", i), 1 + i, std::vector<float>(9, static_cast<float>(i))));
  updates.push_back(make("x", 100, std::vector<float>(9, 1000)));
  const std::vector<Update> best(updates.begin(), updates.begin() + 4);
  for (int m : {4, 5, 100}) {
    SCOPED_TRACE("m = " + std::to_string(m));
    const Update r = aggregate_by({.rule = "krum", .byzantine = 1, .multi = m}, updates);
    EXPECT_EQ(flat(r), flat(fedavg(best)));  // (0·1 + 1·2 + 2·3 + 3·4) / 10 = 2 everywhere
    EXPECT_EQ(flat(r), std::vector<float>(9, 2));
    EXPECT_EQ(r.samples, 10);
  }
  // With f = 0 every update is among the n − f = n best: Multi-Krum with m ≥ n is FedAvg of all.
  const std::vector<float> all = flat(aggregate_by({.rule = "krum", .byzantine = 0, .multi = 6}, updates));
  const std::vector<float> want = flat(fedavg(updates));
  for (std::size_t k = 0; k < all.size(); ++k) EXPECT_FLOAT_EQ(all[k], want[k]);
}

// ---- make_strategy and FedProx -------------------------------------------------------------------

TEST(MakeStrategy, NamesEachStrategyAndSendsMu) {
  // (One call per case, not a table of them: GCC 12 warns falsely, -Wmaybe-uninitialized, about a
  // std::initializer_list of structs that hold a StrategyConfig.)
  const auto check = [](const StrategyConfig& config, const std::string& name) {
    SCOPED_TRACE(config.rule + ", mu " + std::to_string(config.mu));
    const std::unique_ptr<Strategy> s = make_strategy(config);
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->name(), name);
    for (int round : {1, 2, 10}) EXPECT_EQ(s->configure_round(round).mu, config.mu);
  };
  check({}, "fedavg");
  check({.rule = "fedavg", .mu = 0.01}, "fedprox");
  check({.rule = "trimmed_mean"}, "trimmed_mean");
  check({.rule = "trimmed_mean", .mu = 0.01}, "trimmed_mean");  // a robust rule keeps its name, sites still get mu
  check({.rule = "median"}, "median");
  check({.rule = "median", .mu = 0.5}, "median");
  check({.rule = "krum"}, "krum");
  check({.rule = "krum", .mu = 0.01, .byzantine = 0, .multi = 3}, "krum");
}

TEST(MakeStrategy, RefusesAnUnknownRuleNamingIt) {
  EXPECT_EQ(error_of([] { make_strategy({.rule = "fedavgg"}); }),
            "make_strategy: unknown rule 'fedavgg' (fedavg, trimmed_mean, median or krum)");
  EXPECT_EQ(error_of([] { make_strategy({.rule = ""}); }), "make_strategy: unknown rule '' (fedavg, trimmed_mean, median or krum)");
  // FedProx is fedavg with mu > 0, not a rule of its own.
  EXPECT_EQ(error_of([] { make_strategy({.rule = "fedprox", .mu = 0.01}); }),
            "make_strategy: unknown rule 'fedprox' (fedavg, trimmed_mean, median or krum)");
}

TEST(MakeStrategy, RefusesSettingsOutOfRangeNamingRuleAndValue) {
  EXPECT_EQ(error_of([] { make_strategy({.rule = "trimmed_mean", .trim = 0.5}); }), "trimmed_mean: trim 0.5 must be in [0, 0.5)");
  EXPECT_EQ(error_of([] { make_strategy({.rule = "trimmed_mean", .trim = -0.1}); }), "trimmed_mean: trim -0.1 must be in [0, 0.5)");
  EXPECT_EQ(error_of([] { make_strategy({.rule = "trimmed_mean", .trim = std::numeric_limits<double>::quiet_NaN()}); }),
            "trimmed_mean: trim nan must be in [0, 0.5)");
  EXPECT_EQ(error_of([] { make_strategy({.rule = "trimmed_mean", .trim = 0.0}); }), "no error");
  EXPECT_EQ(error_of([] { make_strategy({.rule = "trimmed_mean", .trim = 0.49}); }), "no error");
  EXPECT_EQ(error_of([] { make_strategy({.rule = "krum", .byzantine = -1}); }), "krum: byzantine = -1 must be >= 0");
  EXPECT_EQ(error_of([] { make_strategy({.rule = "krum", .byzantine = 0}); }), "no error");
  EXPECT_EQ(error_of([] { make_strategy({.rule = "krum", .multi = 0}); }), "krum: multi = 0 must be >= 1");
  EXPECT_EQ(error_of([] { make_strategy({.rule = "krum", .multi = -3}); }), "krum: multi = -3 must be >= 1");
  EXPECT_EQ(error_of([] { make_strategy({.rule = "fedavg", .mu = -1}); }), "fedavg: mu -1 must be a finite number >= 0");
  EXPECT_EQ(error_of([] { make_strategy({.rule = "median", .mu = std::numeric_limits<double>::infinity()}); }),
            "median: mu inf must be a finite number >= 0");
  // Only the chosen rule's settings are checked: Krum's and the trim mean nothing to FedAvg.
  EXPECT_EQ(error_of([] { make_strategy({.rule = "fedavg", .trim = 0.9, .byzantine = -1, .multi = 0}); }), "no error");
}

TEST(FedProx, AggregatesAsFedAvgAndSendsMu) {
  Rng rng(5);
  std::vector<Update> updates;
  for (int i = 0; i < 4; ++i) {
    std::vector<float> v(9);
    for (float& x : v) x = static_cast<float>(rng.uniform() * 4 - 2);
    updates.push_back(make(node("n", i), 1 + rng.below(100), v));
    updates.back().tensors.push_back({"bn.running_mean", {1}, {v[0]}});  // pooled the same way too
    updates.back().tensors.push_back({"bn.running_var", {1}, {1 + v[1] * v[1]}});
  }
  const std::unique_ptr<Strategy> prox = make_strategy({.mu = 0.01});
  const std::unique_ptr<Strategy> avg = make_strategy({});
  EXPECT_EQ(prox->name(), "fedprox");
  EXPECT_EQ(avg->name(), "fedavg");
  for (int round : {1, 2, 3}) {
    EXPECT_EQ(prox->configure_round(round).mu, 0.01);
    EXPECT_EQ(avg->configure_round(round).mu, 0);
  }
  const Update p = prox->aggregate(updates), a = avg->aggregate(updates);
  EXPECT_EQ(p.from, "");
  EXPECT_EQ(p.samples, a.samples);
  ASSERT_EQ(p.tensors.size(), a.tensors.size());
  for (std::size_t t = 0; t < p.tensors.size(); ++t) {
    EXPECT_EQ(p.tensors[t].name, a.tensors[t].name);
    EXPECT_EQ(p.tensors[t].shape, a.tensors[t].shape);
    EXPECT_EQ(p.tensors[t].values, a.tensors[t].values);  // exactly
  }
  const std::vector<Update> zero = {make("a", 0, std::vector<float>(9, 1)), make("b", 0, std::vector<float>(9, 2))};
  EXPECT_EQ(error_of([&] { prox->aggregate(zero); }), "fedprox: all 2 updates have 0 samples, so there is nothing to weight by");
}

// ---- validation ----------------------------------------------------------------------------------

TEST(Validation, MessagesNameTheSenderAndTheTensor) {
  const Update a = make("node-a", 10, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  auto err = [&](const Update& b) {
    const std::vector<Update> updates = {a, b};
    return error_of([&] { fedavg(updates); });
  };
  Update b = a;
  b.from = "node-b";
  EXPECT_EQ(err(b), "no error");

  Update missing = b;
  missing.tensors.pop_back();
  EXPECT_EQ(err(missing), "update from 'node-b' lacks tensor 'b' that the update from 'node-a' has");
  Update missing_first = b;
  missing_first.tensors.erase(missing_first.tensors.begin());
  EXPECT_EQ(err(missing_first), "update from 'node-b' lacks tensor 'w' that the update from 'node-a' has");

  Update extra = b;
  extra.tensors.push_back({"extra", {1}, {0}});
  EXPECT_EQ(err(extra), "update from 'node-b' has tensor 'extra' that the update from 'node-a' lacks");
  Update renamed = b;
  renamed.tensors[1].name = "bias";
  EXPECT_EQ(err(renamed), "update from 'node-b' lacks tensor 'b' that the update from 'node-a' has");

  Update swapped = b;
  std::swap(swapped.tensors[0], swapped.tensors[1]);
  EXPECT_EQ(err(swapped), "update from 'node-b' has tensor 'b' at position 0 where the update from 'node-a' has 'w'");

  Update reshaped = b;
  reshaped.tensors[0].shape = {3, 2};
  EXPECT_EQ(err(reshaped), "update from 'node-b': tensor 'w' has shape [3, 2], but the update from 'node-a' has [2, 3]");

  Update short_values = b;
  short_values.tensors[1].values.pop_back();
  EXPECT_EQ(err(short_values), "update from 'node-b': tensor 'b' has 2 values, but its shape [3] holds 3");

  Update nan = b;
  nan.tensors[0].values[4] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(err(nan), "update from 'node-b': tensor 'w' holds NaN at index 4");
  Update inf = b;
  inf.tensors[1].values[0] = std::numeric_limits<float>::infinity();
  EXPECT_EQ(err(inf), "update from 'node-b': tensor 'b' holds inf at index 0");
  inf.tensors[1].values[0] = -std::numeric_limits<float>::infinity();
  EXPECT_EQ(err(inf), "update from 'node-b': tensor 'b' holds -inf at index 0");

  Update negative = b;
  negative.samples = -3;
  EXPECT_EQ(err(negative), "update from 'node-b': samples -3 is not a finite number >= 0");
  negative.samples = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(err(negative), "update from 'node-b': samples nan is not a finite number >= 0");
}

TEST(Validation, TheFirstUpdateIsCheckedToo) {
  Update a = make("node-a", 10, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  a.tensors[1].values[2] = std::numeric_limits<float>::quiet_NaN();
  const std::vector<Update> updates = {a, make("node-b", 10, std::vector<float>(9, 0))};
  for (const char* rule : {"fedavg", "trimmed_mean", "median", "krum"})
    for (double mu : {0.0, 0.1}) {  // with mu > 0, fedavg is FedProx
      SCOPED_TRACE(std::string(rule) + ", mu " + std::to_string(mu));
      EXPECT_EQ(error_of([&] { aggregate_by({.rule = rule, .mu = mu, .byzantine = 0}, updates); }),
                "update from 'node-a': tensor 'b' holds NaN at index 2");
      EXPECT_EQ(error_of([&] { aggregate_by({.rule = rule, .mu = mu, .byzantine = 0}, {}); }), "aggregate: no updates");
    }

  Update twice = make("node-a", 1, std::vector<float>(9, 0));
  twice.tensors[1].name = "w";
  twice.tensors[1].shape = {2, 3};
  twice.tensors[1].values.resize(6);
  const std::vector<Update> dup = {twice};
  EXPECT_EQ(error_of([&] { fedavg(dup); }), "update from 'node-a' has tensor 'w' twice");

  Update negative_dim = make("node-a", 1, std::vector<float>(9, 0));
  negative_dim.tensors[1].shape = {-3};
  const std::vector<Update> neg = {negative_dim};
  EXPECT_EQ(error_of([&] { fedavg(neg); }), "update from 'node-a': tensor 'b' has a negative dimension in shape [-3]");

}

// A server checks each update on receipt against the global model: the poisoned sender is refused
// by name, and the round goes on with the others.
TEST(Validation, AServerRefusesOnePoisonedSenderAndAggregatesTheRest) {
  const Update global = make("server", 0, std::vector<float>(9, 0));
  std::vector<Update> received = {make("n1", 10, std::vector<float>(9, 1)), make("n2", 10, std::vector<float>(9, 2)),
                                  make("n3", 20, std::vector<float>(9, 3))};
  received[1].tensors[0].values[0] = std::numeric_limits<float>::quiet_NaN();
  std::vector<Update> accepted;
  std::vector<std::string> refused;
  for (const Update& u : received) {
    const std::string e = error_of([&] { check_update(u, global); });
    if (e == "no error")
      accepted.push_back(u);
    else
      refused.push_back(e);
  }
  EXPECT_EQ(refused, std::vector<std::string>{"update from 'n2': tensor 'w' holds NaN at index 0"});
  EXPECT_EQ(flat(fedavg(accepted)), std::vector<float>(9, (1 * 10 + 3 * 20) / 30.0f));
}

TEST(L2Distance, IsEuclideanOverAllTensors) {
  const Update a = make("a", 1, {0, 0, 0, 0, 0, 0, 0, 0, 0});
  const Update b = make("b", 1, {3, 0, 0, 0, 0, 0, 0, 0, 4});
  EXPECT_DOUBLE_EQ(l2_distance(a, b), 5.0);
  EXPECT_DOUBLE_EQ(l2_distance(b, a), 5.0);
  EXPECT_DOUBLE_EQ(l2_distance(a, a), 0.0);
  Update c = b;
  c.tensors[0].shape = {6};
  EXPECT_EQ(error_of([&] { l2_distance(a, c); }), "update from 'b': tensor 'w' has shape [6], but the update from 'a' has [2, 3]");
}

}  // namespace
}  // namespace gng::fed

namespace gng::fed {
namespace {

TEST(Wire, EncodeDecodeRoundTripAndMalformedInput) {
  Update u{"node-a", 123.5, {{"conv.weight", {2, 1, 3}, {1, -2, 3.5f, 4, 5, 6}}, {"bias", {2}, {0.25f, -0.5f}}}};
  const std::string b = encode(u);
  const Update v = decode(b);
  EXPECT_EQ(v.from, "node-a");
  EXPECT_EQ(v.samples, 123.5);
  ASSERT_EQ(v.tensors.size(), 2u);
  EXPECT_EQ(v.tensors[0].name, "conv.weight");
  EXPECT_EQ(v.tensors[0].shape, (std::vector<int64_t>{2, 1, 3}));
  EXPECT_EQ(v.tensors[0].values, u.tensors[0].values);
  EXPECT_EQ(v.tensors[1].values, u.tensors[1].values);
  for (std::size_t n = 0; n < b.size(); ++n) {
    const std::string e = test::error_of([&] { decode(std::string_view(b).substr(0, n)); });
    EXPECT_TRUE(e.rfind("truncated update", 0) == 0 || e.rfind("not a gng model update", 0) == 0) << n << ": " << e;
  }
  EXPECT_EQ(test::error_of([&] { decode(b + "x"); }), "update has 1 trailing bytes");
  std::string huge = b;
  huge[huge.size() - 4 * 2 - 8 + 7] = '\x7f';  // the second tensor claims 127 values with 2 present
  EXPECT_NE(test::error_of([&] { decode(huge); }).find("truncated update"), std::string::npos);
}

}  // namespace
}  // namespace gng::fed

namespace gng::fed {
namespace {

TEST(ScaledFrom, IsTheReferencePlusTheScaledDelta) {
  const Update ref{"g", 1, {{"w", {2}, {1, 2}}}};
  const Update u{"a", 3, {{"w", {2}, {2, 0}}}};
  const Update p = scaled_from(u, ref, -10);
  EXPECT_EQ(p.from, "a");
  EXPECT_EQ(p.tensors[0].values, (std::vector<float>{-9, 22}));
  EXPECT_NE(test::error_of([&] { scaled_from(Update{"b", 1, {{"v", {2}, {1, 2}}}}, ref, 2); }), "no error");
}

}  // namespace
}  // namespace gng::fed
