#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <regex>
#include <fstream>
#include <iomanip>
#include <map>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "audit/log.h"
#include "core/error.h"
#include "core/file.h"
#include "data/dataset.h"
#include "lifecycle/config.h"
#include "lifecycle/registry.h"
#include "node/grid.h"
#include "node/node.h"
#include "secure/crypto.h"
#include "support/error_of.h"
#include "support/paths.h"

namespace gng {
namespace {

namespace fs = std::filesystem;

using test::error_of;

// A fresh folder holding the tiny run file, with the policy replaced when given.
struct Sandbox {
  fs::path dir;
  explicit Sandbox(const std::string& policy = "") {
    dir = fs::temp_directory_path() / ("gng-life-" + std::to_string(getpid()) + "-" + std::to_string(counter()++));
    fs::remove_all(dir);
    fs::create_directories(dir / "runs");
    const fs::path data = fs::path(GNG_SOURCE_DIR) / "tests/lifecycle/data";
    fs::copy_file(data / "tiny.yaml", dir / "tiny.yaml");
    if (policy.empty()) {
      fs::copy_file(data / "tiny-policy.yaml", dir / "tiny-policy.yaml");
    } else {
      std::ofstream(dir / "tiny-policy.yaml") << policy;
    }
  }
  ~Sandbox() { fs::remove_all(dir); }
  static int& counter() {
    static int n = 0;
    return n;
  }
  std::string config() const { return (dir / "tiny.yaml").string(); }
  std::string runs() const { return (dir / "runs").string(); }
  // The one run folder under runs/ (empty until the run has created it).
  std::string run_dir() const {
    for (const auto& e : fs::directory_iterator(dir / "runs")) return e.path().string();
    return "";
  }
};

std::string gng(const std::string& args) { return std::string(GNG_BINARY) + " " + args; }

// The pids of node `id`, in the order the orchestrator started it (it records each one).
std::vector<pid_t> started_nodes(const std::string& run_dir, const std::string& id) {
  std::vector<pid_t> pids;
  for (const auto& d : Registry(run_dir + "/registry.db", false).decisions()) {
    int pid = 0;
    if (d.kind == "site" && sscanf(d.text.c_str(), (id + " joined from %*s (local node, pid %d;").c_str(), &pid) == 1) pids.push_back(pid);
  }
  return pids;
}

// Starts `gng ARGS` as a child process with its output in `log`; returns its pid.
pid_t spawn(const std::string& args, const std::string& log) {
  const pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", ("exec " + gng(args) + " >" + log + " 2>&1").c_str(), nullptr);
    _exit(127);
  }
  return pid;
}

std::map<std::pair<int, int>, double> evaluations(const std::string& run_dir) {
  std::map<std::pair<int, int>, double> m;
  if (run_dir.empty() || !fs::exists(run_dir + "/registry.db")) return m;
  try {
    Registry reg(run_dir + "/registry.db", false);
    for (const auto& e : reg.evaluations()) m[{e.candidate, e.rung}] = e.score;
  } catch (const Error&) {
    // created but not initialised yet
  }
  return m;
}

// Waits until `ready()` or the timeout; true if ready.
bool wait_for(const std::function<bool()>& ready, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (ready()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return ready();
}

TEST(Config, ReadsTheExampleRunAndPolicy) {
  const RunConfig c = RunConfig::from_file(std::string(GNG_SOURCE_DIR) + "/examples/fashion-mnist.yaml");
  EXPECT_EQ(c.name, "fashion-mnist");
  EXPECT_FALSE(c.space_text.empty());
  EXPECT_GE(c.rungs.size(), 2u);
  const Policy p = Policy::from_yaml(c.policy_text, c.policy_source);
  EXPECT_GT(p.objectives.at("accuracy"), 0);
  EXPECT_EQ(p.wall_clock_s, 1800);
}

TEST(Config, RejectsMalformedSettingsWithFileAndLine) {
  EXPECT_EQ(error_of([] { Policy::from_yaml("objectives: {accuracy: 1}\nbudgets: {cycles: 2, wallclock: 5}\n", "p.yaml"); }),
            "p.yaml:2: unknown key 'wallclock' in budgets (expected candidates, cycles, max_flops, max_params, wall_clock_s)");
  EXPECT_EQ(error_of([] { Policy::from_yaml("approval: sometimes\n", "p.yaml"); }),
            "p.yaml:1: approval must be 'auto' or 'manual', got 'sometimes'");
  EXPECT_EQ(error_of([] { Policy::from_yaml("safety: {min_accuracy: 1.5}\n", "p.yaml"); }),
            "p.yaml:1: 'min_accuracy' must be in [0, 1], got 1.5");
  EXPECT_EQ(error_of([] { Policy::from_yaml("objectives: {accuracy: [1}\n", "p.yaml"); }).substr(0, 26),
            "p.yaml:1: malformed YAML: ");
  EXPECT_EQ(error_of([] { Policy::from_yaml("budgets: {cycles: many}\n", "p.yaml"); }),
            "p.yaml:1: 'cycles' has the wrong type (got 'many')");
  // A key that is not a name (found by bench/fuzz's settings target: it escaped as yaml-cpp's
  // conversion error).
  EXPECT_EQ(error_of([] { Policy::from_yaml("{[a]: 1}\n", "p.yaml"); }), "p.yaml:1: a key in the policy must be a name, not a list");
  EXPECT_EQ(error_of([] { RunConfig::from_yaml("space: s\npolicy: p\nsearch: {{x: 1}: 2}\n", "r.yaml", "", ""); }),
            "r.yaml:3: a key in search must be a name, not a mapping");
  EXPECT_EQ(error_of([] { RunConfig::from_yaml("space: s\npolicy: p\nworkers: 2\nspeed: 11\n", "r.yaml", "", ""); }),
            "r.yaml:4: unknown key 'speed' in the run file (expected data, evaluation, federation, fidelity, name, nodes, pki, policy, search, space, workers)");
  EXPECT_EQ(error_of([] { RunConfig::from_yaml("policy: p\n", "r.yaml", "", ""); }),
            "r.yaml: missing 'space' (a search-space file or an inline mapping)");
  EXPECT_EQ(error_of([] {
              RunConfig::from_yaml("space: s\npolicy: p\nfidelity: {rungs: [{epochs: 2}, {epochs: 1}]}\n", "r.yaml", "", "");
            }),
            "r.yaml:3: each rung must train at least as much as the one before");
  EXPECT_EQ(error_of([] { RunConfig::from_file("/nonexistent/run.yaml"); }), "cannot read /nonexistent/run.yaml: No such file or directory");
  // An unknown sampler is named when the file is read (it failed when cycle 3 began, after two
  // cycles of training).
  EXPECT_EQ(error_of([] { RunConfig::from_yaml("space: s\npolicy: p\nsearch: {sampler: anealing}\n", "r.yaml", "", ""); }),
            "r.yaml:3: search.sampler must be exact, anneal, tabu, qaoa or vqe, got 'anealing'");
  // A settings file is read no further than 1 MiB: a 70 MB one took 56 s and 7.7 GB to refuse.
  const std::string big = testing::TempDir() + "gng-big-run.yaml";
  write_file_atomic(big, "name: x\n# " + std::string(2u << 20, 'x') + "\n");
  EXPECT_EQ(error_of([&] { RunConfig::from_file(big); }), big + ": larger than 1048576 bytes, refused");
  EXPECT_EQ(error_of([] { RunConfig::from_file("/dev/zero"); }), "/dev/zero: larger than 1048576 bytes, refused");
  EXPECT_EQ(RunConfig::from_yaml("space: s\npolicy: p\nnodes: {local: 5}\nfederation: {rounds: 2, rule: krum, multi: 4}\n", "r.yaml", "", "")
                .federation.multi,
            4);
  EXPECT_EQ(error_of([] { RunConfig::from_yaml("space: s\npolicy: p\nnodes: {local: 5}\nfederation: {rule: krum, multi: 0}\n", "r.yaml", "", ""); }),
            "r.yaml:4: 'federation.multi' must be in [1, 100], got 0");
  EXPECT_EQ(error_of([] { RunConfig::from_yaml("space: s\npolicy: p\nnodes: {local: 3}\nfederation: {rounds: 2, rule: krum}\n", "r.yaml", "", ""); }),
            "r.yaml:4: Krum tolerating 1 attacker(s) needs at least 5 nodes, the run has 3");
  EXPECT_EQ(error_of([] { RunConfig::from_yaml("space: s\npolicy: p\nnodes: {local: 5}\nfederation: {rounds: 2, rule: krum, multi: 5}\n", "r.yaml", "", ""); }),
            "r.yaml:4: federation.multi (5) must be at most nodes − byzantine (4)");
  EXPECT_EQ(error_of([] { Policy::from_yaml("qkd: sometimes\n", "p.yaml"); }),
            "p.yaml:1: qkd must be required, optional or off, got 'sometimes'");
  EXPECT_EQ(Policy::from_yaml("qkd: optional\n", "p.yaml").qkd, "optional");
  EXPECT_EQ(Policy::from_yaml("approval: auto\n", "p.yaml").qkd, "required");
  EXPECT_EQ(error_of([] { RunConfig::from_yaml("space: s\npolicy: p\nnodes: {local: 2, eavesdropper: 2}\n", "r.yaml", "", ""); }),
            "r.yaml:3: 'nodes.eavesdropper' must be in [0, 1], got 2");
  EXPECT_EQ(RunConfig::from_yaml("space: s\npolicy: p\nnodes: {min: 2, kme: '10.0.0.1:8443'}\n", "r.yaml", "", "").kme.text(), "10.0.0.1:8443");
  EXPECT_EQ(error_of([] { RunConfig::from_yaml("space: s\npolicy: p\nnodes: {local: 2, kme: '10.0.0.1:8443'}\n", "r.yaml", "", ""); }).substr(0, 52),
            "r.yaml:3: nodes.kme names the orchestrator site's KM");
  EXPECT_EQ(error_of([] { RunConfig::from_yaml("space: s\npolicy: p\nnodes: {min: 2, kme: '10.0.0.1:8443', link_km: 5}\n", "r.yaml", "", ""); }),
            "r.yaml:3: nodes.link_km shapes the run's own KMEs; with nodes.kme your QKD network's topology does");
  EXPECT_EQ(error_of([] { RunConfig::from_yaml("space: s\npolicy: p\nnodes: {local: 2, partition: shuffled}\n", "r.yaml", "", ""); }),
            "r.yaml:3: nodes.partition must be iid or dirichlet, got 'shuffled'");
  EXPECT_EQ(error_of([] { RunConfig::from_yaml("space: s\npolicy: p\nfederation: {rounds: 2}\n", "r.yaml", "", ""); }),
            "r.yaml:3: federation needs nodes (nodes: {local: N} or {min: N})");
  EXPECT_EQ(error_of([] { RunConfig::from_yaml("space: s\npolicy: p\nnodes: {local: 3}\nfederation: {rule: mean}\n", "r.yaml", "", ""); }),
            "r.yaml:4: federation.rule must be fedavg, trimmed_mean, median or krum, got 'mean'");
  EXPECT_EQ(RunConfig::from_yaml("space: s\npolicy: p\nnodes: {min: 2}\npki: /srv/ca\n", "r.yaml", "", "").pki, "/srv/ca");
  EXPECT_EQ(error_of([] { RunConfig::from_yaml("space: s\npolicy: p\npki: /srv/ca\n", "r.yaml", "", ""); }),
            "r.yaml:3: pki is the sites' CA, and the run has no nodes");
}

TEST(Config, ScoreAndSafetyFollowThePolicy) {
  const Policy p = Policy::from_yaml(
      "objectives: {accuracy: 1.0, latency_ms: -0.01}\nsafety: {min_accuracy: 0.8, max_latency_ms: 2}\n", "p");
  EXPECT_DOUBLE_EQ(p.score({{"accuracy", 0.9}, {"latency_ms", 1.5}}), 0.9 - 0.015);
  EXPECT_EQ(p.safety_violation({{"accuracy", 0.9}, {"latency_ms", 1.5}}), "");
  EXPECT_EQ(p.safety_violation({{"accuracy", 0.7}, {"latency_ms", 1.5}}), "accuracy 0.7 < 0.8");
  EXPECT_EQ(p.safety_violation({{"accuracy", 0.9}, {"latency_ms", 3}}), "latency 3 ms > 2 ms");
  EXPECT_EQ(p.safety_violation({{"latency_ms", 1}}), "accuracy nan < 0.8");  // unmeasured is unsafe
}

// A reader never writes: gng status on an empty registry file says what it is and leaves it empty.
TEST(Registry, StatusOfAnEmptyFileRefusesItAndLeavesItEmpty) {
  const fs::path dir = fs::temp_directory_path() / ("gng-empty-run-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "registry.db").flush();
  const auto r = test::run(gng("status " + dir.string()));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find((dir / "registry.db").string() + ": not a gng registry"), std::string::npos) << r.out;
  EXPECT_EQ(fs::file_size(dir / "registry.db"), 0u);
  fs::remove_all(dir);
}

TEST(Registry, RefusesAFileThatIsNotARegistry) {
  const auto path = fs::temp_directory_path() / ("gng-notdb-" + std::to_string(getpid()));
  std::ofstream(path) << "this is not sqlite";
  EXPECT_NE(error_of([&] { Registry r(path.string(), false); }).find("not a gng registry"), std::string::npos);
  fs::remove(path);
  EXPECT_EQ(error_of([&] { Registry r(path.string(), false); }),
            path.string() + ": no registry here (is this a runs/<id> folder?)");
}

TEST(Run, CompletesWritesReportModelAndStatus) {
  Sandbox box;
  const auto r = test::run(gng("run " + box.config() + " --runs " + box.runs()));
  ASSERT_EQ(r.status, 0) << r.out;
  const std::string dir = box.run_dir();
  EXPECT_TRUE(fs::exists(dir + "/report.html"));
  EXPECT_TRUE(fs::exists(dir + "/promoted.pt"));
  EXPECT_TRUE(fs::exists(dir + "/promoted.pt.json"));
  // It ends with the audit trail's verdict and the promoted model; no nodes, so no QKD in the notes.
  EXPECT_NE(r.out.find("\naudit log: OK: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("promoted model: " + dir + "/promoted.pt (serve it: gng serve "), std::string::npos) << r.out;
  EXPECT_EQ(read_file(dir + "/report.html").find("BB84"), std::string::npos);
  // The report keeps a copy of the trail's latest signed head, the one in audit-head.json.
  const audit::TreeHead head = audit::parse_head_json(read_file(dir + "/audit-head.json"), "audit-head.json");
  EXPECT_EQ(head.size, audit::AuditLog(dir + "/audit.db", false).size());
  EXPECT_NE(read_file(dir + "/report.html").find(audit::to_hex(head.root)), std::string::npos);
  Registry reg(dir + "/registry.db", false);
  EXPECT_EQ(reg.meta("state"), "finished");
  EXPECT_EQ(reg.candidates().size(), 8u);
  // Successive halving: every candidate at rung 0, two per cycle at rung 1.
  int rung0 = 0, rung1 = 0;
  for (const auto& e : reg.evaluations()) (e.rung == 0 ? rung0 : rung1)++;
  EXPECT_EQ(rung0, 8);
  EXPECT_EQ(rung1, 4);
  // The second cycle came from the surrogate, the first at random.
  EXPECT_EQ(reg.candidates().front().origin, "random feasible design (no surrogate yet)");
  EXPECT_EQ(reg.candidates().back().origin.rfind("Thompson sample of the surrogate fitted on 4 scores", 0), 0u);
  ASSERT_FALSE(reg.promotions().empty());
  EXPECT_EQ(reg.promotions().back().approved_by, "policy (auto)");
  const double test_acc = std::stod(reg.meta("test_accuracy").value_or("0"));
  EXPECT_GT(test_acc, 0.3);  // chance is 0.1
  EXPECT_NE(r.out.find("rung 1"), std::string::npos);
  EXPECT_NE(r.out.find("left"), std::string::npos);

  // gng status reads the registry and writes nothing to it.
  const auto bytes_before = read_file(dir + "/registry.db");
  const auto time_before = fs::last_write_time(dir + "/registry.db");
  const auto s = test::run(gng("status " + dir));
  ASSERT_EQ(s.status, 0) << s.out;
  EXPECT_EQ(read_file(dir + "/registry.db"), bytes_before);
  EXPECT_EQ(fs::last_write_time(dir + "/registry.db"), time_before);
  EXPECT_NE(s.out.find("finished"), std::string::npos) << s.out;
  EXPECT_NE(s.out.find("audit log: OK: "), std::string::npos) << s.out;

  // The exported model loads in Python's PyTorch.
  const auto py = test::run("/usr/bin/python3 -c \"import torch; d = torch.load('" + dir +
                            "/promoted.pt'); print('tensors', len(d))\"");
  EXPECT_EQ(py.status, 0) << py.out;
  EXPECT_NE(py.out.find("tensors"), std::string::npos) << py.out;

  // The audit trail: the policy first, every decision, the promotion with the model's digest; it verifies.
  const auto v = test::run(gng("audit verify " + dir));
  EXPECT_EQ(v.status, 0) << v.out;
  EXPECT_EQ(v.out.rfind("OK: ", 0), 0u) << v.out;
  {
    audit::AuditLog log(dir + "/audit.db", false);
    const auto entries = log.entries(0, log.size());
    ASSERT_GT(entries.size(), 5u);
    EXPECT_EQ(entries[0].kind, "policy");
    const auto sum = test::run("sha256sum " + dir + "/promoted.pt");
    int promotions = 0;
    for (const auto& e : entries)
      if (e.kind == "promotion") {
        ++promotions;
        EXPECT_NE(e.detail.find(sum.out.substr(0, 64)), std::string::npos) << e.detail;
      }
    EXPECT_EQ(promotions, static_cast<int>(reg.promotions().size()));
  }

  // Resuming a finished run says so, starts nothing, adds nothing (not even to its clock), and re-reports.
  const std::size_t decided = reg.decisions().size();
  const double used = reg.used_seconds();
  const auto again = test::run(gng("run --resume " + dir));
  ASSERT_EQ(again.status, 0) << again.out;
  EXPECT_NE(again.out.find(dir + " has ended (finished): nothing to resume"), std::string::npos) << again.out;
  EXPECT_EQ(again.out.find("resuming "), std::string::npos) << again.out;
  Registry reg2(dir + "/registry.db", false);
  EXPECT_EQ(reg2.evaluations().size(), 12u);
  EXPECT_EQ(reg2.decisions().size(), decided);
  EXPECT_DOUBLE_EQ(reg2.used_seconds(), used);
}

TEST(Run, KilledAtAnyMomentResumesWithoutLosingEvaluations) {
  Sandbox box;
  const std::string log = (box.dir / "log").string();
  pid_t pid = spawn("run " + box.config() + " --runs " + box.runs(), log);
  // Kill it at different moments: right after the first evaluation, then mid-rung twice more.
  std::map<std::pair<int, int>, double> before;
  for (int k : {1, 4, 9}) {
    ASSERT_TRUE(wait_for([&] { return evaluations(box.run_dir()).size() >= static_cast<std::size_t>(k); }, 120))
        << "no progress; log: " << test::run("cat " + log).out;
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    const auto now = evaluations(box.run_dir());
    for (const auto& [key, score] : before) {
      ASSERT_TRUE(now.count(key)) << "lost evaluation c" << key.first << " rung " << key.second;
      EXPECT_EQ(now.at(key), score);
    }
    before = now;
    pid = spawn("run --resume " + box.run_dir(), log);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << test::run("cat " + log).out;
  const auto final_ = evaluations(box.run_dir());
  for (const auto& [key, score] : before) EXPECT_EQ(final_.at(key), score);
  EXPECT_EQ(final_.size(), 12u);  // nothing evaluated twice, nothing missing
  // The last session's progress lines show the run's best, earlier sessions' evaluations included.
  double best_before = -1e300;
  for (const auto& [key, score] : before) best_before = std::max(best_before, score);
  const std::string all = read_file(log);
  std::smatch m;
  std::string last = all.substr(all.rfind("resuming "));
  int lines = 0;
  while (std::regex_search(last, m, std::regex("\\| best (-?[0-9.]+)"))) {
    EXPECT_GE(std::stod(m[1]), best_before - 1e-4) << m[0];
    ++lines;
    last = m.suffix();
  }
  EXPECT_GT(lines, 0) << all;
  Registry reg(box.run_dir() + "/registry.db", false);
  EXPECT_EQ(reg.meta("state"), "finished");
  EXPECT_EQ(reg.candidates().size(), 8u);
  int resumes = 0;
  for (const auto& d : reg.decisions()) resumes += d.kind == "resume";
  EXPECT_EQ(resumes, 3);
  EXPECT_TRUE(fs::exists(box.run_dir() + "/report.html"));
  const auto v = test::run(gng("audit verify " + box.run_dir()));  // three kills left the trail intact
  EXPECT_EQ(v.status, 0) << v.out;
}

TEST(Run, ManualGateWaitsForApproval) {
  Sandbox box("objectives: {accuracy: 1.0}\nbudgets: {cycles: 1, candidates: 4}\napproval: manual\n");
  const std::string log = (box.dir / "log").string();
  const pid_t pid = spawn("run " + box.config() + " --runs " + box.runs(), log);
  std::string dir;
  int candidate = -1;
  ASSERT_TRUE(wait_for([&] {
    dir = box.run_dir();
    if (dir.empty() || !fs::exists(dir + "/registry.db")) return false;
    try {
      Registry reg(dir + "/registry.db", false);
      for (const auto& d : reg.decisions())
        if (d.kind == "approval") return sscanf(d.text.c_str(), "awaiting approval of c%d", &candidate) == 1;
    } catch (const Error&) {
    }
    return false;
  }, 120)) << test::run("cat " + log).out;
  // Still waiting: nothing promoted without the operator.
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  EXPECT_EQ(waitpid(pid, nullptr, WNOHANG), 0);
  EXPECT_TRUE(Registry(dir + "/registry.db", false).promotions().empty());

  const auto bad = test::run(gng("approve " + dir + " 99"));
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.out.find("no candidate 99"), std::string::npos) << bad.out;
  const auto ok = test::run(gng("approve " + dir + " " + std::to_string(candidate) + " --by tester"));
  ASSERT_EQ(ok.status, 0) << ok.out;
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << test::run("cat " + log).out;
  Registry reg(dir + "/registry.db", false);
  ASSERT_EQ(reg.promotions().size(), 1u);
  EXPECT_EQ(reg.promotions()[0].candidate, candidate);
  EXPECT_EQ(reg.promotions()[0].approved_by, "operator");
  audit::AuditLog trail(dir + "/audit.db", false);
  bool approval = false;
  for (const auto& e : trail.entries(0, trail.size())) approval |= e.kind == "approval" && e.actor == "tester";
  EXPECT_TRUE(approval);
  EXPECT_EQ(test::run(gng("audit verify " + dir)).status, 0);
}

TEST(Run, SafetyConstraintsBlockPromotionAndApproval) {
  Sandbox box("objectives: {accuracy: 1.0}\nbudgets: {cycles: 1, candidates: 4}\nsafety: {min_accuracy: 0.999}\n");
  const auto r = test::run(gng("run " + box.config() + " --runs " + box.runs()));
  ASSERT_EQ(r.status, 0) << r.out;
  Registry reg(box.run_dir() + "/registry.db", false);
  EXPECT_TRUE(reg.promotions().empty());
  EXPECT_FALSE(fs::exists(box.run_dir() + "/promoted.pt"));
  int top = -1;
  for (const auto& e : reg.evaluations())
    if (e.rung == 1) top = e.candidate;
  const auto a = test::run(gng("approve " + box.run_dir() + " " + std::to_string(top)));
  EXPECT_EQ(a.status, 1);
  EXPECT_NE(a.out.find("breaks the policy's safety constraints (accuracy"), std::string::npos) << a.out;
}

TEST(Run, BadConfigFailsBeforeCreatingAnything) {
  Sandbox box("objectives: {acuracy: 1.0}\n");
  const auto r = test::run(gng("run " + box.config() + " --runs " + box.runs()));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("tiny-policy.yaml:1: unknown key 'acuracy' in objectives"), std::string::npos) << r.out;
  EXPECT_EQ(box.run_dir(), "");
  const auto r2 = test::run(gng("run --resume " + box.runs() + "/nothing"));
  EXPECT_EQ(r2.status, 1);
  EXPECT_NE(r2.out.find("no registry here"), std::string::npos) << r2.out;
  const auto r3 = test::run(gng("approve " + box.runs() + " 99999999999"));
  EXPECT_EQ(r3.status, 1);
  EXPECT_NE(r3.out.find("CANDIDATE must be a candidate id such as 7 or c7, got '99999999999'"), std::string::npos) << r3.out;
}

}  // namespace
}  // namespace gng

namespace gng {
namespace {

// The score of every promotion, in order, as the "promote" decisions record it.
std::vector<double> promotion_scores(const Registry& reg) {
  std::vector<double> scores;
  for (const auto& d : reg.decisions()) {
    std::smatch m;
    if (d.kind == "promote" && std::regex_search(d.text, m, std::regex("\\(score (-?[0-9.]+),"))) scores.push_back(std::stod(m[1]));
  }
  return scores;
}

// Three cycles on two nodes. With these seeds cycle 2's best finalist usually beats the promoted
// candidate's top-rung score but loses to its federated model even after its own federation (which
// node trains what depends on timing, so not always). In every run: the promoted model's score
// never falls (the rule before compared top-rung scores only and failed this), each cycle
// federates once, and a refused challenger is not federated again.
TEST(Run, AChallengerIsFederatedBeforeItIsComparedAndOnlyOnce) {
  Sandbox box("objectives: {accuracy: 1.0, latency_ms: -0.001}\nbudgets: {cycles: 3, candidates: 12, wall_clock_s: 900}\n"
              "safety: {min_accuracy: 0.2}\napproval: auto\n");
  std::string config = read_file(box.config());
  config.replace(config.find("search: {seed: 3,"), 17, "search: {seed: 11,");
  config += "nodes: {local: 2, partition: iid}\nfederation: {rounds: 2, epochs: 1}\n";
  write_file_atomic(box.config(), config);
  const auto r = test::run(gng("run " + box.config() + " --runs " + box.runs()));
  ASSERT_EQ(r.status, 0) << r.out;
  Registry reg(box.run_dir() + "/registry.db", false);
  std::map<int, int> federated_per_cycle;
  std::map<std::string, int> challenger_federations;  // "c7" → times federated while not promoted
  for (const auto& d : reg.decisions()) {
    std::smatch m;
    if (d.kind != "federated") continue;
    ++federated_per_cycle[d.cycle];
    if (std::regex_search(d.text, m, std::regex("^(c\\d+) after .* → not promoted$"))) ++challenger_federations[m[1]];
  }
  const std::vector<double> scores = promotion_scores(reg);
  EXPECT_EQ(federated_per_cycle.size(), 3u) << r.out;
  for (const auto& [cycle, n] : federated_per_cycle) EXPECT_EQ(n, 1) << "cycle " << cycle << "\n" << r.out;
  for (const auto& [c, n] : challenger_federations) EXPECT_EQ(n, 1) << c << " federated again after it lost\n" << r.out;
  ASSERT_GE(scores.size(), 2u) << r.out;
  for (std::size_t i = 1; i < scores.size(); ++i) EXPECT_GT(scores[i], scores[i - 1] - 0.001) << "promotion " << i << "\n" << r.out;
  // A refused challenger is on record, so that a resumed run does not federate it again.
  for (const auto& [c, n] : challenger_federations) EXPECT_TRUE(reg.refused().count(std::stoi(c.substr(1)))) << c;
}

// The loop on two local nodes: each holds half of the training images; a node killed mid-run is
// noticed, its candidate reassigned, and it rejoins; every model comes back sealed and audited.
TEST(Run, TrainsOnNodesAndSurvivesANodeKilledMidRun) {
  Sandbox box;
  std::ofstream(box.config(), std::ios::app) << "nodes: {local: 2, partition: iid}\nfederation: {rounds: 2, epochs: 1}\n";
  const std::string log = (box.dir / "log").string();
  const pid_t pid = spawn("run " + box.config() + " --runs " + box.runs(), log);
  // Kill node n1 once it has trained something.
  ASSERT_TRUE(wait_for([&] { return evaluations(box.run_dir()).size() >= 2; }, 180)) << test::run("cat " + log).out;
  auto node_pids = [&](const std::string& id) { return started_nodes(box.run_dir(), id); };
  ASSERT_EQ(node_pids("n1").size(), 1u);
  ASSERT_EQ(kill(node_pids("n1")[0], SIGKILL), 0);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << test::run("cat " + log).out;

  Registry reg(box.run_dir() + "/registry.db", false);
  EXPECT_EQ(reg.meta("state"), "finished");
  EXPECT_EQ(evaluations(box.run_dir()).size(), 12u);  // nothing lost, nothing twice
  int up = 0, down = 0;
  for (const auto& d : reg.decisions()) {
    up += d.kind == "site" && d.text.find(" joined from 127.0.0.1:") != std::string::npos;
    down += d.kind == "node" && d.text.find("is down") != std::string::npos;
  }
  EXPECT_GE(up, 3) << "two nodes at the start and n1 again after its death";
  EXPECT_GE(down, 1);
  // Each cycle federated the promoted model: two FedAvg rounds over both nodes' states.
  int rounds = 0, federated = 0;
  for (const auto& d : reg.decisions()) {
    rounds += d.kind == "federate" && d.text.find("(fedavg of n1, n2)") != std::string::npos ||
              d.kind == "federate" && d.text.find("(fedavg of n2, n1)") != std::string::npos;
    federated += d.kind == "federated";
  }
  EXPECT_EQ(rounds, 4);
  EXPECT_EQ(federated, 2);
  // The promoted model never gets worse: every promotion (a candidate, its federated model, a
  // challenger federated before it is compared) scores above the model it replaces, all on the
  // orchestrator's validation set (less 0.001 for re-measured latency: 0.002 per ms).
  {
    const std::vector<double> scores = promotion_scores(reg);
    ASSERT_GE(scores.size(), 2u);  // a candidate, then (at least) its federated model
    for (std::size_t i = 1; i < scores.size(); ++i) EXPECT_GT(scores[i], scores[i - 1] - 0.001) << "promotion " << i;
  }
  // `gng status` shows the metrics the promoted weights were measured with: the federated model's
  // (its last round) when federation replaced the candidate's weights, else the candidate's own.
  {
    const auto promos = reg.promotions();
    ASSERT_FALSE(promos.empty());
    std::string expected;
    if (promos.back().federated) {
      for (const auto& d : reg.decisions()) {
        std::smatch m;
        if (d.kind == "federate" && d.cycle == promos.back().cycle && std::regex_search(d.text, m, std::regex("accuracy (0\\.\\d{4})")))
          expected = m[1];
      }
    } else {
      for (const auto& e : reg.evaluations())
        if (e.candidate == promos.back().candidate && e.metrics.count("accuracy")) {
          char buf[32];
          std::snprintf(buf, sizeof buf, "%.4g", e.metrics.at("accuracy"));
          expected = buf;  // the highest rung's, which comes last
        }
    }
    ASSERT_FALSE(expected.empty());
    const auto st = test::run(gng("status " + box.run_dir()));
    EXPECT_NE(st.out.find("accuracy " + expected + " "), std::string::npos) << promos.back().approved_by << "\n" << st.out;
  }
  // The promoted model was deployed to both nodes, and the next cycle began by pulling telemetry.
  int deploys = 0, telemetry = 0;
  for (const auto& d : reg.decisions()) {
    deploys += d.kind == "deploy" && d.text.find(" serves model ") != std::string::npos;
    telemetry += d.kind == "telemetry";
  }
  EXPECT_GE(deploys, 2);
  EXPECT_GE(telemetry, 1);
  // Top-rung models came back sealed from the nodes, and the nodes audited what they sent.
  ASSERT_FALSE(reg.promotions().empty());
  EXPECT_TRUE(fs::exists(reg.promotions().back().model));
  const auto v = test::run(gng("audit verify " + box.run_dir()));
  EXPECT_EQ(v.status, 0) << v.out;
  // QKD is on (the policy's default: required): every envelope, either way, carried a key from the
  // sites' KMEs, and the orchestrator's trail holds its side of each exchange.
  std::size_t exchanges = 0, keyed = 0;
  for (const char* n : {"n1", "n2"}) {
    audit::AuditLog node_log(box.run_dir() + "/nodes/" + n + "/audit.db", false);
    for (const auto& e : node_log.entries(0, node_log.size()))
      if (e.kind == "exchange") ++exchanges, keyed += nlohmann::json::parse(e.detail).value("mode", "") == "qkd+pqc";
  }
  EXPECT_GE(exchanges, 4u + 16u);  // two top-rung models per cycle; per round and node a state in and out
  EXPECT_EQ(keyed, exchanges);
  std::size_t at_orchestrator = 0;
  audit::AuditLog run_log(box.run_dir() + "/audit.db", false);
  for (const auto& e : run_log.entries(0, run_log.size()))
    if (e.kind == "exchange") {
      ++at_orchestrator;
      EXPECT_EQ(nlohmann::json::parse(e.detail).value("mode", ""), "qkd+pqc") << e.detail;
    }
  EXPECT_GE(at_orchestrator, 4u + 16u);
  int kme = 0;
  for (const auto& d : reg.decisions()) kme += d.kind == "kme" && d.text.find("QKD required: a KME per site on 127.0.0.1 (3 gng kme processes") == 0;
  EXPECT_EQ(kme, 1);
  // Each site's own KME delivered keys to it; the orchestrator's KME holds none of the nodes' keys.
  EXPECT_TRUE(std::filesystem::exists(box.run_dir() + "/qkd/topology.yaml"));
  for (const char* k : {"kme-orchestrator", "kme-n1", "kme-n2"}) {
    audit::AuditLog kme_log(box.run_dir() + "/qkd/" + k + "/audit.db", false);
    std::size_t delivered = 0;
    for (const auto& e : kme_log.entries(0, kme_log.size())) delivered += e.kind == "qkd-delivered";
    EXPECT_GT(delivered, 0u) << k;
  }
  EXPECT_NE(test::run("pgrep -f '" + box.run_dir() + "/[q]kd/topology.yaml'").status, 0) << "a KME outlived the run";
  // The report says which parts were simulated.
  EXPECT_NE(read_file(box.run_dir() + "/report.html").find("QKD keys from a simulated BB84 link"), std::string::npos);
  // n1 came back, and no node outlives the run.
  EXPECT_EQ(node_pids("n1").size(), 2u);
  for (const char* n : {"n1", "n2"})
    for (pid_t p : node_pids(n)) EXPECT_NE(kill(p, 0), 0) << n << " (pid " << p << ") still runs";
  // Damaged federated metrics in the registry: status names them and fails, rather than crash.
  ASSERT_TRUE(reg.promotions().back().federated);
  EXPECT_FALSE(reg.promotions().back().metrics.empty());
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((box.run_dir() + "/registry.db").c_str(), &db), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(db, "UPDATE promotions SET metrics = '{\"accuracy\": ' WHERE federated = 1", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  const auto damaged = test::run(gng("status " + box.run_dir()));
  EXPECT_EQ(damaged.status, 1) << damaged.out;
  EXPECT_NE(damaged.out.find("registry.db: corrupt metrics in the registry"), std::string::npos) << damaged.out;

  // Each site kept the run's latest signed audit head in its own trail. With them, a log cut short
  // whose every copy of a head in the run's folder was rolled back to an older genuine head (which
  // the run's folder alone cannot tell) is named.
  const std::string sites = box.run_dir() + "/nodes/n1," + box.run_dir() + "/nodes/n2";
  const auto witnessed = test::run(gng("audit verify " + box.run_dir() + " --witness " + sites));
  EXPECT_EQ(witnessed.status, 0) << witnessed.out;
  const audit::TreeHead first = run_log.heads().front();
  ASSERT_LT(first.size, run_log.size());
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((box.run_dir() + "/audit.db").c_str(), &db), SQLITE_OK);
    const std::string cut = "DROP TRIGGER entries_append_only_d; DROP TRIGGER heads_append_only_d; DELETE FROM entries WHERE seq >= " +
                            std::to_string(first.size) + "; DELETE FROM heads WHERE tree_size > " + std::to_string(first.size) + ";";
    EXPECT_EQ(sqlite3_exec(db, cut.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  write_file_atomic(box.run_dir() + "/audit-head.json", audit::head_json(first));
  Registry(box.run_dir() + "/registry.db", false).set_meta("audit_head", audit::head_json(first));
  EXPECT_EQ(test::run(gng("audit verify " + box.run_dir())).status, 0);
  const auto caught = test::run(gng("audit verify " + box.run_dir() + " --witness " + sites));
  EXPECT_EQ(caught.status, 1) << caught.out;
  EXPECT_NE(caught.out.find("FAILED: the log is truncated: the signed tree head in " + box.run_dir() + "/nodes/n"), std::string::npos)
      << caught.out;
  EXPECT_NE(caught.out.find("(witness entry "), std::string::npos) << caught.out;
}

// Five nodes federate on a quorum of three: one killed in the middle of the federation leaves its
// round to the other four, the remaining rounds go on, and the node rejoins for the next cycle.
TEST(Run, AFederatedRoundCompletesOnAQuorumWhenANodeDies) {
  Sandbox box;
  std::ofstream(box.config(), std::ios::app) << "nodes: {local: 5, partition: iid}\n"
                                                "federation: {rounds: 3, epochs: 20, quorum: 0.6}\n";
  const std::string log = (box.dir / "log").string();
  const pid_t pid = spawn("run " + box.config() + " --runs " + box.runs(), log);
  auto federated_rounds = [&] {
    std::vector<std::pair<int, std::string>> rounds;  // (cycle, text)
    if (box.run_dir().empty() || !fs::exists(box.run_dir() + "/registry.db")) return rounds;
    try {
      for (const auto& d : Registry(box.run_dir() + "/registry.db", false).decisions())
        if (d.kind == "federate" && d.text.find("(fedavg of ") != std::string::npos) rounds.emplace_back(d.cycle, d.text);
    } catch (const Error&) {  // being created
    }
    return rounds;
  };
  ASSERT_TRUE(wait_for([&] { return !federated_rounds().empty(); }, 300)) << test::run("cat " + log).out;
  const std::vector<pid_t> n3 = started_nodes(box.run_dir(), "n3");
  ASSERT_EQ(n3.size(), 1u);
  ASSERT_EQ(kill(n3[0], SIGKILL), 0);  // during round 2 (or just before it is sent)
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << test::run("cat " + log).out;

  Registry reg(box.run_dir() + "/registry.db", false);
  EXPECT_EQ(reg.meta("state"), "finished");
  const auto rounds = federated_rounds();
  int first_cycle = 0, without_n3 = 0, with_n3_later = 0;
  for (const auto& [cycle, text] : rounds) {
    const std::string from = text.substr(text.find("(fedavg of "), text.find("):") - text.find("(fedavg of "));
    const int listed = static_cast<int>(std::count(from.begin(), from.end(), ',')) + 1;
    if (cycle == rounds.front().first) {
      ++first_cycle;
      if (listed == 4 && from.find("n3") == std::string::npos) ++without_n3;
    } else if (listed == 5) {
      ++with_n3_later;
    }
  }
  EXPECT_EQ(first_cycle, 3) << "every round of the first cycle completed";
  EXPECT_GE(without_n3, 1) << "a round went on with the four nodes left";
  EXPECT_GE(with_n3_later, 1) << "n3 rejoined for the next cycle";
  int down = 0;
  for (const auto& d : reg.decisions()) down += d.kind == "node" && d.text.find("n3 is down") != std::string::npos;
  EXPECT_EQ(down, 1);
  EXPECT_EQ(started_nodes(box.run_dir(), "n3").size(), 2u);
  EXPECT_EQ(test::run(gng("audit verify " + box.run_dir())).status, 0);
}

}  // namespace
}  // namespace gng

namespace gng {
namespace {

TEST(Policy, TelemetryRaisesTheOffendingObjectiveWithinTheBounds) {
  const Policy base = Policy::from_yaml(
      "objectives: {accuracy: 1.0, latency_ms: -0.002}\nsafety: {min_accuracy: 0.8, max_latency_ms: 20}\n"
      "telemetry: {drift_psi: 0.25, boost: 2, max_boost: 4}\n", "p.yaml");
  Policy p = base;
  EXPECT_EQ(p.react({0.05, 10, 0.9}, base), "");  // all within bounds: nothing changes
  EXPECT_EQ(p.objectives, base.objectives);
  const std::string drift = p.react({0.6, 10, -1}, base);
  EXPECT_NE(drift.find("input drift PSI 0.600 > 0.25: weight of robustness 0 → 0.2"), std::string::npos) << drift;
  p.react({0.6, 10, -1}, base);
  p.react({0.6, 10, -1}, base);
  EXPECT_DOUBLE_EQ(p.objectives.at("robustness"), 0.4);  // 0.1 × max_boost: no further
  EXPECT_EQ(p.react({0.6, 10, -1}, base), "");
  const std::string slow = p.react({0, 35, 0.5}, base);
  EXPECT_NE(slow.find("p99 latency 35.000 ms > 20.000 ms: weight of latency_ms -0.002 → -0.004"), std::string::npos) << slow;
  EXPECT_NE(slow.find("feedback accuracy 0.500 < 0.800: weight of accuracy 1 → 2"), std::string::npos) << slow;
  EXPECT_EQ(test::error_of([] { Policy::from_yaml("telemetry: {boost: 0.5}\n", "p.yaml"); }),
            "p.yaml:1: 'boost' must be in [1, 100], got 0.5");
}

}  // namespace
}  // namespace gng

namespace gng {
namespace {

// Deploy → observe end to end: a node serves the model, a shifted input stream arrives, the
// telemetry the orchestrator pulls shows the drift, and the policy raises the robustness weight.
TEST(Observe, AShiftedInputStreamRaisesTheRobustnessWeight) {
  const std::string dir = testing::TempDir() + "gng-observe-" + std::to_string(getpid());
  fs::remove_all(dir);
  node::NodeConfig nc;
  nc.id = "n1";
  nc.pki = test::pki().dir;
  nc.dir = dir;
  nc.data = kFashionMnistDir;
  nc.train_limit = 1000;
  nc.validation = 200;
  test::Grid grid;
  nc.orchestrator = grid.address();
  node::Node node(nc, qkd::Keys{});
  node.start();
  ASSERT_TRUE(grid.wait("n1"));
  node::NodeClient c = grid.client("n1");
  node::TrainJob job;
  job.run = "obs";
  job.family = "cnn";
  job.design_json = Design{{{"width", "4"}}}.to_json();
  job.return_model = true;
  const node::Trained t = c.train(job);
  write_file_atomic(dir + "/m.pt.json", t.model_json);
  write_file_atomic(dir + "/m.pt", t.weights);
  const int port = c.deploy("obs", dir + "/m.pt");
  // 150 over-bright images (every pixel 0.9: far from Fashion-MNIST's mostly dark pixels).
  const auto r = test::run("/usr/bin/python3 -c \"import json, urllib.request as u; print(u.urlopen(u.Request('http://127.0.0.1:" +
                           std::to_string(port) +
                           "/v1/predict', data=json.dumps({'inputs': [[0.9] * 784] * 150}).encode(), "
                           "headers={'Content-Type': 'application/json'})).status)\"");
  ASSERT_EQ(r.status, 0) << r.out;
  const auto tele = nlohmann::json::parse(c.telemetry());
  ASSERT_TRUE(tele.at("drift_psi").is_number()) << tele.dump();
  EXPECT_EQ(tele.at("drift"), "shift");
  const Policy base = Policy::from_yaml("objectives: {accuracy: 1.0}\n", "p.yaml");
  Policy p = base;
  const std::string change = p.react({tele.at("drift_psi").get<double>(), 0, -1}, base);
  EXPECT_NE(change.find("weight of robustness 0 → 0.15"), std::string::npos) << change;
  EXPECT_GT(p.score({{"accuracy", 0.9}, {"robustness", 0.8}}), base.score({{"accuracy", 0.9}, {"robustness", 0.8}}));
}

}  // namespace
}  // namespace gng

namespace gng {
namespace {

// A port free on loopback now (for a run file that must name the same one after a restart).
int free_port() {
  const int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t n = sizeof a;
  if (s < 0 || bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || getsockname(s, reinterpret_cast<sockaddr*>(&a), &n) != 0)
    throw Error("no free port");
  close(s);
  return ntohs(a.sin_port);
}

// MNIST-style IDX training files of `count` images of side × side pixels: another site's data.
void write_idx(const fs::path& dir, int count, int side) {
  fs::create_directories(dir);
  auto be32 = [](std::ofstream& f, uint32_t v) {
    const unsigned char b[4] = {static_cast<unsigned char>(v >> 24), static_cast<unsigned char>(v >> 16),
                                static_cast<unsigned char>(v >> 8), static_cast<unsigned char>(v)};
    f.write(reinterpret_cast<const char*>(b), 4);
  };
  std::ofstream images(dir / "train-images-idx3-ubyte", std::ios::binary), labels(dir / "train-labels-idx1-ubyte", std::ios::binary);
  be32(images, 0x803), be32(images, count), be32(images, side), be32(images, side);
  be32(labels, 0x801), be32(labels, count);
  for (int i = 0; i < count; ++i) {
    images << std::string(static_cast<std::size_t>(side * side), static_cast<char>(i * 7));
    labels.put(static_cast<char>(i % 10));
  }
}

// Sites elsewhere, as the paper's grid has them: a run that needs two remote sites waits for them;
// each enrols where it lives (its key made there, its request signed by the operator's CA, which
// the run uses in place), dials in from its own address (127.0.0.2, .3, .4) and folder with its own
// data (IDX files, or a CSV table) and trains; a site whose data does not fit the task is refused
// and named; `gng nodes` lists the roster. The orchestrator is then killed with -9 mid-cycle and
// resumed: the sites, still running, dial in again by themselves, and the run finishes with
// nothing lost and nothing done twice.
TEST(Grid, RemoteSitesEnrolDialInAndOutliveTheOrchestrator) {
  Sandbox box("objectives: {accuracy: 1.0}\nbudgets: {cycles: 2, candidates: 8, wall_clock_s: 900}\n"
              "safety: {min_accuracy: 0.2}\napproval: auto\nqkd: off\n");
  const int port = free_port();
  const std::string ca = (box.dir / "ca").string();  // the operator's CA, made once
  const auto init = test::run(gng("pki init " + ca));
  ASSERT_EQ(init.status, 0) << init.out;
  std::ofstream(box.config(), std::ios::app) << "pki: ca\nnodes: {min: 2, wait: 2m, listen: 127.0.0.1:" << port << "}\n";
  const std::string log = (box.dir / "log").string();
  pid_t orchestrator = spawn("run " + box.config() + " --runs " + box.runs(), log);
  ASSERT_TRUE(wait_for([&] { return !box.run_dir().empty() && fs::exists(box.run_dir() + "/registry.db"); }, 60))
      << test::run("cat " + log).out;
  EXPECT_FALSE(fs::exists(box.run_dir() + "/pki"));  // no CA of its own
  EXPECT_TRUE(fs::exists(ca + "/issued/orchestrator.pem"));

  std::vector<pid_t> sites;
  auto site = [&](const std::string& id, const std::string& source, const std::string& data, const std::string& flags = "") {
    const fs::path home = box.dir / ("site-" + id);
    const auto made = test::run(gng("node init " + home.string() + " --id " + id));
    EXPECT_EQ(made.status, 0) << made.out;
    const auto sign = test::run(gng("pki sign " + ca + " " + (home / (id + ".csr.pem")).string() + " --role node"));
    EXPECT_EQ(sign.status, 0) << sign.out;
    fs::copy_file(ca + "/issued/" + id + ".pem", home / "issued" / (id + ".pem"));
    fs::copy_file(ca + "/ca.pem", home / "ca.pem");
    fs::copy_file(ca + "/crl.pem", home / "crl.pem");
    std::ofstream(home / "node.yaml") << "id: " << id << "\npki: " << home.string() << "\ndir: " << (home / "work").string()
                                      << "\norchestrator: 127.0.0.1:" << port << "\nsource: " << source << "\n" << data
                                      << "validation: 100\n";
    sites.push_back(spawn("node --config " + (home / "node.yaml").string() + flags, (home / "log").string()));
  };
  // The site whose data does not fit comes first: refused, it leaves the run waiting.
  write_idx(box.dir / "small-images", 400, 8);
  site("site-c", "127.0.0.4", "data: " + (box.dir / "small-images").string() + "\n");
  ASSERT_TRUE(wait_for([&] {
    for (const auto& r : Registry(box.run_dir() + "/registry.db", false).sites())
      if (r.id == "site-c" && r.state == "refused") return true;
    return false;
  }, 60)) << test::run("cat " + log).out << test::run("cat " + (box.dir / "site-site-c/log").string()).out;
  EXPECT_TRUE(evaluations(box.run_dir()).empty());
  site("site-a", "127.0.0.2", std::string("data: ") + kFashionMnistDir + "\nshard: {index: 0, of: 2}\ntrain_limit: 1500\n");
  {  // site-b keeps its images as a table: the other half of those 1,500, one row each
    const Dataset images = read_mnist_dir(kFashionMnistDir, true);
    std::ofstream csv(box.dir / "site-b.csv");
    csv << "label";
    for (int i = 0; i < 784; ++i) csv << ",px" << i;
    csv << "\n" << std::setprecision(3);
    for (std::size_t r = 1; r < 1500; r += 2) {
      csv << images.labels[r];
      for (std::size_t i = 0; i < 784; ++i) csv << ',' << images.pixels[r * 784 + i];
      csv << "\n";
    }
  }
  // site-b serves this one run (--once): the orchestrator's kill is no end, its finish is.
  site("site-b", "127.0.0.3", "data: {csv: " + (box.dir / "site-b.csv").string() + ", shape: [1, 28, 28], classes: 10}\n", " --once");

  // Killed with -9 once two candidates are trained on the sites.
  ASSERT_TRUE(wait_for([&] { return evaluations(box.run_dir()).size() >= 2; }, 180)) << test::run("cat " + log).out;
  ASSERT_EQ(kill(orchestrator, SIGKILL), 0);
  waitpid(orchestrator, nullptr, 0);
  const std::size_t done_before = evaluations(box.run_dir()).size();

  const auto roster = test::run(gng("nodes " + box.run_dir()));
  EXPECT_EQ(roster.status, 0) << roster.out;
  EXPECT_TRUE(std::regex_search(roster.out, std::regex("site-a +up +127\\.0\\.0\\.2:\\d+ +1x28x28, 10 cl"))) << roster.out;
  EXPECT_TRUE(std::regex_search(roster.out, std::regex("site-b +up +127\\.0\\.0\\.3:\\d+ +1x28x28, 10 cl"))) << roster.out;
  EXPECT_TRUE(std::regex_search(roster.out, std::regex("site-c +refused +127\\.0\\.0\\.4:"))) << roster.out;
  EXPECT_NE(roster.out.find("site 'site-c' holds data of 1×8×8 with 10 classes; the run's task is 1×28×28 with 10 classes"),
            std::string::npos)
      << roster.out;

  // Resumed: the sites come back by themselves, and the run finishes.
  orchestrator = spawn("run --resume " + box.run_dir(), log + "2");
  int status = 0;
  waitpid(orchestrator, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << test::run("cat " + log + "2").out;
  int site_b = -1;
  EXPECT_TRUE(wait_for([&] { return waitpid(sites[2], &site_b, WNOHANG) == sites[2]; }, 20))
      << test::run("cat " + (box.dir / "site-site-b/log").string()).out;
  EXPECT_TRUE(WIFEXITED(site_b) && WEXITSTATUS(site_b) == 0);
  EXPECT_NE(test::run("cat " + (box.dir / "site-site-b/log").string()).out.find("gng node 'site-b': left: the run it served is over"),
            std::string::npos);
  for (pid_t p : {sites[0], sites[1]}) kill(p, SIGTERM);
  for (pid_t p : {sites[0], sites[1]}) waitpid(p, nullptr, 0);

  Registry reg(box.run_dir() + "/registry.db", false);
  EXPECT_EQ(reg.meta("state"), "finished");
  EXPECT_GE(evaluations(box.run_dir()).size(), done_before);
  EXPECT_EQ(evaluations(box.run_dir()).size(), 12u);  // 2 cycles × (4 + 2): nothing lost, nothing twice
  std::map<std::string, int> joined;
  for (const auto& d : reg.decisions()) {
    std::smatch m;
    if (d.kind == "site" && std::regex_search(d.text, m, std::regex("^(site-[abc]) joined from 127\\.0\\.0\\.[234]:"))) ++joined[m[1]];
  }
  EXPECT_EQ(joined["site-a"], 2) << "once per session\n" << test::run("cat " + log + " " + log + "2").out;
  EXPECT_EQ(joined["site-b"], 2);
  EXPECT_EQ(joined["site-c"], 0);
  // Each site trained with its own key and kept its own trail; its data stayed where it was.
  for (const char* id : {"site-a", "site-b"}) {
    audit::AuditLog trail((box.dir / (std::string("site-") + id) / "work" / "audit.db").string(), false);
    EXPECT_GT(trail.size(), 0u) << id;
  }
}

// An operator's CA that lacks the orchestrator's identity, and whose key is kept elsewhere (as it
// should be), stops the run before anything is created, naming the command that fixes it; the
// run issues its identities itself only where the CA key lies beside the certificate.
TEST(Grid, AnOperatorCaWithoutTheOrchestratorsIdentityStopsTheRunBeforeItStarts) {
  Sandbox box;
  const std::string ca = (box.dir / "ca").string();
  ASSERT_EQ(test::run(gng("pki init " + ca)).status, 0);
  fs::rename(ca + "/ca.key.pem", box.dir / "offline-ca.key.pem");
  std::ofstream(box.config(), std::ios::app) << "pki: ca\nnodes: {min: 1, wait: 5}\n";
  const auto r = test::run(gng("run " + box.config() + " --runs " + box.runs()));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find(ca + " holds no orchestrator identity 'orchestrator' (issued/orchestrator.pem and its key) and no CA key "
                            "to issue one: gng pki issue " + ca + " --role orchestrator --id orchestrator"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(box.run_dir(), "");
}

}  // namespace
}  // namespace gng
