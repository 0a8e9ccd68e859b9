// The `gng` binary as a user runs it: output, exit codes and error messages.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "support/paths.h"

namespace gng {
namespace {

const std::string gng = GNG_BINARY;

TEST(Cli, SolveJsonReportsTheFilesOwnObjective) {
  const auto r = test::run(gng + " solve " + test::shared("data/qubo/bqp/bqp50.txt") + " --solver tabu --target 2098 --seed 3 --json");
  ASSERT_EQ(r.status, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["objective"], 2098);
  EXPECT_EQ(j["energy"], -2098);
  EXPECT_EQ(j["solver"], "tabu");
  EXPECT_EQ(j["problem"], "bqp50-1");
  EXPECT_EQ(j["x"].get<std::string>().size(), 50u);
  EXPECT_TRUE(j["time_s"].is_number());
  EXPECT_TRUE(j["time_to_target_s"].is_number());
  EXPECT_LE(j["time_to_target_s"].get<double>(), j["time_s"].get<double>());
}

TEST(Cli, SolveMaxCutReportsACutWeightAndNullTimeToTargetWhenMissed) {
  const auto r = test::run(gng + " solve " + test::shared("data/qubo/gset/G6") + " --solver anneal --reads 2 --steps 200 --target 99999 --json");
  ASSERT_EQ(r.status, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["format"], "rudy");
  EXPECT_GT(j["objective"].get<double>(), 1800);
  EXPECT_EQ(j["objective"].get<double>(), -j["energy"].get<double>());
  EXPECT_TRUE(j["time_to_target_s"].is_null());
}

TEST(Cli, ExactSolvesAJsonQubo) {
  const std::string path = testing::TempDir() + "/small.json";
  {
    std::ofstream f(path);
    f << R"({"gng_qubo": 1, "n": 3, "linear": [1, -2, 1], "quadratic": [[0, 1, -3], [1, 2, 2]]})";
  }
  const auto r = test::run(gng + " solve " + path + " --solver exact --json");
  ASSERT_EQ(r.status, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["x"], "110");
  EXPECT_EQ(j["objective"], -4);
}

TEST(Cli, BadInputGetsAPreciseErrorAndNonZeroExit) {
  struct Case {
    std::string args, message;
  };
  const std::string bqp = test::shared("data/qubo/bqp/bqp50.txt");
  const std::string bad = testing::TempDir() + "/bad.txt";
  {
    std::ofstream f(bad);
    f << "1\n3 2\n1 2 4\n1 7 1\n";
  }
  for (const Case& c : std::vector<Case>{
           {"solve /no/such/file", "gng solve: error: cannot read /no/such/file: No such file or directory"},
           // A device is read no further than a file may be (it was read forever).
           {"solve /dev/zero", "gng solve: error: /dev/zero: larger than 268435456 bytes, refused"},
           // Every numeric option has bounds.
           {"solve " + bqp + " --threads 100000", "gng solve: error: gng solve: option --threads must be in [0, 1024], got 100000"},
           {"solve " + bqp + " --reads 1e9", "option --reads expects an integer, got '1e9'"},
           {"solve " + bqp + " --reads 99999999999", "option --reads must be in [0, 10000000], got 99999999999"},
           {"qaoa " + bqp + " --shots 0", "option --shots must be in [1, 10000000], got 0"},
           {"serve /no/model --connections 0", "option --connections must be in [1, 65536], got 0"},
           {"search --benchmark nb201 --data /dev/zero --threads 5000", "option --threads must be in [1, 1024], got 5000"},
           {"solve " + bad, "gng solve: error: " + bad + ":4: j 7 is outside 1..3"},
           {"solve " + bqp + " --instance 12", "instance 12 requested, the file has 10"},
           {"solve " + bqp + " --solver magic", "unknown solver 'magic' (expected exact, anneal, tabu, qaoa or vqe)"},
           {"solve " + bqp + " --solver exact", "exact enumeration is limited to n <= 40"},
           {"solve " + bqp + " --reads many", "option --reads expects an integer, got 'many'"},
           {"solve " + bqp + " --colour", "unknown option --colour"},
           {"solve", "expected exactly one FILE"},
           {"frobnicate", "unknown command 'frobnicate'"},
       }) {
    const auto r = test::run(gng + " " + c.args);
    EXPECT_NE(r.status, 0) << c.args;
    EXPECT_NE(r.out.find(c.message), std::string::npos) << c.args << "\n" << r.out;
  }
}

TEST(Cli, QaoaReportsExpectationRatioAnglesAndWritesQasm) {
  const std::string qasm = testing::TempDir() + "/ring.qasm";
  const auto r = test::run(gng + " qaoa " + GNG_SOURCE_DIR + "/examples/maxcut-3regular-24.rudy --p 1 --shots 256 --json --qasm " + qasm);
  ASSERT_EQ(r.status, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["optimal_objective"], 31);
  // p = 1 on a 3-regular graph with a few triangles: well above a random cut (18 of 36 edges),
  // a little below the triangle-free 0.6925 per edge.
  EXPECT_GT(j["expected_objective"].get<double>(), 0.65 * 36);
  EXPECT_LT(j["expected_objective"].get<double>(), 0.6925 * 36);
  EXPECT_NEAR(j["approximation_ratio"].get<double>(), j["expected_objective"].get<double>() / 31, 1e-12);
  EXPECT_EQ(j["gammas"].size(), 1u);
  EXPECT_EQ(j["betas"].size(), 1u);
  // Mixed precision: L-BFGS starts on complex<float> states and ends on complex<double> ones.
  EXPECT_GT(j["float_evaluations"].get<int>(), 0);
  EXPECT_LT(j["float_evaluations"].get<int>(), j["evaluations"].get<int>() - 1);  // the last one re-prepares
  EXPECT_LE(j["best"]["objective"].get<double>(), 31);
  EXPECT_NE(j["simulated"].get<std::string>().find("classical"), std::string::npos);
  std::ifstream f(qasm);
  std::string first;
  std::getline(f, first);
  EXPECT_EQ(first, "OPENQASM 3.0;");
}

TEST(Cli, QaoaAndVqeAreSamplersOfSolve) {
  const std::string path = testing::TempDir() + "/onehot.json";
  {
    std::ofstream f(path);
    f << R"({"gng_qubo": 1, "n": 6, "linear": [3, 1, 2, 5, 4, 0], "quadratic": [[0, 3, -2], [2, 5, 1]], "one_hot": [[0, 1, 2], [3, 4, 5]]})";
  }
  for (const char* solver : {"qaoa", "vqe"}) {
    const auto r = test::run(gng + " solve " + path + " --solver " + solver + " --json");
    ASSERT_EQ(r.status, 0) << r.out;
    const auto exact = test::run(gng + " solve " + path + " --solver exact --json");
    EXPECT_EQ(nlohmann::json::parse(r.out)["objective"], nlohmann::json::parse(exact.out)["objective"]) << solver;
  }
  const auto xy = test::run(gng + " qaoa " + path + " --mixer xy --p 2 --json");
  ASSERT_EQ(xy.status, 0) << xy.out;
  const std::string x = nlohmann::json::parse(xy.out)["best"]["x"];
  EXPECT_EQ((x[0] - '0') + (x[1] - '0') + (x[2] - '0'), 1) << x;
  EXPECT_EQ((x[3] - '0') + (x[4] - '0') + (x[5] - '0'), 1) << x;
  EXPECT_EQ(nlohmann::json::parse(xy.out)["states"], 9);  // 3 × 3 one-hot states, not 2^6
  const auto text = test::run(gng + " qaoa " + path + " --mixer xy --p 1");
  EXPECT_NE(text.out.find("over 9 states (the one-hot subspace)"), std::string::npos) << text.out;
  const auto bad = test::run(gng + " qaoa " + GNG_SOURCE_DIR + "/examples/maxcut-3regular-24.rudy --mixer xy");
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.out.find("the xy mixer needs one-hot groups"), std::string::npos) << bad.out;
  const auto big = test::run(gng + " qaoa " + test::shared("data/qubo/bqp/bqp50.txt"));
  EXPECT_EQ(big.status, 1);
  EXPECT_NE(big.out.find("n = 50 qubits needs"), std::string::npos) << big.out;
}

// The search names the table it read, whichever it is (a copy under another name here).
TEST(Cli, SearchNamesTheBenchmarkTableItRead) {
  const std::string copy = testing::TempDir() + "/nb201-imagenet-copy.csv";
  std::ifstream in(test::shared("data/nb201/nb201-cifar10.csv"), std::ios::binary);
  std::ofstream(copy, std::ios::binary) << in.rdbuf();
  const auto r = test::run(gng + " search --benchmark nb201 --data " + copy + " --budget 25 --seeds 1 --threads 1 --json");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out)["benchmark"], "nb201 (nb201-imagenet-copy.csv)");
}

TEST(Cli, HelpAndVersion) {
  EXPECT_EQ(test::run(gng + " --help").status, 0);
  const auto r = test::run(gng + " solve --help");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("--time-limit"), std::string::npos);
  EXPECT_EQ(test::run(gng).status, 2);
}

}  // namespace
}  // namespace gng
