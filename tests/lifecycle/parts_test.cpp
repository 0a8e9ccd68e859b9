// The lifecycle's parts, each without a run: the halving schedule against a test double of the
// Trainer seam, the promotion rules over registry rows, generation over a small space, the
// telemetry merge, and the registry's schema migration from a registry the previous release wrote.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <filesystem>
#include <mutex>
#include <set>
#include <sqlite3.h>

#include "core/file.h"
#include "lifecycle/deploy.h"
#include "lifecycle/federation.h"
#include "lifecycle/generate.h"
#include "lifecycle/halving.h"
#include "lifecycle/promotion.h"
#include "lifecycle/registry.h"
#include "support/error_of.h"

namespace gng {
namespace {

namespace fs = std::filesystem;
using test::error_of;

// --- halving ----------------------------------------------------------------------------------

// The test double at the Trainer seam: scores a candidate by its id, can lose slots and fail designs.
class FakeTrainer : public Trainer {
 public:
  int workers = 2;
  std::set<int> fail;          // candidates whose design fails to train
  std::set<int> lose_on;       // slot 0 is lost when it takes one of these (once each)
  bool lose_everything = false;  // every slot is lost on every task
  bool others_wait = false;      // slots other than 0 start only once slot 0 was lost
  std::atomic<bool> zero_lost{false};
  int recovered = 0;
  std::mutex m;
  std::vector<std::pair<int, int>> trained;  // (slot, candidate)

