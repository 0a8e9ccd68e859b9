#include <gtest/gtest.h>

#include <cmath>

#include <fstream>
#include <map>
#include <sstream>

#include "core/error.h"
#include "core/rng.h"
#include "qubo/io.h"
#include "solve/sampler.h"
#include "support/paths.h"
#include "support/random_qubo.h"

namespace gng {
namespace {

Qubo random_qubo(std::size_t n, double density, uint64_t seed) { return test::random_qubo(n, seed, density, 100.0, 3.0, true); }

// All 2^n energies, sorted ascending.
std::vector<double> brute_energies(const Qubo& q) {
  std::vector<double> e;
  Bits x(q.size());
  for (uint64_t c = 0; c < (uint64_t{1} << q.size()); ++c) {
    for (std::size_t i = 0; i < q.size(); ++i) x[i] = (c >> i) & 1;
    e.push_back(q.energy(x));
  }
  std::sort(e.begin(), e.end());
  return e;
}

std::map<std::string, double> best_known() {
  std::ifstream f(test::shared("data/qubo/best_known.csv"));
  std::map<std::string, double> out;
  std::string line;
  std::getline(f, line);
  while (std::getline(f, line)) {
    std::stringstream s(line);
    std::string name, value;
    std::getline(s, name, ',');
    std::getline(s, value, ',');
    out[name] = std::stod(value);
  }
  return out;
}

TEST(Exact, FindsTheLowestStatesOfRandomQubos) {
  const auto exact = make_sampler("exact");
  for (std::size_t n : {1, 3, 8, 12, 17, 20}) {
    for (uint64_t seed = 1; seed <= 3; ++seed) {
      const Qubo q = random_qubo(n, 0.5, seed * 31 + n);
      const auto want = brute_energies(q);
      SampleOptions o;
      o.keep = 5;
      o.threads = 2;
      const SampleSet s = exact.get()->sample(q, o);
      ASSERT_EQ(s.size(), std::min<std::size_t>(5, want.size())) << "n=" << n;
      for (std::size_t k = 0; k < s.size(); ++k) EXPECT_DOUBLE_EQ(s.samples()[k].energy, want[k]) << "n=" << n << " k=" << k;
    }
  }
}

TEST(Exact, RefusesLargeNWithAClearMessage) {
  const Qubo q = random_qubo(kExactMaxN + 1, 0.1, 5);
  try {
    make_sampler("exact")->sample(q, {});
    FAIL() << "exact accepted n = " << q.size();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("limited to n <= 40"), std::string::npos) << e.what();
  }
}

TEST(Samplers, UnknownNameIsAnError) { EXPECT_THROW(make_sampler("qaoa-not-yet"), Error); }

TEST(Samplers, HeuristicsMatchExactOnMediumQubos) {
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    const Qubo q = random_qubo(24, 0.3, seed);
    SampleOptions o;
    o.seed = seed;
    const double opt = make_sampler("exact")->sample(q, o).best().energy;
    EXPECT_DOUBLE_EQ(make_sampler("anneal")->sample(q, o).best().energy, opt);
    EXPECT_DOUBLE_EQ(make_sampler("tabu")->sample(q, o).best().energy, opt);
  }
}

TEST(Samplers, ReachTheProvenOptimaOfBqp50AndBqp100) {
  const auto known = best_known();
  for (int n : {50, 100}) {
    for (int k = 1; k <= 10; ++k) {
      const Problem p = read_problem(test::shared("data/qubo/bqp/bqp" + std::to_string(n) + ".txt"), Format::bqp, k);
      const double want = known.at(p.name);
      for (const char* solver : {"tabu", "anneal"}) {
        SampleOptions o;
        o.seed = 7;
        o.time_limit_s = 20;
        o.target_energy = p.energy_of(want);
        const SampleSet s = make_sampler(solver)->sample(p.qubo, o);
        EXPECT_EQ(p.objective(s.best().energy), want) << solver << " on " << p.name;
        EXPECT_TRUE(s.stats.time_to_target_s.has_value());
      }
    }
  }
  // The reference value.
  EXPECT_EQ(known.at("bqp50-1"), 2098);
}

TEST(Samplers, AreReproducibleFromTheirSeed) {
  const Qubo q = random_qubo(60, 0.2, 99);
  for (const char* name : {"anneal", "tabu", "exact"}) {
    if (std::string(name) == "exact") continue;  // exact has no randomness; covered above
    SampleOptions o;
    o.seed = 5;
    o.reads = 6;
    o.steps = 10;  // short reads end in different states, so seeds can be told apart
    o.keep = 100;
    const auto sampler = make_sampler(name);
    const SampleSet a = sampler->sample(q, o), b = sampler->sample(q, o);
    o.threads = 1;
    const SampleSet c = sampler->sample(q, o);
    o.seed = 6;
    const SampleSet d = sampler->sample(q, o);
    ASSERT_EQ(a.size(), b.size()) << name;
    for (std::size_t k = 0; k < a.size(); ++k) {
      EXPECT_EQ(a.samples()[k].x, b.samples()[k].x) << name;
      EXPECT_EQ(a.samples()[k].x, c.samples()[k].x) << name << " (thread count must not matter)";
    }
    bool differs = a.size() != d.size();
    for (std::size_t k = 0; !differs && k < a.size(); ++k) differs = a.samples()[k].x != d.samples()[k].x;
    EXPECT_TRUE(differs) << name << ": another seed gave identical samples";
    EXPECT_EQ(a.stats.reads, 6u);
  }
}

TEST(Samplers, HonourTimeLimitAndReportTimeToTarget) {
  const Problem p = read_problem(test::shared("data/qubo/gset/G1"));
  SampleOptions o;
  o.time_limit_s = 0.3;
  o.target_energy = p.energy_of(1e9);  // unreachable
  for (const char* solver : {"anneal", "tabu"}) {
    const SampleSet s = make_sampler(solver)->sample(p.qubo, o);
    EXPECT_LT(s.stats.time_s, 1.5) << solver;
    EXPECT_FALSE(s.stats.time_to_target_s.has_value());
    EXPECT_GT(p.objective(s.best().energy), 11000) << solver;
  }
}

TEST(Samplers, ATinyTimeLimitStillReturnsAState) {
  const Qubo q = random_qubo(300, 0.05, 8);
  SampleOptions o;
  o.time_limit_s = 1e-9;
  for (const char* solver : {"anneal", "tabu"}) {
    const SampleSet s = make_sampler(solver)->sample(q, o);
    ASSERT_FALSE(s.empty()) << solver;
    EXPECT_EQ(s.best().x.size(), 300u);
  }
}

TEST(Samplers, RejectBadOptions) {
  const Qubo q = random_qubo(5, 0.5, 1);
  SampleOptions o;
  o.reads = -1;
  EXPECT_THROW(make_sampler("anneal")->sample(q, o), Error);
  o = {};
  o.time_limit_s = -1;
  EXPECT_THROW(make_sampler("tabu")->sample(q, o), Error);
}

}  // namespace
}  // namespace gng
