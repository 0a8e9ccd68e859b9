#include "space/space.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <set>

#include "core/error.h"
#include "core/rng.h"
#include "support/random_qubo.h"

namespace gng {
namespace {

// The header's example, small enough to check every one of its 2^11 bit vectors.
const char* kSmall = R"(family: toy
decisions:
  residual: flag
  activation: {one_of: [relu, gelu, silu]}
  attention: flag
  heads: {one_of: [1, 2, 4], when: attention}
  width: {ordinal: [16, 32, 48, 64]}
constraints:
  - {requires: [heads=4, "width>=32"]}
  - {excludes: [residual, "width>=64"]}
)";

std::string load_error(const std::string& yaml) {
  try {
    SearchSpace::from_yaml(yaml, "s.yaml");
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

std::string finalize_error(SearchSpace sp) {
  try {
    sp.finalize();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

Bits bits_of(uint64_t code, std::size_t n) {
  Bits x(n);
  for (std::size_t i = 0; i < n; ++i) x[i] = (code >> i) & 1;
  return x;
}

// The small space's valid designs, listed from the rules as a person reads them (not from the bits).
std::vector<Design> small_designs_by_hand() {
  std::vector<Design> out;
  for (std::string residual : {"false", "true"})
    for (std::string act : {"relu", "gelu", "silu"})
      for (std::string heads : {"off", "1", "2", "4"})
        for (double width : {16, 32, 48, 64}) {
          if (heads == "4" && width < 32) continue;
          if (residual == "true" && width >= 64) continue;
          Design d;
          d.values = {{"residual", residual}, {"activation", act}, {"attention", heads == "off" ? "false" : "true"}};
          if (heads != "off") d.values.emplace_back("heads", heads);
          d.values.emplace_back("width", std::to_string(int(width)));
          out.push_back(d);
        }
  return out;
}

TEST(Space, ReadsDecisionsInOrderWithTheirBits) {
  const SearchSpace sp = SearchSpace::from_yaml(kSmall);
  EXPECT_EQ(sp.family(), "toy");
  ASSERT_EQ(sp.decisions().size(), 5u);
  EXPECT_EQ(sp.bits(), 1u + 3 + 1 + 3 + 3);
  const auto& heads = sp.decisions()[3];
  EXPECT_EQ(heads.name, "heads");
  EXPECT_EQ(heads.kind, DecisionKind::one_of);
  EXPECT_EQ(heads.when, "attention");
  EXPECT_EQ(heads.first_bit, 5u);
  EXPECT_EQ(heads.values, (std::vector<std::string>{"1", "2", "4"}));
  EXPECT_EQ(sp.decisions()[0].values, (std::vector<std::string>{"false", "true"}));
  EXPECT_EQ(sp.decisions()[4].kind, DecisionKind::ordinal);
  EXPECT_EQ(sp.decisions()[4].bits, 3u);
  std::vector<std::string> names;
  for (std::size_t b = 0; b < sp.bits(); ++b) names.push_back(sp.bit_name(b));
  EXPECT_EQ(names,
            (std::vector<std::string>{"residual", "activation=relu", "activation=gelu", "activation=silu", "attention",
                                      "heads=1", "heads=2", "heads=4", "width>=32", "width>=48", "width>=64"}));
  EXPECT_THROW(sp.bit_name(11), Error);
  // Every one-of has at most one bit set; only the ungated ones exactly one (heads has none
  // without attention), which is what QAOA's XY mixer may keep to.
  using Groups = std::vector<std::vector<uint32_t>>;
  EXPECT_EQ(sp.one_of_groups(), (Groups{{1, 2, 3}, {5, 6, 7}}));
  EXPECT_EQ(sp.one_hot_groups(), (Groups{{1, 2, 3}}));
}

TEST(Space, ValidBitsAreExactlyTheDesignsTheRulesAllow) {
  SearchSpace sp = SearchSpace::from_yaml(kSmall);
  sp.finalize();
  const auto by_hand = small_designs_by_hand();
  std::set<std::string> expected;  // bit vectors as strings of 0/1 bytes
  for (const Design& d : by_hand) {
    const Bits x = sp.encode(d);
    expected.insert(std::string(x.begin(), x.end()));
    const auto back = sp.decode(x);
    ASSERT_TRUE(back) << d.to_json();
    EXPECT_EQ(*back, d);
  }
  EXPECT_EQ(expected.size(), by_hand.size());
  EXPECT_EQ(sp.count_feasible(), by_hand.size());
  std::size_t valid = 0;
  for (uint64_t c = 0; c < (1u << sp.bits()); ++c) {
    const Bits x = bits_of(c, sp.bits());
    std::string why;
    const bool ok = sp.decode(x, &why).has_value();
    valid += ok;
    EXPECT_EQ(ok, expected.count(std::string(x.begin(), x.end())) == 1) << c;
    const double p = sp.penalty().energy(x);
    if (ok)
      EXPECT_NEAR(p, 0.0, 1e-12) << c;
    else
      EXPECT_GE(p, 1.0 - 1e-12) << c << ": " << why;
  }
  EXPECT_EQ(valid, by_hand.size());
}

TEST(Space, EachLiteralSelectsTheValuesItSays) {
  const std::vector<double> widths{16, 32, 48, 64};
  struct Case {
    std::string literal;
    std::function<bool(const Design&)> holds;
  };
  std::vector<Case> cases = {
      {"width>=32", [](const Design& d) { return d.number("width", 0) >= 32; }},
      {"width>48", [](const Design& d) { return d.number("width", 0) > 48; }},
      {"width<=48", [](const Design& d) { return d.number("width", 0) <= 48; }},
      {"width < 32", [](const Design& d) { return d.number("width", 0) < 32; }},
      {"width>=32.0", [](const Design& d) { return d.number("width", 0) >= 32; }},
      {"mode=b", [](const Design& d) { return d.text("mode", "") == "b"; }},
      {"g", [](const Design& d) { return d.flag("g"); }},
      {"!g", [](const Design& d) { return !d.flag("g"); }},
      {"g=true", [](const Design& d) { return d.flag("g"); }},
      {"g=false", [](const Design& d) { return !d.flag("g"); }},
  };
  for (const Case& c : cases) {
    // requires [f, L]: every valid design with f set satisfies L, and every design that satisfies L
    // is there (with f set).
    const std::string yaml =
        "family: t\ndecisions:\n  f: flag\n  g: flag\n  mode: {one_of: [a, b, c]}\n"
        "  width: {ordinal: [16, 32, 48, 64]}\nconstraints:\n  - {requires: [f, \"" +
        c.literal + "\"]}\n";
    SearchSpace sp = SearchSpace::from_yaml(yaml);
    sp.finalize();
    std::size_t with_f = 0, holding = 0;
    for (uint64_t code = 0; code < (1u << sp.bits()); ++code) {
      const auto d = sp.decode(bits_of(code, sp.bits()));
      if (!d) continue;
      if (!d->flag("f")) {  // unrestricted: count the designs that satisfy the literal
        holding += c.holds(*d);
        continue;
      }
      ++with_f;
      EXPECT_TRUE(c.holds(*d)) << c.literal << ": " << d->to_json();
    }
    EXPECT_EQ(with_f, holding) << c.literal;
    EXPECT_GT(with_f, 0u) << c.literal;
    EXPECT_LT(with_f, 2u * 3 * 4) << c.literal;  // the literal really restricts
  }
}

TEST(Space, DecodeSaysWhyBitsAreInvalid) {
  SearchSpace sp = SearchSpace::from_yaml(kSmall);
  auto why = [&](Bits x) {
    std::string w = "valid";
    sp.decode(x, &w);
    return w;
  };
  //                 res  relu gelu silu att  h1 h2 h4 w32 w48 w64
  EXPECT_EQ(why(Bits{0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0}), "activation: 2 of 3 one-of bits set");
  EXPECT_EQ(why(Bits{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}), "activation: 0 of 3 one-of bits set");
  EXPECT_EQ(why(Bits{0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0}), "heads: 1 of 3 one-of bits set while 'attention' is off");
  EXPECT_EQ(why(Bits{0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0}), "heads: 0 of 3 one-of bits set");
  EXPECT_EQ(why(Bits{0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1}), "width: bit 'width>=64' set without 'width>=48'");
  EXPECT_EQ(why(Bits{0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 0}), "constraint 'requires heads=4, width>=32' broken");
  EXPECT_EQ(why(Bits{1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1}), "constraint 'excludes residual, width>=64' broken");
  EXPECT_EQ(why(Bits{0, 1, 0}), "expected 11 bits, got 3");
  EXPECT_EQ(why(Bits{0, 1, 0, 0, 1, 0, 0, 1, 1, 0, 0}), "valid");

  sp.set_budget("params", 40);
  EXPECT_THROW(sp.decode(Bits{0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0}), Error);  // a budget and no cost model
  sp.set_cost_model([](const Design& d) { return std::map<std::string, double>{{"params", d.number("width", 0)}}; });
  EXPECT_EQ(why(Bits{0, 1, 0, 0, 0, 0, 0, 0, 1, 1, 0}), "budget params: 48 > 40");
  EXPECT_EQ(why(Bits{0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0}), "valid");
  sp.set_budget("flops", 10);
  try {
    sp.decode(Bits{0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0});
    ADD_FAILURE() << "a budget on a metric the model does not report must be an error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "the cost model of family 'toy' reports no metric 'flops' (budget)");
  }
}

TEST(Space, EncodeRefusesWhatItCannotEncode) {
  const SearchSpace sp = SearchSpace::from_yaml(kSmall);
  auto error = [&](std::vector<std::pair<std::string, std::string>> v) {
    try {
      sp.encode(Design{std::move(v)});
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(error({{"activation", "relu"}, {"width", "16"}, {"depth", "2"}}), "design: unknown decision 'depth'");
  EXPECT_EQ(error({{"activation", "tanh"}, {"width", "16"}}), "design: 'activation' has no value 'tanh'");
  EXPECT_EQ(error({{"activation", "relu"}}), "design: no value for 'width'");
  EXPECT_EQ(error({{"activation", "relu"}, {"heads", "2"}, {"width", "16"}}),
            "design: 'heads' = '2' is set but 'attention' is off");
  EXPECT_EQ(error({{"residual", "yes"}, {"activation", "relu"}, {"width", "16"}}),
            "design: flag 'residual' must be true or false, got 'yes'");
  // Absent flags are off; ordinal values match by number.
  EXPECT_EQ(sp.encode(Design{{{"activation", "silu"}, {"width", "48.0"}}}), (Bits{0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0}));
}

TEST(Space, WithPenaltyMinimumIsTheBestValidDesign) {
  SearchSpace sp = SearchSpace::from_yaml(kSmall);
  sp.finalize();
  const std::size_t n = sp.bits();
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    const Qubo objective = test::random_qubo(n, seed, 0.5, 10.0, 3.0);
    const Qubo q = sp.with_penalty(objective);
    double best_all = std::numeric_limits<double>::infinity(), best_valid = best_all;
    Bits argmin;
    for (uint64_t c = 0; c < (1u << n); ++c) {
      const Bits x = bits_of(c, n);
      const double e = q.energy(x);
      if (e < best_all) best_all = e, argmin = x;
      if (sp.decode(x)) best_valid = std::min(best_valid, objective.energy(x));
    }
    EXPECT_TRUE(sp.decode(argmin)) << "seed " << seed;
    EXPECT_NEAR(best_all, best_valid, 1e-9) << "seed " << seed;
  }
  EXPECT_THROW(sp.with_penalty(Qubo(3, {1, 2, 3}, {})), Error);
}

// A cost model over the small space: not monotone, so that cuts come from enumeration alone.
std::map<std::string, double> toy_cost(const Design& d) {
  const double w = d.number("width", 0), h = d.number("heads", 0);
  const double act = d.text("activation", "") == "gelu" ? 30 : 0;
  return {{"params", w * (1 + h) + act + (d.flag("residual") ? 5 : 0)}, {"flops", std::fmod(w * 7 + h * 13, 50)}};
}

TEST(Budgets, CutsNeverPenaliseAFeasibleDesignAndDoCutOthers) {
  SearchSpace sp = SearchSpace::from_yaml(std::string(kSmall) + "budgets: {params: 120, flops: 45}\n");
  sp.set_cost_model(toy_cost);
  const Qubo before = sp.penalty();
  sp.finalize();
  std::size_t valid = 0, cut = 0, over_budget = 0;
  for (uint64_t c = 0; c < (1u << sp.bits()); ++c) {
    const Bits x = bits_of(c, sp.bits());
    std::string why;
    if (sp.decode(x, &why)) {
      ++valid;
      EXPECT_NEAR(sp.penalty().energy(x), 0.0, 1e-12) << c;  // exact-safe
    } else if (before.energy(x) < 0.5) {                     // breaks only a budget
      ++over_budget;
      EXPECT_EQ(why.rfind("budget ", 0), 0u) << why;
      const double p = sp.penalty().energy(x);
      EXPECT_TRUE(p < 1e-12 || p >= 1 - 1e-12) << p;
      cut += p >= 1 - 1e-12;
    }
  }
  EXPECT_EQ(sp.count_feasible(), valid);
  EXPECT_GT(valid, 0u);
  EXPECT_GT(over_budget, 0u);
  EXPECT_GT(cut, 0u);  // the cuts catch some of the designs over budget

  // Changing a budget drops the cuts (they could cut designs the new budget allows).
  sp.set_budget("params", 1e9);
  for (uint64_t c = 0; c < (1u << sp.bits()); ++c)
    ASSERT_EQ(sp.penalty().energy(bits_of(c, sp.bits())), before.energy(bits_of(c, sp.bits()))) << c;
}

TEST(Budgets, CostsMonotoneInTwoDecisionsAreCutExactly) {
  // params = width · depth: the designs over budget are exactly those with width >= a and depth >= b
  // for some corner (a, b), each a pair of thermometer literals, so the cuts catch all of them and
  // with_penalty's minimum is the best design within budget.
  SearchSpace sp = SearchSpace::from_yaml(
      "family: t\ndecisions:\n  wide: flag\n  width: {ordinal: [1, 2, 3, 4]}\n  depth: {ordinal: [1, 2, 3]}\n"
      "  mode: {one_of: [a, b]}\nbudgets: {params: 6}\n");
  sp.set_cost_model([](const Design& d) {
    return std::map<std::string, double>{{"params", d.number("width", 0) * d.number("depth", 0)}};
  });
  sp.finalize();
  const std::size_t n = sp.bits();
  std::size_t over = 0;
  for (uint64_t c = 0; c < (1u << n); ++c) {
    const Bits x = bits_of(c, n);
    std::string why;
    const bool ok = sp.decode(x, &why).has_value();
    over += why.rfind("budget ", 0) == 0;
    EXPECT_EQ(ok, sp.penalty().energy(x) < 0.5) << c << " " << why;
  }
  EXPECT_GT(over, 0u);
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    const Qubo objective = test::random_qubo(n, 100 + seed, 0.6, 5.0, 0.0);
    const Qubo q = sp.with_penalty(objective);
    double best_all = std::numeric_limits<double>::infinity(), best_valid = best_all;
    Bits argmin;
    for (uint64_t c = 0; c < (1u << n); ++c) {
      const Bits x = bits_of(c, n);
      if (q.energy(x) < best_all) best_all = q.energy(x), argmin = x;
      if (sp.decode(x)) best_valid = std::min(best_valid, objective.energy(x));
    }
    EXPECT_TRUE(sp.decode(argmin));
    EXPECT_NEAR(best_all, best_valid, 1e-9);
  }
}

TEST(Finalize, EmptyFeasibleSetNamesTheConstraintsThatClash) {
  const std::string head = "family: t\ndecisions:\n  a: flag\n  b: flag\n  c: {one_of: [x, y]}\nconstraints:\n";
  // a → b and not (a and b) force a off; ¬a → a forces it on. The unrelated rule is left out.
  EXPECT_EQ(finalize_error(SearchSpace::from_yaml(head + "  - {requires: [a, b]}\n"
                                                         "  - {excludes: [b, c=y]}\n"
                                                         "  - {excludes: [a, b]}\n"
                                                         "  - {requires: [\"!a\", a]}\n",
                                                  "s.yaml")),
            "s.yaml: empty feasible set: constraints 'requires a, b' (line 7), 'excludes a, b' (line 9) and "
            "'requires !a, a' (line 10) cannot all hold together");
  EXPECT_EQ(finalize_error(
                SearchSpace::from_yaml(head + "  - {requires: [c=x, c=y]}\n  - {requires: [c=y, c=x]}\n", "s.yaml")),
            "s.yaml: empty feasible set: constraints 'requires c=x, c=y' (line 7) and 'requires c=y, c=x' (line 8) "
            "cannot all hold together");
}

TEST(Finalize, BudgetThatNothingMeetsNamesTheSmallestCost) {
  SearchSpace sp = SearchSpace::from_yaml(std::string(kSmall) + "budgets: {params: 10, flops: 1000}\n", "s.yaml");
  EXPECT_EQ(finalize_error(sp), "s.yaml: budgets need a cost model for family 'toy' (none set)");
  sp.set_cost_model(toy_cost);
  EXPECT_EQ(finalize_error(sp), "s.yaml: empty feasible set: no design meets budget params <= 10 (smallest: 16)");
  // Each budget alone can be met, both together not: params favour small widths, "size" large.
  sp.set_budget("params", 1000);
  sp.set_budget("size", 1);
  sp.set_cost_model([](const Design& d) {
    const double w = d.number("width", 0);
    return std::map<std::string, double>{{"params", w}, {"flops", 0}, {"size", w >= 64 ? 1 : 2}};
  });
  sp.set_budget("params", 40);
  EXPECT_EQ(finalize_error(sp),
            "s.yaml: empty feasible set: no design meets the budgets flops <= 1000, params <= 40, size <= 1 together");
  sp.set_cost_model([](const Design& d) -> std::map<std::string, double> {
    if (d.number("width", 0) == 48) throw Error("cannot build");
    return {{"params", 0}, {"flops", 0}, {"size", 0}};
  });
  const std::string failed = finalize_error(sp);
  EXPECT_EQ(failed.rfind("the cost model of family 'toy' fails on {\"residual\":", 0), 0u) << failed;
  EXPECT_NE(failed.find("\"width\":\"48\"}: cannot build"), std::string::npos) << failed;
  EXPECT_THROW(sp.set_budget("params", 0), Error);
  EXPECT_THROW(sp.set_budget("params", std::nan("")), Error);
}

TEST(RandomValid, IsUniformOverTheFeasibleSet) {
  SearchSpace sp = SearchSpace::from_yaml(kSmall);
  const std::size_t count = small_designs_by_hand().size();
  // Twice: rejection sampling before finalize(), drawing from the enumerated set after it.
  for (int round = 0; round < 2; ++round) {
    if (round == 1) sp.finalize();
    Rng rng(7 + round);
    std::map<std::string, int> seen;
    const int per = 200;
    for (std::size_t i = 0; i < count * per; ++i) {
      const Bits x = sp.random_valid(rng);
      ASSERT_TRUE(sp.decode(x)) << "round " << round;
      ++seen[std::string(x.begin(), x.end())];
    }
    EXPECT_EQ(seen.size(), count) << "round " << round;
    for (const auto& [x, k] : seen) {  // expected 200 each, σ ≈ 14
      EXPECT_GT(k, per - 70) << "round " << round;
      EXPECT_LT(k, per + 70) << "round " << round;
    }
  }
}

TEST(RandomValid, ThrowsWhenNothingIsFeasible) {
  const SearchSpace sp = SearchSpace::from_yaml(
      "family: t\ndecisions:\n  a: flag\nconstraints:\n  - {requires: [a, \"!a\"]}\n  - {requires: [\"!a\", a]}\n",
      "s.yaml");
  Rng rng(1);
  try {
    sp.random_valid(rng);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "s.yaml: no valid design found in 100000 random draws");
  }
}

TEST(Space, LargeSpacesSkipEnumeration) {
  // 24 flags and a gated one-of: 2^23 · 4 encodings, over the enumeration limit.
  std::string yaml = "family: t\ndecisions:\n";
  for (int i = 0; i < 24; ++i) yaml += "  f" + std::to_string(i) + ": flag\n";
  yaml += "  g: {one_of: [a, b, c], when: f0}\nconstraints:\n  - {requires: [g=c, f1]}\n";
  SearchSpace sp = SearchSpace::from_yaml(yaml);
  EXPECT_EQ(sp.count_feasible(), std::nullopt);
  EXPECT_EQ(sp.count_feasible(1u << 16), std::nullopt);
  sp.finalize();
  Rng rng(3);
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(sp.decode(sp.random_valid(rng)));

  SearchSpace empty =
      SearchSpace::from_yaml(yaml + "  - {requires: [f2, \"!f2\"]}\n  - {requires: [\"!f2\", f2]}\n", "big.yaml");
  EXPECT_EQ(finalize_error(empty),
            "big.yaml: empty feasible set: no design satisfies the constraints and budgets in 100000 random draws "
            "(about 2^25 encodings, too many to enumerate)");
}

TEST(Space, CountFeasibleHonoursTheLimit) {
  const SearchSpace sp = SearchSpace::from_yaml(kSmall);  // 2 · 3 · (1 + 3) · 4 = 96 encodings
  EXPECT_EQ(sp.count_feasible(95), std::nullopt);
  EXPECT_EQ(sp.count_feasible(96), small_designs_by_hand().size());
}

TEST(Design, ReadsValuesStrictly) {
  const Design d{{{"width", "32"}, {"lr", "0.0003"}, {"bad", "3x"}, {"on", "true"}, {"off", "false"}}};
  EXPECT_EQ(d.number("width", 0), 32);
  EXPECT_EQ(d.number("lr", 0), 0.0003);
  EXPECT_EQ(d.number("missing", 7), 7);
  try {
    d.number("bad", 0);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "design: bad = '3x' is not a number");
  }
  EXPECT_TRUE(d.flag("on"));
  EXPECT_FALSE(d.flag("off"));
  EXPECT_FALSE(d.flag("missing"));
  EXPECT_EQ(d.text("lr", "?"), "0.0003");
  EXPECT_EQ(d.text("missing", "?"), "?");
  ASSERT_NE(d.find("on"), nullptr);
  EXPECT_EQ(d.find("nope"), nullptr);
}

TEST(Design, JsonRoundTripKeepsOrder) {
  const Design d{{{"zeta", "1"}, {"alpha", "gelu"}, {"mid", "true"}}};
  EXPECT_EQ(d.to_json(), R"({"zeta":"1","alpha":"gelu","mid":"true"})");
  EXPECT_EQ(Design::from_json(d.to_json()), d);
  EXPECT_EQ(Design::from_json("{}"), Design{});
  EXPECT_THROW(Design::from_json("[1]"), Error);
  EXPECT_THROW(Design::from_json("{\"a\": "), Error);
  try {
    Design::from_json(R"({"width": 32})");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "design JSON: value of 'width' must be a string, got 32");
  }
}

// Rough cost models for the example families (28×28 inputs, 10 classes), standing in for src/nn's.
std::map<std::string, double> cnn_cost(const Design& d) {
  const double w = d.number("width", 0), k = d.number("kernel", 0), depth = d.number("depth", 0);
  double params = k * k * w + w, flops = 2 * k * k * w * 28 * 28, side = 28;
  for (int s = 0; s < depth; ++s) {
    const double conv = k * k * w * w + w + (d.flag("batch_norm") ? 2 * w : 0);
    params += conv;
    flops += 2 * conv * side * side;
    side = std::ceil(side / 2);
  }
  if (d.flag("attention")) {
    const double tokens = side * side;
    params += 4 * w * w;
    flops += 2 * (4 * w * w * tokens + 2 * tokens * tokens * w);
  }
  params += 10 * w + 10;
  return {{"params", params}, {"flops", flops}};
}

std::map<std::string, double> vit_cost(const Design& d) {
  const double p = d.number("patch", 0), w = d.number("width", 0), depth = d.number("depth", 0);
  const double tokens = std::pow(std::floor(28 / p), 2), block = 4 * w * w + 2 * d.number("mlp_ratio", 0) * w * w;
  const double params = p * p * w + tokens * w + depth * block + 10 * w;
  const double flops = 2 * (p * p * w * tokens + depth * (block * tokens + 2 * tokens * tokens * w));
  return {{"params", params}, {"flops", flops}};
}

TEST(Examples, SpacesLoadFinalizeAndSampleValidDesigns) {
  struct Example {
    const char* file;
    const char* family;
    std::size_t bits;
    CostModel cost;
  };
  for (const Example& e : {Example{"cnn", "cnn", 25, cnn_cost}, Example{"vit", "vit", 20, vit_cost}}) {
    SCOPED_TRACE(e.file);
    SearchSpace sp = SearchSpace::from_file(std::string(GNG_SOURCE_DIR) + "/examples/spaces/" + e.file + ".yaml");
    EXPECT_EQ(sp.family(), e.family);
    EXPECT_EQ(sp.bits(), e.bits);
    EXPECT_EQ(sp.budgets().size(), 2u);
    sp.set_cost_model([](const Design&) { return std::map<std::string, double>{{"params", 0}, {"flops", 0}}; });
    const auto unbudgeted = sp.count_feasible();
    sp.set_cost_model(e.cost);
    const auto t0 = std::chrono::steady_clock::now();
    sp.finalize();
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    RecordProperty(std::string("finalize_ms_") + e.file, std::to_string(ms));
    const auto feasible = sp.count_feasible();
    ASSERT_TRUE(unbudgeted && feasible);
    EXPECT_GT(*feasible, 100u);
    EXPECT_LT(*feasible, *unbudgeted);  // the budgets do exclude designs
    Rng rng(11);
    for (int i = 0; i < 200; ++i) {
      const Bits x = sp.random_valid(rng);
      const auto d = sp.decode(x);
      ASSERT_TRUE(d);
      EXPECT_EQ(sp.encode(*d), x);
      EXPECT_NEAR(sp.penalty().energy(x), 0.0, 1e-12);
    }
  }
  EXPECT_THROW(SearchSpace::from_file(std::string(GNG_SOURCE_DIR) + "/examples/spaces/none.yaml"), Error);
}

TEST(Errors, NameTheSourceLineAndProblem) {
  const std::string d = "family: t\ndecisions:\n  a: flag\n  m: {one_of: [x, y]}\n  w: {ordinal: [1, 2, 3]}\n";
  EXPECT_EQ(load_error("family: t\ndecisions: {a: [1, 2}\n"), "s.yaml:2: invalid YAML: illegal flow end");
  EXPECT_EQ(load_error(d + "budget: {params: 1}\n"),
            "s.yaml:6: unknown key 'budget' (expected family, decisions, constraints, budgets)");
  EXPECT_EQ(load_error("family: t\ndecisions:\n  a: {one_of: [x, y], wen: b}\n"),
            "s.yaml:3: unknown key 'wen' in decision 'a' (expected one_of, ordinal, when)");
  EXPECT_EQ(load_error(d + "  h: {one_of: [1, 2], when: m}\n"),
            "s.yaml:6: decision 'h': when 'm' must name a flag declared before it");
  EXPECT_EQ(load_error("family: t\ndecisions:\n  h: {one_of: [1, 2], when: a}\n  a: flag\n"),
            "s.yaml:3: decision 'h': when 'a' must name a flag declared before it");
  EXPECT_EQ(load_error(d + "  o: {ordinal: [1, 2], when: a}\n"),
            "s.yaml:6: decision 'o': 'when' is only allowed on a one_of");
  EXPECT_EQ(load_error(d + "  v: {ordinal: [1, 4, 3]}\n"), "s.yaml:6: ordinal 'v': values must increase, 3 follows 4");
  EXPECT_EQ(load_error(d + "  v: {ordinal: [1, big]}\n"), "s.yaml:6: ordinal 'v': value 'big' is not a number");
  EXPECT_EQ(load_error(d + "  v: {one_of: [x]}\n"), "s.yaml:6: decision 'v': needs a list of at least two values");
  EXPECT_EQ(load_error(d + "  v: {one_of: [x, x]}\n"), "s.yaml:6: decision 'v': duplicate value 'x'");
  EXPECT_EQ(load_error(d + "  a: flag\n"), "s.yaml:6: duplicate decision 'a'");
  EXPECT_EQ(load_error(d + "  v: switch\n"),
            "s.yaml:6: decision 'v': expected flag, {one_of: [...]} or {ordinal: [...]}, got 'switch'");
  EXPECT_EQ(load_error(d + "  w=2: flag\n"),
            "s.yaml:6: decision name 'w=2' must be letters, digits, '_', '-' or '.', starting with a letter");
  EXPECT_EQ(load_error("decisions:\n  a: flag\n"), "s.yaml:1: missing key 'family'");
  EXPECT_EQ(load_error("family: t\ndecisions: {}\n"), "s.yaml:2: decisions must be a non-empty map of name → decision");
  EXPECT_EQ(load_error("- 1\n"), "s.yaml:1: expected a map with keys family and decisions");
  EXPECT_EQ(load_error(d + "budgets: {params: -5}\n"), "s.yaml:6: budget 'params' must be a positive number");

  const std::string c = d + "constraints:\n";
  EXPECT_EQ(load_error(c + "  - {requires: [a, depth>=2]}\n"),
            "s.yaml:7: constraint 'requires a, depth>=2': unknown decision 'depth'");
  EXPECT_EQ(load_error(c + "  - {requires: [a, m=z]}\n"),
            "s.yaml:7: constraint 'requires a, m=z': 'm' has no value 'z'");
  EXPECT_EQ(load_error(c + "  - {excludes: [a, \"w<=5\"]}\n"),
            "s.yaml:7: constraint 'excludes a, w<=5': 'w' has no value '5'");
  EXPECT_EQ(load_error(c + "  - {excludes: [a, w>=1]}\n"),
            "s.yaml:7: constraint 'excludes a, w>=1': 'w>=1' is always true (w ranges 1 .. 3)");
  EXPECT_EQ(load_error(c + "  - {excludes: [a, w>3]}\n"),
            "s.yaml:7: constraint 'excludes a, w>3': 'w>3' is always false (w ranges 1 .. 3)");
  EXPECT_EQ(load_error(c + "  - {excludes: [a, \"w<1\"]}\n"),
            "s.yaml:7: constraint 'excludes a, w<1': 'w<1' is always false (w ranges 1 .. 3)");
  EXPECT_EQ(load_error(c + "  - {excludes: [a, \"w<=3\"]}\n"),
            "s.yaml:7: constraint 'excludes a, w<=3': 'w<=3' is always true (w ranges 1 .. 3)");
  EXPECT_EQ(load_error(c + "  - {excludes: [a, w=2]}\n"),
            "s.yaml:7: constraint 'excludes a, w=2': ordinal 'w' takes >=, >, <= or <, not =");
  EXPECT_EQ(load_error(c + "  - {excludes: [a, m]}\n"),
            "s.yaml:7: constraint 'excludes a, m': 'm' is not a flag: write m=value");
  EXPECT_EQ(load_error(c + "  - {excludes: [a, \"!m\"]}\n"),
            "s.yaml:7: constraint 'excludes a, !m': '!m' needs a flag");
  EXPECT_EQ(load_error(c + "  - {excludes: [a=yes, m=x]}\n"),
            "s.yaml:7: constraint 'excludes a=yes, m=x': flag 'a' takes =true or =false");
  EXPECT_EQ(load_error(c + "  - {excludes: [a, m>=x]}\n"),
            "s.yaml:7: constraint 'excludes a, m>=x': one_of 'm' takes m=value");
  EXPECT_EQ(load_error(c + "  - {forbids: [a, m=x]}\n"),
            "s.yaml:7: unknown constraint 'forbids' (a constraint is {requires: [a, b]} or {excludes: [a, b]})");
  EXPECT_EQ(load_error(c + "  - {excludes: [a]}\n"), "s.yaml:7: excludes needs a list of two literals");
  EXPECT_EQ(load_error(c + "  - {excludes: [!a, m=x]}\n"),
            "s.yaml:7: write the negation in quotes, \"!a\" (YAML reads a bare !a as a tag)");
}

}  // namespace
}  // namespace gng