  int slots(std::size_t tasks) override { return std::min<int>(workers, static_cast<int>(tasks)); }
  Metrics train(int slot, const TrainTask& t) override {
    for (int i = 0; others_wait && slot != 0 && !zero_lost && i < 5000; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    {
      std::lock_guard lock(m);
      if (lose_everything) throw SlotLost("w" + std::to_string(slot) + " is down (test)");
      if (slot == 0 && lose_on.erase(t.candidate)) {
        zero_lost = true;
        throw SlotLost("w0 is down (test)");
      }
    }
    if (fail.count(t.candidate)) throw Error("cannot build c" + std::to_string(t.candidate));
    std::lock_guard lock(m);
    trained.push_back({slot, t.candidate});
    return {{"accuracy", t.candidate / 100.0}, {"epochs", t.budget.epochs}};
  }
  std::string where(int slot) const override { return "w" + std::to_string(slot); }
  bool recover() override {
    ++recovered;
    return true;
  }
};

struct Recorded {
  std::mutex m;
  std::vector<TrainResult> results;
  std::vector<std::string> lost;
};

RungWork work_for(std::vector<int> ids, Recorded& rec, std::function<bool()> time_left = [] { return true; }) {
  RungWork w;
  w.queue.assign(ids.begin(), ids.end());
  w.task = [](int id) {
    TrainTask t;
    t.candidate = id;
    t.budget.epochs = 0.5;
    return t;
  };
  w.time_left = std::move(time_left);
  w.done = [&rec](const TrainResult& r) {
    std::lock_guard lock(rec.m);
    rec.results.push_back(r);
  };
  w.lost = [&rec](int id, const std::string& why) {
    std::lock_guard lock(rec.m);
    rec.lost.push_back(why + " / c" + std::to_string(id));
  };
  return w;
}

TEST(Halving, KeepAndBestOf) {
  EXPECT_EQ(rung_keep(Rung{1, 0, false, 0}, 8, 3), 3u);  // ⌈8/3⌉
  EXPECT_EQ(rung_keep(Rung{1, 0, false, 0}, 9, 3), 3u);
  EXPECT_EQ(rung_keep(Rung{1, 0, false, 2}, 9, 3), 2u);  // the rung's keep wins
  std::map<std::pair<int, int>, EvaluationRow> evals;
  for (auto [id, score] : std::vector<std::pair<int, double>>{{1, 0.5}, {2, 0.9}, {3, 0.5}, {4, 0.7}})
    evals[{id, 0}] = {id, 0, {}, score, ""};
  evals[{5, 1}] = {5, 1, {}, 0.99, ""};  // another rung: not a contender here
  EXPECT_EQ(best_of({1, 2, 3, 4, 5}, evals, 0, 3), (std::vector<int>{2, 4, 1}));  // ties keep their order
  EXPECT_EQ(best_of({3, 1}, evals, 0, 1), (std::vector<int>{3}));
  EXPECT_EQ(best_of({1, 2}, evals, 0, 5), (std::vector<int>{2, 1}));
}

TEST(Halving, TrainsEveryTaskOnceAndRecordsFailures) {
  FakeTrainer t;
  t.fail = {3};
  Recorded rec;
  EXPECT_TRUE(train_rung(t, work_for({1, 2, 3, 4, 5}, rec), 0));
  ASSERT_EQ(rec.results.size(), 5u);
  std::set<int> seen;
  for (const auto& r : rec.results) {
    EXPECT_TRUE(seen.insert(r.candidate).second) << "c" << r.candidate << " twice";
    if (r.candidate == 3) {
      EXPECT_EQ(r.metrics, (Metrics{{"failed", 1}}));
      EXPECT_EQ(r.error, "cannot build c3");
    } else {
      EXPECT_EQ(r.error, "");
      EXPECT_DOUBLE_EQ(r.metrics.at("accuracy"), r.candidate / 100.0);
      EXPECT_TRUE(r.where == "w0" || r.where == "w1") << r.where;
    }
  }
  EXPECT_EQ(t.recovered, 1);  // once after the rung, so lost slots rejoin for the next one
}

TEST(Halving, ALostSlotsTaskGoesToAnother) {
  FakeTrainer t;
  t.lose_on = {1, 2, 3, 4};  // slot 0 goes away on the first task it takes
  t.others_wait = true;      // (so that it takes one: slot 1 could otherwise train all four first)
  Recorded rec;
  EXPECT_TRUE(train_rung(t, work_for({1, 2, 3, 4}, rec), 1));
  ASSERT_EQ(rec.lost.size(), 1u);
  EXPECT_EQ(rec.lost[0].rfind("w0 is down (test) / c", 0), 0u) << rec.lost[0];
  std::set<int> done;
  for (const auto& r : rec.results) done.insert(r.candidate);
  EXPECT_EQ(done, (std::set<int>{1, 2, 3, 4}));
  EXPECT_EQ(rec.results.size(), 4u);
}

TEST(Halving, EverySlotLostRecoversThenGivesUp) {
  FakeTrainer t;
  t.lose_everything = true;
  Recorded rec;
  EXPECT_EQ(error_of([&] { train_rung(t, work_for({1, 2}, rec), 2); }), "the nodes keep failing: 2 trainings of rung 2 not done");
  EXPECT_EQ(t.recovered, 3);  // after each of the three attempts
  EXPECT_TRUE(rec.results.empty());
  // A trainer that cannot recover (in-process threads) stops after one attempt.
  struct Hopeless : FakeTrainer {
    bool recover() override { return false; }
  } h;
  h.lose_everything = true;
  Recorded rec2;
  EXPECT_EQ(error_of([&] { train_rung(h, work_for({7}, rec2), 0); }), "the nodes keep failing: 1 trainings of rung 0 not done");
}

TEST(Halving, StopsTakingTasksWhenTheTimeIsUp) {
  FakeTrainer t;
  t.workers = 1;
  Recorded rec;
  std::atomic<int> asked{0};
  EXPECT_FALSE(train_rung(t, work_for({1, 2, 3}, rec, [&] { return ++asked <= 2; }), 0));
  EXPECT_EQ(rec.results.size(), 2u);
}

// --- promotion --------------------------------------------------------------------------------

Policy safety_policy() { return Policy::from_yaml("objectives: {accuracy: 1.0}\nsafety: {min_accuracy: 0.5}\n", "<test>"); }

EvaluationRow top_row(int id, double accuracy, std::string model = "m.pt") {
  return {id, 1, {{"accuracy", accuracy}}, accuracy, std::move(model)};
}

TEST(Promotion, BestSafeSkipsUnsafeRefusedAndModellessCandidates) {
  const Policy p = safety_policy();
  const std::vector<EvaluationRow> evals{{9, 0, {{"accuracy", 0.99}}, 0.99, ""},  // a lower rung
                                         top_row(1, 0.7, "c1.pt"), top_row(2, 0.4, "c2.pt"), top_row(3, 0.9, "c3.pt"),
                                         top_row(4, 0.95, ""), top_row(5, 0.9, "c5.pt")};
  Challenger c = best_safe(evals, 1, {}, p);
  EXPECT_EQ(c.candidate, 3);  // c4 has no model; c5 ties c3 and comes later
  EXPECT_EQ(c.model, "c3.pt");
  EXPECT_DOUBLE_EQ(c.score, 0.9);
  EXPECT_EQ(c.unsafe, " c2 (accuracy 0.4 < 0.5)");
  EXPECT_EQ(best_safe(evals, 1, {3}, p).candidate, 5);
  EXPECT_EQ(best_safe(evals, 1, {1, 3, 5}, p).candidate, -1);
  EXPECT_EQ(best_safe({}, 1, {}, p).candidate, -1);
}

TEST(Promotion, AChallengerBringsItsFederatedModelOnlyWhenItImprovesSafely) {
  const Policy p = safety_policy();
  const Challenger c{4, 0.8, "c4.pt", ""};
  const Offer own = challenger_offer(c, std::nullopt, p);
  EXPECT_EQ(own.model, "c4.pt");
  EXPECT_DOUBLE_EQ(own.score, 0.8);
  EXPECT_FALSE(own.federated);
  // Federated, but no better than its own model measured the same way: its own, at that score.
  const FederatedModel worse{{{"accuracy", 0.75}}, 0.75, 0.78, "c4-fed2.pt"};
  const Offer kept = challenger_offer(c, worse, p);
  EXPECT_EQ(kept.model, "c4.pt");
  EXPECT_DOUBLE_EQ(kept.score, 0.78);
  EXPECT_FALSE(improves(worse, p));
  const FederatedModel better{{{"accuracy", 0.86}}, 0.86, 0.78, "c4-fed2.pt"};
  const Offer fed = challenger_offer(c, better, p);
  EXPECT_EQ(fed.model, "c4-fed2.pt");
  EXPECT_DOUBLE_EQ(fed.score, 0.86);
  EXPECT_TRUE(fed.federated);
  EXPECT_EQ(fed.metrics.at("accuracy"), 0.86);
  // Better by score but unsafe (a latency objective can outweigh accuracy): not taken.
  const Policy fast = Policy::from_yaml("objectives: {accuracy: 1.0, latency_ms: -1}\nsafety: {min_accuracy: 0.5}\n", "<t>");
  const FederatedModel unsafe{{{"accuracy", 0.4}, {"latency_ms", 0}}, 0.9, 0.78, "x.pt"};
  EXPECT_FALSE(improves(unsafe, fast));
  EXPECT_EQ(challenger_offer(c, unsafe, fast).model, "c4.pt");
}

// --- generation -------------------------------------------------------------------------------

constexpr const char* kSpace = R"(family: cnn
decisions:
  width: {ordinal: [4, 8, 16]}
  batch_norm: flag
  activation: {one_of: [relu, silu, gelu]}
  lr: {ordinal: [0.001, 0.003]}
)";

TEST(Generate, RandomUntilFourScoresThenTheSurrogate) {
  RunConfig c;
  c.space_text = kSpace;
  const Policy p;
  const SearchSpace space = load_space(c, p, InputShape{});
  const Feasibility f = feasibility(space);
  Rng rng(5, 1);
  Proposal first = propose_designs({}, {}, space, f, 6, rng, "tabu");
  ASSERT_EQ(first.designs.size(), 6u);
  EXPECT_EQ(first.origin, "random feasible design (no surrogate yet)");
  std::vector<CandidateRow> cands;
  std::vector<EvaluationRow> evals;
  for (std::size_t i = 0; i < first.designs.size(); ++i) {
    ASSERT_TRUE(space.decode(first.designs[i]).has_value());
    const int id = static_cast<int>(i) + 1;
    cands.push_back({id, 0, bits_text(first.designs[i]), space.decode(first.designs[i])->to_json(), first.origin});
    EXPECT_EQ(parse_bits(cands.back().bits), first.designs[i]);
  }
  // Three scores: still random, and never a design already tried.
  for (int id : {1, 2, 3}) evals.push_back({id, 0, {}, 0.1 * id, ""});
  Proposal still = propose_designs(cands, evals, space, f, 4, rng, "tabu");
  EXPECT_EQ(still.origin, "random feasible design (no surrogate yet)");
  for (const auto& x : still.designs)
    for (const auto& cand : cands) EXPECT_NE(bits_text(x), cand.bits);
  // Four rung-0 scores (a rung-1 one does not count): the surrogate, naming the best three.
  evals.push_back({5, 0, {}, 0.9, ""});
  evals.push_back({6, 1, {}, 5.0, ""});
  Proposal fitted = propose_designs(cands, evals, space, f, 3, rng, "tabu");
  EXPECT_EQ(fitted.origin, "Thompson sample of the surrogate fitted on 4 scores, minimised by tabu (best so far: c5, c3, c2)");
  EXPECT_FALSE(fitted.designs.empty());
  for (const auto& x : fitted.designs) {
    EXPECT_TRUE(space.decode(x).has_value());
    for (const auto& cand : cands) EXPECT_NE(bits_text(x), cand.bits);
  }
}

// --- deploy & observe ---------------------------------------------------------------------------

TEST(Observe, TheWorstOfEachSignalAcrossNodes) {
  const Policy::Telemetry w = worst_telemetry({R"({"drift_psi": 0.1, "latency_p99_ms": 9, "feedback_accuracy": 0.9})",
                                               R"({"drift_psi": 0.3, "latency_p99_ms": 4})",
                                               R"({"feedback_accuracy": 0.7, "requests": 5})"});
  EXPECT_DOUBLE_EQ(w.drift_psi, 0.3);
  EXPECT_DOUBLE_EQ(w.latency_p99_ms, 9);
  EXPECT_DOUBLE_EQ(w.feedback_accuracy, 0.7);
  EXPECT_DOUBLE_EQ(worst_telemetry({"{}"}).feedback_accuracy, -1);  // no feedback yet
  EXPECT_EQ(error_of([] { worst_telemetry({"{\"drift_psi\": "}); }).rfind("telemetry is not JSON: ", 0), 0u);
}

// --- federation ---------------------------------------------------------------------------------

TEST(Federation, TheRunFileNamesItsStrategy) {
  RunConfig::Federation f;
  EXPECT_EQ(strategy_of(f)->name(), "fedavg");
  f.mu = 0.01;
  EXPECT_EQ(strategy_of(f)->name(), "fedprox");
  EXPECT_DOUBLE_EQ(strategy_of(f)->configure_round(1).mu, 0.01);
  f.mu = 0;
  for (const char* rule : {"trimmed_mean", "median", "krum"}) {
    f.rule = rule;
    EXPECT_EQ(strategy_of(f)->name(), rule);
  }
}

// --- registry schema ----------------------------------------------------------------------------

// A fresh copy of a fixture, named `as`.
std::string copy_fixture(const std::string& name, const std::string& as) {
  const std::string dir = testing::TempDir() + "gng-registry-" + std::to_string(getpid());
  fs::create_directories(dir);
  const std::string to = dir + "/" + as;
  for (const char* ext : {"-wal", "-shm"}) fs::remove(to + ext);
  fs::copy_file(fs::path(GNG_SOURCE_DIR) / "tests/lifecycle/data" / name, to, fs::copy_options::overwrite_existing);
  return to;
}

void sql(const std::string& path, const std::string& text) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  EXPECT_EQ(sqlite3_exec(db, text.c_str(), nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
  sqlite3_free(err);
  sqlite3_close(db);
}

TEST(RegistrySchema, ANewRegistryIsTheCurrentVersion) {
  const std::string path = testing::TempDir() + "gng-new-registry-" + std::to_string(getpid()) + ".db";
  fs::remove(path);
  {
    Registry reg(path, true);
    EXPECT_EQ(reg.meta("format"), "gng registry v" + std::to_string(Registry::kSchemaVersion));
    const int c = reg.add_candidate(0, "01", "{}", "test");
    reg.promote({c, 0, "policy (auto)", "promoted.pt", true, {{"accuracy", 0.9}}});
    reg.refuse(c);
  }
  Registry again(path, true);  // reopening changes nothing
  ASSERT_EQ(again.promotions().size(), 1u);
  EXPECT_TRUE(again.promotions()[0].federated);
  EXPECT_EQ(again.promotions()[0].metrics, (Metrics{{"accuracy", 0.9}}));
  EXPECT_EQ(again.refused(), std::set<int>{1});
  // A registry of a newer schema is refused, not misread.
  sql(path, "UPDATE meta SET value = 'gng registry v3' WHERE key = 'format'");
  EXPECT_EQ(error_of([&] { Registry r(path, false); }),
            path + ": not a gng registry this build can read (schema version 3; it reads 1 to 2)");
  fs::remove(path);
}

// tests/lifecycle/data/registry-v1.db: written by gng 72f8c39, the release before the typed registry,
// running Run.AChallengerIsFederatedBeforeItIsComparedAndOnlyOnce's run file (three cycles on two
// nodes, two FedAvg rounds): promotions of c4, c4's federated model and c9's federated model
// (approved_by "policy (auto); federated"), c7 refused as JSON in meta, c9's metrics as JSON in meta.
TEST(RegistrySchema, MigratesARegistryTheLastReleaseWrote) {
  const std::string path = copy_fixture("registry-v1.db", "migrated.db");
  std::vector<std::string> approved;
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    sqlite3_stmt* s = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT approved_by FROM promotions ORDER BY seq", -1, &s, nullptr), SQLITE_OK);
    while (sqlite3_step(s) == SQLITE_ROW) approved.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(s, 0)));
    sqlite3_finalize(s);
    sqlite3_close(db);
  }
  ASSERT_FALSE(approved.empty());
  ASSERT_TRUE(approved.back().ends_with("; federated")) << approved.back();
  Registry reg(path, false);
  EXPECT_EQ(reg.meta("format"), "gng registry v2");
  EXPECT_FALSE(reg.meta("federated_metrics").has_value());
  EXPECT_FALSE(reg.meta("refused_challengers").has_value());
  const auto promos = reg.promotions();
  ASSERT_EQ(promos.size(), approved.size());
  for (std::size_t i = 0; i < promos.size(); ++i) {
    EXPECT_EQ(promos[i].federated, approved[i].ends_with("; federated")) << i;
    EXPECT_EQ(promos[i].approved_by + (promos[i].federated ? "; federated" : ""), approved[i]) << i;
    EXPECT_FALSE(promos[i].approved_by.ends_with("federated")) << i;
  }
  // The last federated promotion carries the metrics that meta held; earlier ones have none.
  EXPECT_TRUE(promos.back().metrics.count("accuracy"));
  for (std::size_t i = 0; i + 1 < promos.size(); ++i) EXPECT_TRUE(promos[i].metrics.empty()) << i;
  EXPECT_EQ(reg.refused(), std::set<int>{7});
  // Everything else reads as before.
  EXPECT_EQ(reg.meta("state"), "finished");
  EXPECT_FALSE(reg.candidates().empty());
  EXPECT_FALSE(reg.evaluations().empty());
}

