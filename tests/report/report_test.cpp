#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <regex>
#include <sstream>

#include "core/error.h"
#include "core/rng.h"
#include "report/report.h"
#include "support/paths.h"

namespace gng {
namespace {

namespace fs = std::filesystem;

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

// A run in progress as the engine would describe it: 20 candidates over 4 cycles, a surrogate over
// 12 bits, the usual decisions. Values come from a seeded generator, not from a real run.
ReportData realistic() {
  ReportData r;
  r.run_id = "fmnist-20240611-1";
  r.config = "examples/fashion-mnist.yaml";
  r.state = "awaiting approval";
  r.sampler = "tabu";
  r.sampler_stats = {{"reads", "64"}, {"sweeps", "1000"}, {"distinct samples", "41"}, {"time", "0.031 s"}};
  r.notes = "Training runs on the local CPU; latency is measured on this machine.\nThe QKD link is simulated (BB84, 20 km).";
  r.elapsed_s = 1834;
  r.budget_s = 3600;
  r.cycles_done = 4;
  r.cycles = 6;
  r.objectives = {"accuracy (weight 1)", "latency_ms (weight -0.2)", "params (weight -0.1)"};
  r.bit_names = {"width=16", "width=32", "width=64", "depth=1", "depth=2", "depth=3",
                 "act=relu", "act=gelu", "dropout", "batchnorm", "residual", "kernel=5"};
  Rng rng(11);
  double best = -1e9;
  for (int i = 0; i < 20; ++i) {
    ReportCandidate c;
    c.id = i + 1;
    c.cycle = i / 5 + 1;
    c.bits.clear();
    for (int b = 0; b < 12; ++b) c.bits += rng.below(2) ? '1' : '0';
    c.design = "width=" + std::to_string(16 << rng.below(3)) + " depth=" + std::to_string(1 + rng.below(3)) + " act=gelu";
    c.rung = static_cast<int>(rng.below(3));
    c.epochs = 1 << c.rung;
    const double lat = 0.2 * std::pow(10, 2 * rng.uniform());  // 0.2 … 20 ms: a log-scale axis
    const double acc = 0.78 + 0.1 * std::log10(lat / 0.2) / 2 + 0.06 * rng.uniform();
    c.metrics = {{"accuracy", acc}, {"latency_ms", lat}, {"params", std::floor(1e4 + 2e6 * rng.uniform())},
                 {"energy_mj", 0.5 * lat}, {"robustness", acc - 0.1}};
    c.score = acc - 0.002 * lat;
    c.status = c.rung == 2 ? "evaluated" : "stopped at rung " + std::to_string(c.rung);
    r.candidates.push_back(c);
    best = std::max(best, c.score);
    r.convergence.emplace_back(i + 1, best);
  }
  // The Pareto front (max accuracy, min latency), computed here rather than hard-coded.
  for (auto& a : r.candidates) {
    a.pareto = true;
    for (const auto& b : r.candidates)
      if (&a != &b && b.metrics.at("accuracy") >= a.metrics.at("accuracy") && b.metrics.at("latency_ms") <= a.metrics.at("latency_ms") &&
          (b.metrics.at("accuracy") > a.metrics.at("accuracy") || b.metrics.at("latency_ms") < a.metrics.at("latency_ms")))
        a.pareto = false;
  }
  // Promote the best-scoring candidate on the front.
  ReportCandidate* promote = nullptr;
  for (auto& c : r.candidates)
    if (c.pareto && (!promote || c.score > promote->score)) promote = &c;
  promote->promoted = true;
  r.candidates[3].design = "width=32 <script>alert('x')</script> & more";
  r.couplings.assign(12, std::vector<double>(12, 0));
  for (int i = 0; i < 12; ++i)
    for (int j = i; j < 12; ++j) r.couplings[i][j] = r.couplings[j][i] = (i == j ? 1.5 : 1.0) * (2 * rng.uniform() - 1);
  r.decisions = {{0.0, "generate", "cycle 1: 5 candidates from the tabu sampler"},
                 {412.5, "evaluate", "cycle 1: 2 candidates reached rung 2"},
                 {1210, "select", "surrogate refitted on 15 observations"},
                 {1834, "promote", "candidate on the front proposed; waiting for approval"}};
  r.promoted_metrics = {{"test_accuracy", 0.8734}, {"latency_ms", 1.92}, {"params", 412330}};
  r.promoted_path = "runs/fmnist-20240611-1/model.pt";
  return r;
}

// References to anything outside the page: the report must open offline.
void expect_self_contained(const std::string& html) {
  EXPECT_EQ(count(html, "http://"), count(html, "xmlns=\"http://www.w3.org/2000/svg\""));
  EXPECT_EQ(count(html, "https://"), 0u);
  EXPECT_EQ(count(html, "src="), count(html, "src=\"data:"));
  EXPECT_EQ(count(html, "<script"), 0u);
  EXPECT_EQ(count(html, "<link"), 0u);
  EXPECT_EQ(count(html, "@import"), 0u);
}

// The SVG must be well formed enough for a browser: every <svg> closed, no number printed as nan/inf.
void expect_clean_svg(const std::string& html) {
  EXPECT_EQ(count(html, "<svg"), count(html, "</svg>"));
  const std::regex bad(R"((x|y|x1|x2|y1|y2|cx|cy|r|width|height|d|transform)="[^"]*(nan|inf)[^"]*")", std::regex::icase);
  std::smatch m;
  EXPECT_FALSE(std::regex_search(html, m, bad)) << m.str();
}

TEST(Html, HasThePlotsTablesAndEscapedText) {
  const ReportData r = realistic();
  const std::string html = render_html(r);
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find("<meta charset=\"utf-8\">"), std::string::npos);
  EXPECT_EQ(count(html, "<svg"), 3u);
  for (const char* id : {"id=\"convergence\"", "id=\"pareto\"", "id=\"couplings\"", "id=\"summary\"", "id=\"candidates\"", "id=\"decisions\""})
    EXPECT_EQ(count(html, id), 1u) << id;
  // One table row per candidate, and front/promoted marked.
  const std::size_t body = html.find("<tbody>", html.find("id=\"candidates\""));
  const std::string rows = html.substr(body, html.find("</tbody>", body) - body);
  EXPECT_EQ(count(rows, "<tr"), 20u);
  int front = 0;
  for (const auto& c : r.candidates) front += c.pareto;
  EXPECT_GE(front, 2);
  EXPECT_EQ(count(rows, "class=\"tag front\""), static_cast<std::size_t>(front));
  EXPECT_EQ(count(rows, "class=\"tag prom\""), 1u);
  EXPECT_EQ(count(html, "class=\"onfront\""), static_cast<std::size_t>(front) + 1);  // + the legend's
  EXPECT_EQ(count(html, "class=\"promoted\""), 2u);                                 // marker + legend
  EXPECT_NE(html.find("promoted #"), std::string::npos);
  // The heat map: 12 × 12 cells, 12 row and 12 column labels, a legend.
  EXPECT_EQ(count(html, "<rect x=") - count(html, "class=\"area\"") - count(html, "class=\"outline\"") - count(html, "class=\"legendbar\""),
            144u);
  EXPECT_EQ(count(html, ">act=gelu</text>"), 2u);
  EXPECT_EQ(count(html, "<stop "), 11u);
  // 0.2 … 20 ms spans 100×: the latency axis is logarithmic.
  EXPECT_NE(html.find("latency (ms, log scale)"), std::string::npos);
  // Text is escaped everywhere, including the design inside SVG tooltips.
  EXPECT_EQ(html.find("<script>"), std::string::npos);
  EXPECT_GE(count(html, "width=32 &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more"), 2u);
  // Notes first, before the plots.
  EXPECT_LT(html.find("The QKD link is simulated"), html.find("<svg"));
  for (const char* s : {"fmnist-20240611-1", "awaiting approval", "tabu", "distinct samples", "30m 34s", "1h 00m 00s",
                        "runs/fmnist-20240611-1/model.pt", "test_accuracy", "0.8734", "412,330", "surrogate refitted"})
    EXPECT_NE(html.find(s), std::string::npos) << s;
  expect_self_contained(html);
  expect_clean_svg(html);
}

TEST(Html, SurvivesNanInfinityAndEmptyData) {
  ReportData r = realistic();
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  r.candidates[0].score = nan;
  r.candidates[1].metrics["accuracy"] = nan;
  r.candidates[2].metrics["latency_ms"] = inf;
  r.candidates[4].epochs = -inf;
  r.convergence[3].second = nan;
  r.couplings[2][5] = nan;
  r.couplings[5][2] = inf;
  const std::string html = render_html(r);
  EXPECT_EQ(count(html, "<svg"), 3u);
  EXPECT_NE(html.find(">n/a<"), std::string::npos);
  EXPECT_NE(html.find("−∞"), std::string::npos);
  expect_clean_svg(html);

  // Nothing at all yet: every figure says so instead of drawing garbage.
  ReportData empty;
  empty.run_id = "r0";
  empty.state = "running";
  const std::string e = render_html(empty);
  EXPECT_EQ(count(e, "<svg"), 3u);
  EXPECT_NE(e.find("no evaluations yet"), std::string::npos);
  EXPECT_NE(e.find("no surrogate yet"), std::string::npos);
  EXPECT_NE(e.find("No candidates evaluated yet."), std::string::npos);
  EXPECT_NE(e.find("No model has been promoted yet."), std::string::npos);
  expect_clean_svg(e);
  expect_self_contained(e);

  // Only NaN everywhere: same.
  ReportData all_nan = empty;
  all_nan.candidates.resize(2);
  for (auto& c : all_nan.candidates) c.score = nan, c.metrics = {{"accuracy", nan}, {"latency_ms", nan}};
  all_nan.convergence = {{1, nan}, {nan, 2}};
  all_nan.couplings = {{nan, nan}, {nan, nan}};
  const std::string n = render_html(all_nan);
  EXPECT_EQ(count(n, "<svg"), 3u);
  EXPECT_NE(n.find("no candidate has both accuracy and latency yet"), std::string::npos);
  expect_clean_svg(n);
  EXPECT_NE(render_text(all_nan).find("best score   n/a"), std::string::npos);
}

TEST(Html, LinearLatencyAxisForANarrowRange) {
  ReportData r = realistic();
  for (auto& c : r.candidates) c.metrics["latency_ms"] = 2 + c.id * 0.1;
  const std::string html = render_html(r);
  EXPECT_EQ(html.find("log scale"), std::string::npos);
  EXPECT_NE(html.find("latency (ms)"), std::string::npos);
  // A single point and a zero range still give a valid axis.
  r.candidates.resize(1);
  r.convergence.resize(1);
  expect_clean_svg(render_html(r));
}

TEST(Text, SummarisesTheRun) {
  const ReportData r = realistic();
  const std::string t = render_text(r);
  const std::size_t lines = count(t, "\n");
  EXPECT_GE(lines, 15u);
  EXPECT_LE(lines, 40u);
  EXPECT_NE(t.find("awaiting approval"), std::string::npos);
  EXPECT_NE(t.find("cycles       4 / 6"), std::string::npos);
  EXPECT_NE(t.find("30m 34s of 1h 00m 00s (51%"), std::string::npos);
  EXPECT_NE(t.find("evaluations  20"), std::string::npos);
  EXPECT_NE(t.find("runs/fmnist-20240611-1/model.pt"), std::string::npos);
  EXPECT_NE(t.find("test_accuracy 0.8734"), std::string::npos);
  // The best candidate heads the top-5 table and the "best score" line.
  const ReportCandidate* best = &r.candidates[0];
  for (const auto& c : r.candidates)
    if (c.score > best->score) best = &c;
  char buf[64];
  std::snprintf(buf, sizeof buf, "best score   %.4g  #%d", best->score, best->id);
  EXPECT_NE(t.find(buf), std::string::npos) << t;
  const std::size_t table = t.find("top candidates");
  ASSERT_NE(table, std::string::npos);
  EXPECT_EQ(count(t.substr(table), "\n"), 2u + 5u);
  std::snprintf(buf, sizeof buf, "\n  %5d ", best->id);
  EXPECT_EQ(t.find(buf, table), t.find('\n', t.find('\n', table) + 1)) << t;
}

class Files : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("gng-report-" + std::string(info->name()) + "-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::permissions(dir_ / "ro", fs::perms::owner_all, ec);
    fs::remove_all(dir_);
  }
  fs::path dir_;
};

