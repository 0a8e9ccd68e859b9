// `gng qkd simulate` as a user runs it.
#include <gtest/gtest.h>

#include <unistd.h>

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
  EXPECT_NE(r.out.find("unknown subcommand 'teleport' (expected simulate or network simulate)"), std::string::npos) << r.out;
}

TEST(QkdCli, NetworkSimulateOverTheMetroMeshWritesJsonAndAPlot) {
  const std::string html = testing::TempDir() + "gng-qkd-net-" + std::to_string(getpid()) + ".html";
  const auto r = test::run(gng + " qkd network simulate " + GNG_SOURCE_DIR + "/examples/qkd/metro-46.yaml --fail 0.05 --trials 5 --eve m00/m07 --json --html " + html);
  ASSERT_EQ(r.status, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_NE(j["simulated"].get<std::string>().find("not photonic hardware"), std::string::npos);
  EXPECT_EQ(j["pairs"].size(), 46u * 45 / 2);
  for (const auto& l : j["links"])
    if (l["a"] == "m00" && l["b"] == "m07") {
      EXPECT_TRUE(l["eavesdropped"].get<bool>());
      EXPECT_EQ(l["rate_bps"], 0);
      EXPECT_NE(l["aborted"].get<std::string>().find("above the abort threshold"), std::string::npos);
    }
  const std::string page = test::run("cat " + html).out;
  EXPECT_NE(page.find("<b>Simulated.</b>"), std::string::npos);
  EXPECT_NE(page.find("<svg"), std::string::npos);
  EXPECT_NE(page.find("m00 – m07"), std::string::npos);
  const auto text = test::run(gng + " qkd network simulate star:5 --km 10");
  EXPECT_NE(text.out.find("busiest relays: kme-0 (6.0 routes)"), std::string::npos) << text.out;
  for (const auto& [args, message] : std::vector<std::pair<std::string, std::string>>{
           {"ring:x", "'ring:x': expected ring:N or star:N with N a number of KMEs"},
           {"ring:4 --eve kme-0/kme-2", "no link kme-0–kme-2 to put an eavesdropper on"},
           {"ring:4 --fail 2", "option --fail must be in [0, 1], got 2"},
           {"/nonexistent.yaml", "/nonexistent.yaml"}}) {
    const auto bad = test::run(gng + " qkd network simulate " + args);
    EXPECT_EQ(bad.status, 1) << args;
    EXPECT_NE(bad.out.find(message), std::string::npos) << args << "\n" << bad.out;
  }
}

}  // namespace
}  // namespace gng