TEST(RegistrySchema, MigrationMovesRefusedChallengersAndRefusesDamage) {
  const std::string path = copy_fixture("registry-v1.db", "refused.db");
  sql(path, "INSERT OR REPLACE INTO meta(key, value) VALUES('refused_challengers', '[2, 5, 999]')");
  EXPECT_EQ(Registry(path, false).refused(), (std::set<int>{2, 5}));  // no candidate 999: dropped, as v1 ignored it
  const std::string damaged = copy_fixture("registry-v1.db", "damaged.db");
  sql(damaged, "INSERT OR REPLACE INTO meta(key, value) VALUES('refused_challengers', '[2, ')");
  EXPECT_EQ(error_of([&] { Registry r(damaged, false); }).rfind(damaged + ": the refused challengers are damaged (", 0), 0u);
  // Nothing was half-migrated: the file is still version 1, its promotions untouched.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(damaged.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'format'", -1, &s, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(s, 0)), "gng registry v1");
  sqlite3_finalize(s);
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM pragma_table_info('promotions') WHERE name = 'federated'", -1, &s, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(s, 0), 0);
  sqlite3_finalize(s);
  sqlite3_close(db);
}

// A version-1 file killed after its tables were made but before its format was written: opened to
// resume, it is recognised as version 1 by its promotions table and migrated, not stamped version 2.
TEST(RegistrySchema, AFileWithoutItsFormatIsReadByItsTables) {
  const std::string path = copy_fixture("registry-v1.db", "no-format.db");
  sql(path, "DELETE FROM meta WHERE key = 'format'");
  EXPECT_EQ(error_of([&] { Registry r(path, false); }), path + ": not a gng registry (format mismatch)");
  Registry reg(path, true);
  EXPECT_EQ(reg.meta("format"), "gng registry v2");
  EXPECT_TRUE(reg.promotions().back().federated);
}

}  // namespace
}  // namespace gng