TEST_F(Files, WriteReportReplacesAtomically) {
  const std::string path = (dir_ / "report.html").string();
  std::ofstream(path) << "old";
  const ReportData r = realistic();
  write_report(path, r);
  EXPECT_EQ(slurp(path), render_html(r));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  // Unwritable: a missing directory, and a read-only one (unless we are root, who may write anyway).
  const std::string missing = (dir_ / "no" / "such" / "report.html").string();
  try {
    write_report(missing, r);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "cannot write " + missing + ": No such file or directory");
  }
  fs::create_directories(dir_ / "ro");
  fs::permissions(dir_ / "ro", fs::perms::owner_read | fs::perms::owner_exec);
  if (geteuid() != 0) {
    const std::string ro = (dir_ / "ro" / "report.html").string();
    try {
      write_report(ro, r);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()), "cannot write " + ro + ": Permission denied");
    }
  }
  // The target is a directory: the rename fails and the temporary file is cleaned up.
  fs::create_directories(dir_ / "taken.html" / "x");
  const std::string taken = (dir_ / "taken.html").string();
  try {
    write_report(taken, r);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("cannot write " + taken + ": rename", 0), 0u) << e.what();
  }
  EXPECT_FALSE(fs::exists(taken + ".tmp"));
}

// The page really parses and renders in a browser: headless Chromium's DOM has the plots and the
// tables, and its screenshot is a real picture.
TEST_F(Files, RendersInHeadlessChromium) {
  const std::string chromium = "/usr/bin/chromium";
  ASSERT_TRUE(fs::exists(chromium)) << chromium << " is missing: install the Debian package 'chromium' (scripts/setup.sh does)";
  const std::string page = (dir_ / "report.html").string();
  write_report(page, realistic());
  const std::string flags = " --headless --no-sandbox --disable-gpu --user-data-dir=" + (dir_ / "profile").string();

  const test::Run dom = test::run(chromium + flags + " --dump-dom file://" + page + " 2>/dev/null");
  ASSERT_EQ(dom.status, 0) << dom.out;
  EXPECT_EQ(count(dom.out, "<svg"), 3u) << dom.out.substr(0, 2000);
  EXPECT_NE(dom.out.find("<table id=\"candidates\">"), std::string::npos);
  EXPECT_NE(dom.out.find("<circle"), std::string::npos);
  EXPECT_NE(dom.out.find("class=\"step\""), std::string::npos);
  EXPECT_NE(dom.out.find("&lt;script&gt;alert"), std::string::npos);
  EXPECT_EQ(dom.out.find("<script>alert"), std::string::npos);

  const std::string png = (dir_ / "report.png").string();
  const test::Run shot = test::run(chromium + flags + " --screenshot=" + png + " --window-size=1200,2000 file://" + page);
  ASSERT_EQ(shot.status, 0) << shot.out;
  ASSERT_TRUE(fs::exists(png)) << shot.out;
  EXPECT_GT(fs::file_size(png), 10u * 1024);
  EXPECT_EQ(slurp(png).substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
}

}  // namespace
}  // namespace gng
