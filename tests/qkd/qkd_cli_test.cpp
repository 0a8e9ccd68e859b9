// `gng qkd simulate` as a user runs it.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "support/paths.h"

namespace gng {
namespace {

const std::string gng = GNG_BINARY;

TEST(QkdCli, SimulateJsonHasARowPerDistance) {
  const auto r = test::run(gng + " qkd simulate --km 10,50 --seed 1 --json");
  ASSERT_EQ(r.status, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["simulated"], true);
  EXPECT_EQ(j["seed"], 1);
  ASSERT_EQ(j["rows"].size(), 2u);
  for (const auto& row : j["rows"]) {
    for (const char* f : {"km", "pulses", "detections", "sifted", "qber_estimated", "qber_true", "qber_predicted", "leak_ec",
                          "ec_efficiency", "final_bits", "key_rate_bits_per_pulse", "key_rate_bps", "bound_bits_per_pulse",
                          "bound_bps", "ratio", "aborted", "reason", "time_s"})
      EXPECT_TRUE(row.contains(f)) << f;
    EXPECT_EQ(row["aborted"], false) << row["reason"];
    EXPECT_GT(row["final_bits"].get<double>(), 0);
    EXPECT_GT(row["ratio"].get<double>(), 0.5);
    EXPECT_LT(row["ratio"].get<double>(), 1);
  }
  EXPECT_EQ(j["rows"][0]["km"], 10);
  EXPECT_GT(j["rows"][0]["key_rate_bps"].get<double>(), j["rows"][1]["key_rate_bps"].get<double>());
}

TEST(QkdCli, TextSaysItIsSimulatedAndAbortedRowsSayWhy) {
  const auto r = test::run(gng + " qkd simulate --km 10 --eve 1 --seed 2 --pulses 2000000");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(r.out.rfind("simulated BB84 link", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("not photonic hardware"), std::string::npos);
  EXPECT_NE(r.out.find("aborted: estimated QBER"), std::string::npos) << r.out;
}

TEST(QkdCli, BadOptionsExitOneWithAClearMessage) {
  struct Case {
    std::string args, message;
  };
  for (const Case& c : std::vector<Case>{
           {"--km 10,abc", "gng qkd: error: --km: expected distances in km like 10,25,50, got 'abc'"},
           {"--km -5", "gng qkd: error: fibre length must be >= 0 km, got -5"},
           {"--eve 2", "option --eve must be in [0, 1], got 2"},
           {"--pulses 0", "option --pulses must be in [1, 1000000000000], got 0"},
       }) {
    const auto r = test::run(gng + " qkd simulate " + c.args);
    EXPECT_EQ(r.status, 1) << c.args;
    EXPECT_NE(r.out.find(c.message), std::string::npos) << c.args << "\n" << r.out;
  }
  const auto r = test::run(gng + " qkd teleport");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("unknown subcommand 'teleport' (expected simulate)"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace gng
