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
           {"solve /no/such/file", "gng solve: error: /no/such/file: cannot open (No such file or directory)"},
           {"solve " + bad, "gng solve: error: " + bad + ":4: j 7 is outside 1..3"},
           {"solve " + bqp + " --instance 12", "instance 12 requested, the file has 10"},
           {"solve " + bqp + " --solver magic", "unknown solver 'magic' (expected exact, anneal or tabu)"},
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

TEST(Cli, HelpAndVersion) {
  EXPECT_EQ(test::run(gng + " --help").status, 0);
  const auto r = test::run(gng + " solve --help");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("--time-limit"), std::string::npos);
  EXPECT_EQ(test::run(gng).status, 2);
}

}  // namespace
}  // namespace gng
