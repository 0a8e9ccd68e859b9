// Federation's round loop (lifecycle/federation.h) without a run: three real nodes in this process,
// dialled in to the run's hub over PQ-TLS, refine a model through a fed::Strategy; a node that
// stops mid-federation leaves its rounds to the quorum of the others.
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>
#include <thread>

#include "core/file.h"
#include "data/dataset.h"
#include "lifecycle/federation.h"
#include "lifecycle/nodes.h"
#include "secure/pki.h"

namespace gng {
namespace {

namespace fs = std::filesystem;

// Three nodes in this process dialling in to the hub of the run's pool, as remote sites do: the
// run's PKI made in place (its CA, the orchestrator, n1..n3), each node with its own folder and shard.
struct ThreeNodes {
  std::string dir = testing::TempDir() + "gng-federation-" + std::to_string(getpid()) + "-" +
                    testing::UnitTest::GetInstance()->current_test_info()->name();
  std::vector<std::unique_ptr<node::Node>> nodes;
  Dataset val;

  ThreeNodes() {
    fs::remove_all(dir);
    fs::create_directories(dir + "/run");
    secure::pki_init(dir + "/run/pki");
    secure::pki_issue(dir + "/run/pki", {"orchestrator", "orchestrator"});
    for (int k = 1; k <= 3; ++k) secure::pki_issue(dir + "/run/pki", {"node", "n" + std::to_string(k)});
    std::vector<std::size_t> first(300);
    for (std::size_t i = 0; i < first.size(); ++i) first[i] = i;
    val = subset(read_mnist_dir(kFashionMnistDir, false), first);
  }
  void start(int hub_port, int from = 0, int to = 3) {  // n(from+1) … n(to)
    for (int k = from; k < to; ++k) {
      node::NodeConfig nc;
      nc.id = "n" + std::to_string(k + 1);
      nc.pki = dir + "/run/pki";
      nc.orchestrator = {"127.0.0.1", hub_port};
      nc.dir = dir + "/" + nc.id;
      nc.data = kFashionMnistDir;
      nc.shard = k;
      nc.shards = 3;
      nc.train_limit = 900;
      nc.validation = 60;
      nodes.push_back(std::make_unique<node::Node>(nc, qkd::Keys{}));
      nodes.back()->start();
    }
  }
  ~ThreeNodes() {
    nodes.clear();
    fs::remove_all(dir);
  }
};

RunConfig federating(int rounds, double quorum, int min_sites = 3) {
  RunConfig c;
  c.policy_text = "objectives: {accuracy: 1.0}\nqkd: off\n";
  c.federation.rounds = rounds;
  c.federation.epochs = 1;
  c.federation.samples = 128;
  c.federation.quorum = quorum;
  c.batch = 64;
  c.min_nodes = min_sites;  // remote sites: none started by the pool
  c.wait_s = 60;
  return c;
}

std::vector<std::string> decisions(const RunState& run, const std::string& kind) {
  std::vector<std::string> out;
  for (const auto& d : run.reg.decisions())
    if (d.kind == kind) out.push_back(d.text);
  return out;
}

// Three nodes adopted by a run's pool, a model trained on n1 to start from, FedAvg and a measure on
// 300 test images: what both tests federate with.
struct Federating {
  explicit Federating(int first_sites = 3) : run(three.dir + "/run", federating(2, 0.6, first_sites), log) { begin(first_sites); }
  ThreeNodes three;
  std::ostringstream log;
  RunState run;
  NodePool pool{run};
  std::string design = Design{{{"width", "4"}}}.to_json();
  std::string base = three.dir + "/run/models/c1.pt";
  std::unique_ptr<fed::Strategy> strategy = strategy_of(run.c.federation);
  MeasureState measure = [this](const std::string& d, const fed::Update& s) {
    return evaluate_state("cnn", Design::from_json(d), s, three.val, EvalSettings{});
  };
  void begin(int first_sites) {
    run.begin_session();
    const Task task{{1, 28, 28}, 10};
    three.start(pool.listen(task), 0, first_sites);
    pool.start(task);
    node::TrainJob job{"fed", 1, "cnn", design, {}, {}, true};
    job.budget.samples = 128;
    const node::Trained t = pool.client(0).train(job);
    write_file_atomic(base + ".json", t.model_json);
    write_file_atomic(base, t.weights);
  }
};

TEST(Federation, RoundsAggregateEveryNodesStateThroughTheStrategy) {
  Federating x;
  auto& [three, log, run, pool, design, base, strategy, measure] = x;
  const auto f = federate(run, pool, *strategy, measure, "cnn", 0, 1, design, base);
  ASSERT_TRUE(f.has_value()) << log.str();
  EXPECT_EQ(f->path, run.federated_path(1, 0));
  EXPECT_TRUE(fs::exists(f->path) && fs::exists(f->path + ".json"));
  EXPECT_DOUBLE_EQ(f->score, f->metrics.at("accuracy"));
  EXPECT_GT(f->before, 0);
  const auto rounds = decisions(run, "federate");
  ASSERT_EQ(rounds.size(), 2u) << log.str();
  for (const auto& r : rounds) {
    EXPECT_TRUE(std::regex_search(r, std::regex("^round [12] \\(fedavg of n[123], n[123], n[123]\\): accuracy 0\\.\\d{4}")))
        << r;
    EXPECT_NE(r.find("exchange "), std::string::npos) << r;  // the cost of moving the states, per node
  }
  // Every state went out sealed and came back sealed: two entries per node and round, audited here.
  int exchanges = 0;
  for (const auto& e : run.audit.entries(0, run.audit.size())) exchanges += e.kind == "exchange";
  EXPECT_EQ(exchanges, 2 * 3 * 2 + 1);  // and the trained model
}

TEST(Federation, ANodeThatStopsLeavesItsRoundsToTheQuorum) {
  Federating x;  // quorum: 2 of 3
  auto& [three, log, run, pool, design, base, strategy, measure] = x;
  three.nodes[2]->stop();  // n3 is gone before the first round
  const auto f = federate(run, pool, *strategy, measure, "cnn", 0, 1, design, base);
  ASSERT_TRUE(f.has_value()) << log.str();
  const auto down = decisions(run, "node");
  ASSERT_EQ(down.size(), 1u) << log.str();
  EXPECT_EQ(down[0].rfind("n3 is down (", 0), 0u) << down[0];
  EXPECT_FALSE(pool.up(2));
  const auto rounds = decisions(run, "federate");
  ASSERT_EQ(rounds.size(), 2u) << log.str();
  for (const auto& r : rounds) EXPECT_TRUE(std::regex_search(r, std::regex("\\(fedavg of n[12], n[12]\\)"))) << r;
  // With every node gone no round reaches its quorum: four tries, then a precise error.
  three.nodes[0]->stop();
  three.nodes[1]->stop();
  const std::string e = [&] {
    try {
      federate(run, pool, *strategy, measure, "cnn", 1, 1, design, base);
    } catch (const Error& err) {
      return std::string(err.what());
    }
    return std::string("no error");
  }();
  EXPECT_EQ(e, "federation: round 1 failed four times (below the quorum of 2)") << log.str();
}

// A site that joins after the run started (here n3, once two were enough to begin) is admitted,
// audited, and takes part from the next round on; nothing waits for it before.
TEST(Federation, ASiteThatJoinsLateTakesPartFromTheNextRound) {
  Federating x(2);
  auto& [three, log, run, pool, design, base, strategy, measure] = x;
  EXPECT_EQ(pool.size(), 2u);
  three.start(pool.listen({{1, 28, 28}, 10}), 2, 3);
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (pool.size() < 3 && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    pool.refresh();
  }
  ASSERT_EQ(pool.size(), 3u) << log.str();
  const auto f = federate(run, pool, *strategy, measure, "cnn", 0, 1, design, base);
  ASSERT_TRUE(f.has_value()) << log.str();
  const auto rounds = decisions(run, "federate");
  ASSERT_EQ(rounds.size(), 2u) << log.str();
  for (const auto& r : rounds) EXPECT_NE(r.find("n3"), std::string::npos) << r;
  int joined = 0;
  for (const auto& d : decisions(run, "site")) joined += d.rfind("n3 joined from 127.0.0.1:", 0) == 0;
  EXPECT_EQ(joined, 1) << log.str();
}

}  // namespace
}  // namespace gng
