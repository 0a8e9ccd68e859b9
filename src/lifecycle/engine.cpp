#include "lifecycle/engine.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <iomanip>
#include <map>
#include <nlohmann/json.hpp>
#include <mutex>
#include <optional>
#include <ostream>
#include <set>
#include <sstream>
#include <thread>
#include <deque>
#include <regex>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "audit/log.h"
#include "core/error.h"
#include "core/rng.h"
#include "data/dataset.h"
#include "lifecycle/config.h"
#include "lifecycle/registry.h"
#include "net/node.h"
#include "nn/nn.h"
#include "search/search.h"
#include "secure/crypto.h"
#include "secure/pki.h"
#include "secure/qkd/kme.h"
#include "space/space.h"
#include "surrogate/surrogate.h"

namespace gng {

namespace {

namespace fs = std::filesystem;

std::string bits_text(const Bits& x) {
  std::string s;
  for (auto b : x) s += b ? '1' : '0';
  return s;
}
Bits parse_bits(const std::string& s) {
  Bits x;
  for (char c : s) x.push_back(c == '1');
  return x;
}

std::string fixed(double v, int digits) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(digits) << v;
  return s.str();
}

std::string clock_text(double seconds) {
  const long s = std::max(0L, std::lround(seconds));
  char buf[32];
  snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

// The space as the run uses it: the policy's cost limits added to its budgets, costs from nn.
SearchSpace load_space(const RunConfig& c, const Policy& p, const InputShape& in) {
  SearchSpace space = SearchSpace::from_yaml(c.space_text, c.space_source.empty() ? "<space>" : c.space_source);
  for (const auto& [metric, max] : p.max_cost) {
    const auto it = space.budgets().find(metric);
    space.set_budget(metric, it == space.budgets().end() ? max : std::min(max, it->second));
  }
  const std::string family = space.family();
  space.set_cost_model([family, in](const Design& d) { return design_cost(family, d, in); });
  space.finalize();
  return space;
}

Feasibility feasibility(const SearchSpace& space) {
  Feasibility f;
  f.groups = space.one_of_groups();
  f.one_hot = space.one_hot_groups();
  f.penalise = [&space](const Qubo& q) { return space.with_penalty(q); };
  f.valid = [&space](const Bits& x) { return space.decode(x).has_value(); };
  f.random = [&space](Rng& rng) { return space.random_valid(rng); };
  return f;
}

// The run's audit trail: runs/<id>/audit.db (audit/log.h), its tree heads signed with the run's
// ML-DSA-65 key runs/<id>/audit-key.pem (public half: audit-key.pub.pem, what `gng audit verify`
// reads). Every decision is appended before the registry commits it, so the log never lacks a step
// the registry holds (a kill in between leaves an audited step that the resumed run does again).
constexpr const char* kAuditKey = "audit-key.pem";

std::string sha256_hex(secure::View bytes) { return secure::hex(secure::sha256(bytes)); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n == 0 ? 0 : n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string file_digest(const std::string& path) { return sha256_hex(secure::view(secure::read_file(path))); }

void sign_audit_head(audit::AuditLog& log, const std::string& run_dir) {
  const std::string key = (fs::path(run_dir) / kAuditKey).string();
  if (fs::exists(key)) log.sign_head(secure::SigningKey::from_pem(secure::read_file(key)));
}

class Engine {
 public:
  Engine(const std::string& dir, RunConfig config, std::ostream& out)
      : dir_(dir), c_(std::move(config)), out_(out), reg_((fs::path(dir) / "registry.db").string(), true),
        audit_((fs::path(dir) / audit::kLogFile).string(), true) {
    policy_ = Policy::from_yaml(c_.policy_text, c_.policy_source.empty() ? "<policy>" : c_.policy_source);
    base_policy_ = policy_;
    if (const auto w = reg_.meta("objectives"))  // weights the telemetry changed before a resume
      policy_.objectives = nlohmann::json::parse(*w).get<std::map<std::string, double>>();
    fs::create_directories(fs::path(dir_) / "models");
  }
  ~Engine() { stop_nodes(); }

  void run() {
    session_ = reg_.begin_session();
    used_before_ = reg_.used_seconds();
    const auto runtime = init_training_runtime();
    load_data();
    space_ = std::make_unique<SearchSpace>(load_space(c_, policy_, shape_of(train_)));
    feasible_ = feasibility(*space_);
    note(-1, "start", "session " + std::to_string(session_) + ": " + std::to_string(train_.count) + " training / " +
                          std::to_string(val_.count) + " validation / " + std::to_string(test_.count) + " test images; " +
                          std::to_string(space_->bits()) + " design bits (" + space_->family() + "); BLAS: " + runtime);
    if (runtime.find("slow") != std::string::npos) out_ << "warning: " << runtime << "\n";
    for (int k = 0; k < c_.nodes; ++k) nodes_.push_back({"n" + std::to_string(k + 1)});
    start_nodes();

    std::string stop;
    for (int cycle = 0; cycle < policy_.cycles && stop.empty(); ++cycle) {
      if (cycle_done(cycle)) continue;
      if (left() <= 0) {
        stop = "wall-clock budget spent";
        break;
      }
      observe(cycle);
      const std::vector<int> ids = generate(cycle);
      if (ids.empty()) {
        stop = "candidate budget spent";
        break;
      }
      std::vector<int> contenders = ids;
      for (std::size_t r = 0; r < c_.rungs.size() && !contenders.empty(); ++r) {
        if (r > 0) {
          const std::size_t keep = c_.rungs[r].keep ? c_.rungs[r].keep : (contenders.size() + c_.eta - 1) / c_.eta;
          contenders = best_of(contenders, r - 1, keep);
        }
        if (!train_rung(cycle, r, contenders)) {
          stop = "wall-clock budget spent";
          break;
        }
      }
      if (!stop.empty()) break;
      select(cycle);
      federate_promoted(cycle);
      deploy(cycle);
      note(cycle, "cycle-done", "cycle " + std::to_string(cycle + 1) + " of " + std::to_string(policy_.cycles) + " done");
    }
    finish(stop);
  }

 private:
  void load_data() {
    const Dataset all = read_mnist_dir(c_.data_dir, true);
    Dataset train_all = all;
    if (c_.train_limit && c_.train_limit < all.count) train_all = first(all, c_.train_limit);
    if (c_.validation >= train_all.count) throw Error("data: validation (" + std::to_string(c_.validation) + ") must be smaller than the training set (" + std::to_string(train_all.count) + ")");
    Split s = split(train_all, static_cast<double>(c_.validation) / train_all.count, c_.seed);
    train_ = std::move(s.first);
    val_ = std::move(s.second);
    test_ = read_mnist_dir(c_.data_dir, false);
    if (c_.test_limit && c_.test_limit < test_.count) test_ = first(test_, c_.test_limit);
  }
  static Dataset first(const Dataset& d, std::size_t n) {
    std::vector<std::size_t> idx(n);
    for (std::size_t i = 0; i < n; ++i) idx[i] = i;
    return subset(d, idx);
  }

  double elapsed() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count(); }
  double used() const { return used_before_ + elapsed(); }
  double left() const { return policy_.wall_clock_s - used(); }

  // Commits a decision (and this session's time) and prints it.
  void note(int cycle, const std::string& kind, const std::string& text) {
    std::lock_guard lock(mutex_);
    audit_.append("decision", "orchestrator", {{"cycle", cycle}, {"kind", kind}, {"text", text}});
    if (kind == "cycle-done" || kind == "end") sign_audit_head(audit_, dir_);
    reg_.add_decision(used(), cycle, kind, text);
    reg_.set_session_seconds(session_, elapsed());
    out_ << "[" << clock_text(used()) << "] " << kind << ": " << text << "\n" << std::flush;
  }

  bool cycle_done(int cycle) const {
    for (const auto& d : reg_.decisions())
      if (d.kind == "cycle-done" && d.cycle == cycle) return true;
    return false;
  }

  std::map<std::pair<int, int>, EvaluationRow> evaluations() const {
    std::map<std::pair<int, int>, EvaluationRow> m;
    for (auto& e : reg_.evaluations()) m[{e.candidate, e.rung}] = e;
    return m;
  }

  // The cycle's candidates: read back when a killed run had generated them, else generated now
  // and committed together.
  std::vector<int> generate(int cycle) {
    const auto all = reg_.candidates();
    std::vector<int> ids;
    for (const auto& c : all)
      if (c.cycle == cycle) ids.push_back(c.id);
    if (!ids.empty()) return ids;
    const int count = std::min<int>(c_.per_cycle, policy_.candidates - static_cast<int>(all.size()));
    if (count <= 0) return {};
    std::set<Bits> tried;
    for (const auto& c : all) tried.insert(parse_bits(c.bits));
    Rng rng(c_.seed, 0xc7c1e000 + cycle);
    // Select → Generate: fit the surrogate to every lowest-fidelity score so far.
    std::vector<Bits> xs;
    std::vector<double> ys;
    std::vector<std::pair<double, int>> ranked;
    const auto evals = evaluations();
    for (const auto& c : all)
      if (auto it = evals.find({c.id, 0}); it != evals.end()) {
        xs.push_back(parse_bits(c.bits));
        ys.push_back(it->second.score);
        ranked.push_back({it->second.score, c.id});
      }
    std::vector<Bits> next;
    std::string origin;
    const auto t0 = std::chrono::steady_clock::now();
    if (xs.size() < 4) {
      for (int attempt = 0; static_cast<int>(next.size()) < count && attempt < 1000 * count; ++attempt) {
        Bits x = space_->random_valid(rng);
        if (tried.insert(x).second) next.push_back(std::move(x));
      }
      origin = "random feasible design (no surrogate yet)";
    } else {
      QuadraticSurrogate model(space_->bits(), feasible_.groups);
      model.fit(xs, normal_scores(ys), true);
      next = propose(model, feasible_, tried, count, rng, c_.sampler);
      std::sort(ranked.rbegin(), ranked.rend());
      std::string parents;
      for (std::size_t i = 0; i < std::min<std::size_t>(3, ranked.size()); ++i)
        parents += (i ? ", c" : "c") + std::to_string(ranked[i].second);
      origin = "Thompson sample of the surrogate fitted on " + std::to_string(xs.size()) + " scores, minimised by " +
               c_.sampler + " (best so far: " + parents + ")";
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::lock_guard lock(mutex_);
    reg_.begin();
    for (const auto& x : next) {
      const auto d = space_->decode(x);
      ids.push_back(reg_.add_candidate(cycle, bits_text(x), d->to_json(), origin));
    }
    reg_.add_decision(used(), cycle, "generate",
                      std::to_string(next.size()) + " designs in " + fixed(secs, 2) + " s: " + origin);
    reg_.set_session_seconds(session_, elapsed());
    reg_.commit();
    out_ << "[" << clock_text(used()) << "] generate: cycle " << cycle + 1 << ": " << next.size() << " designs ("
         << origin << ")\n" << std::flush;
    return ids;
  }

  std::vector<int> best_of(const std::vector<int>& ids, std::size_t rung, std::size_t keep) const {
    const auto evals = evaluations();
    std::vector<std::pair<double, int>> s;
    for (int id : ids)
      if (auto it = evals.find({id, static_cast<int>(rung)}); it != evals.end()) s.push_back({it->second.score, id});
    std::stable_sort(s.begin(), s.end(), [](auto& a, auto& b) { return a.first > b.first; });
    std::vector<int> out;
    for (std::size_t i = 0; i < std::min(keep, s.size()); ++i) out.push_back(s[i].second);
    return out;
  }

  // Trains the contenders not yet evaluated at this rung on `workers` threads; each result is
  // committed as it arrives. False when the wall-clock budget ran out first.
  // Trains the rung's contenders that have no evaluation yet: on the nodes when the run has them
  // (a node that stops answering is marked down, its candidate goes back to the queue for the
  // others, and down nodes are restarted before the next rung), else on worker threads here.
  bool train_rung(int cycle, std::size_t rung, const std::vector<int>& contenders) {
    const auto evals = evaluations();
    std::map<int, CandidateRow> rows;
    for (auto& c : reg_.candidates()) rows[c.id] = c;
    std::deque<int> queue;
    for (int id : contenders)
      if (!evals.count({id, static_cast<int>(rung)})) queue.push_back(id);
    const std::size_t count = queue.size();
    const Rung& g = c_.rungs[rung];
    const bool top = rung + 1 == c_.rungs.size();
    std::mutex queue_mutex;
    std::atomic<bool> out_of_time{false};
    auto pop = [&]() -> int {
      std::lock_guard lock(queue_mutex);
      if (queue.empty() || left() <= 0) {
        out_of_time = out_of_time || !queue.empty();
        return -1;
      }
      const int id = queue.front();
      queue.pop_front();
      return id;
    };
    auto budget = [&](const CandidateRow& c) {
      TrainBudget b;
      b.epochs = g.epochs;
      b.samples = g.samples;
      b.augment = g.augment;
      b.batch = c_.batch;
      b.seed = c_.seed * 1000003 + c.id;
      b.threads = count == 1 && nodes_.empty() ? c_.workers : 1;  // a lone local training gets every worker's core
      // The time left is shared by the cycles still to come, so no training (a long top-rung one
      // above all) can starve the later cycles; the trainer fits its schedule to this cap.
      b.seconds = std::max(1.0, left() / (policy_.cycles - cycle));
      return b;
    };
    EvalSettings es = eval_settings();
    es.max_eval = top ? 0 : c_.eval_samples;  // cheap rungs are scored on part of the validation set
    auto model_path = [&](int id) {
      return top ? (fs::path(dir_) / "models" / ("c" + std::to_string(id) + ".pt")).string() : std::string();
    };
    auto record = [&](EvaluationRow e, double secs, const std::string& where) {
      std::lock_guard lock(mutex_);
      reg_.add_evaluation(e, secs);
      reg_.set_session_seconds(session_, elapsed());
      best_ = std::max(best_, e.score);
      out_ << "[" << clock_text(used()) << "] cycle " << cycle + 1 << "/" << policy_.cycles << "  c" << e.candidate
           << "  rung " << rung << " (" << fixed(e.metrics.count("epochs") ? e.metrics.at("epochs") : 0, 2)
           << " ep)  acc " << fixed(e.metrics.count("accuracy") ? e.metrics.at("accuracy") : 0, 4) << "  score "
           << fixed(e.score, 4) << "  in " << fixed(secs, 1) << " s" << where << "  | best " << fixed(best_, 4)
           << "  | " << clock_text(std::max(0.0, left())) << " left\n" << std::flush;
    };
    auto failed = [&](EvaluationRow& e, const std::string& why) {  // a design that fails to train scores worst
      e.metrics = {{"failed", 1}};
      e.score = -1e9;
      e.model.clear();
      note(cycle, "error", "c" + std::to_string(e.candidate) + ": " + why);
    };
    auto local = [&] {
      for (int id; (id = pop()) >= 0;) {
        const CandidateRow& c = rows.at(id);
        EvaluationRow e{id, static_cast<int>(rung), {}, 0, model_path(id)};
        const auto t0 = std::chrono::steady_clock::now();
        try {
          e.metrics = train_and_evaluate(space_->family(), Design::from_json(c.design), train_, val_, budget(c), es, e.model);
          e.score = policy_.score(e.metrics);
        } catch (const std::exception& ex) {
          failed(e, ex.what());
        }
        record(e, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), "");
      }
    };
    auto remote = [&](NodeProc& n) {
      for (int id; (id = pop()) >= 0;) {
        const CandidateRow& c = rows.at(id);
        net::TrainJob job{fs::path(dir_).filename().string(), id, space_->family(), c.design, budget(c), es, top};
        EvaluationRow e{id, static_cast<int>(rung), {}, 0, model_path(id)};
        const auto t0 = std::chrono::steady_clock::now();
        try {
          const net::Trained t = n.client->train(job);
          e.metrics = t.metrics;
          e.score = policy_.score(e.metrics);
          if (top) {  // the sealed model arrived and verified: keep it beside the run
            secure::write_file_atomic(e.model + ".json", t.model_json);
            secure::write_file_atomic(e.model, t.weights);
            // Scored on the orchestrator's validation set, as every finalist and federated model
            // is, rather than on the node's own share: the scores that select compare.
            e.metrics = measure_model(e.model, c.design);
            for (const char* k : {"train_s", "epochs"})
              if (const auto it = t.metrics.find(k); it != t.metrics.end()) e.metrics[k] = it->second;
            e.score = policy_.score(e.metrics);
          }
        } catch (const net::Unreachable& ex) {
          {
            std::lock_guard lock(queue_mutex);
            queue.push_front(id);
          }
          note(cycle, "node", n.id + " is down (" + ex.what() + "); c" + std::to_string(id) + " goes back to the queue");
          n.client.reset();
          return;
        } catch (const std::exception& ex) {
          failed(e, n.id + ": " + ex.what());
        }
        record(e, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), " on " + n.id);
      }
    };
    for (int attempt = 0; attempt < 3; ++attempt) {
      std::vector<std::thread> pool;
      if (nodes_.empty()) {
        for (int w = 0; w < std::min<int>(c_.workers, static_cast<int>(count)); ++w) pool.emplace_back(local);
      } else {
        for (auto& n : nodes_)
          if (n.client) pool.emplace_back(remote, std::ref(n));
      }
      for (auto& t : pool) t.join();
      if (nodes_.empty() || out_of_time) break;
      {
        std::lock_guard lock(queue_mutex);
        if (queue.empty()) break;
      }
      reap_and_restart_nodes();  // every node went down with work left: bring them back
    }
    {
      std::lock_guard lock(queue_mutex);
      if (!queue.empty() && !out_of_time) throw Error("the nodes keep failing: " + std::to_string(queue.size()) + " trainings of rung " + std::to_string(rung) + " not done");
    }
    reap_and_restart_nodes();  // nodes that went down rejoin before the next rung
    return !out_of_time;
  }

  // The best safe candidate at the highest fidelity, promoted through the approval gate when it beats
  // the promoted model as that is now. Where the run federates, a challenger is federated first, as
  // the promoted model was: a model refined on every shard is not replaced by one that was not.
  void select(int cycle) {
    const auto evals = evaluations();
    const int top = static_cast<int>(c_.rungs.size()) - 1;
    const std::set<int> refused = refused_challengers();
    int best = -1;
    double best_score = -1e300;
    std::string rejected;
    for (const auto& [key, e] : evals) {
      if (key.second != top || e.model.empty() || refused.count(key.first)) continue;
      if (const auto why = policy_.safety_violation(e.metrics); !why.empty()) {
        rejected += " c" + std::to_string(key.first) + " (" + why + ")";
        continue;
      }
      if (e.score > best_score) best = key.first, best_score = e.score;
    }
    if (!rejected.empty()) note(cycle, "safety", "not promotable under the policy:" + rejected);
    const auto promoted = reg_.promotions();
    if (best < 0) {
      note(cycle, "select", "no candidate meets the safety constraints yet");
      return;
    }
    if (!promoted.empty() && promoted.back().candidate == best) {
      note(cycle, "select", "c" + std::to_string(best) + " stays promoted");
      return;
    }
    std::string model = evals.at({best, top}).model;
    double score = best_score;
    Metrics fed_metrics;  // when the challenger's federated model is the one promoted
    std::optional<Federated> f;
    if (!promoted.empty() && federates()) {
      const int champion = promoted.back().candidate;
      const double now = policy_.score(measure_model(promoted_source(promoted.back(), evals), design_of(champion)));
      f = federate(cycle, best, model);
      if (f) {
        score = f->before;  // its top-rung model, measured as `now` was (the node's scoring ran beside trainings)
        if (f->score > score && policy_.safety_violation(f->metrics).empty())
          model = f->path, score = f->score, fed_metrics = f->metrics;
      }
      if (score <= now) {
        // Not considered again: its federation would repeat, and the promoted model would no
        // longer be refined in later cycles.
        reg_.begin();
        std::set<int> now_refused = refused;
        now_refused.insert(best);
        reg_.set_meta("refused_challengers", nlohmann::json(now_refused).dump());
        reg_.commit();
        note_federated(cycle, best, f, "not promoted");
        note(cycle, "select", "c" + std::to_string(champion) + " stays promoted (score " + fixed(now, 4) + "): c" +
                                  std::to_string(best) + " scored " + fixed(score, 4) + (f ? " at best after federation" : ""));
        return;
      }
    }
    promote(cycle, best, model, score, fed_metrics, "");
    note_federated(cycle, best, f, fed_metrics.empty() ? "promoted without its federation" : "promoted");
  }

  // Copies `model` to promoted.pt and records the promotion; with fed_metrics, the model is the
  // candidate's federated one and those are its metrics. Without `approved_by` (a candidate that
  // was not approved before) it passes the approval gate first.
  void promote(int cycle, int candidate, const std::string& model, double score, const Metrics& fed_metrics,
               std::string approved_by) {
    std::string by = approved_by.empty() ? "policy (auto)" : approved_by;
    if (approved_by.empty() && policy_.manual_approval) {
      note(cycle, "approval", "awaiting approval of c" + std::to_string(candidate) + " (score " + fixed(score, 4) +
                                  "): run  gng approve " + dir_ + " " + std::to_string(candidate));
      while (!reg_.approved(candidate)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        reg_.set_session_seconds(session_, elapsed());
      }
      by = "operator";
    }
    if (!fed_metrics.empty() && !by.ends_with("; federated")) by += "; federated";
    const std::string dest = (fs::path(dir_) / "promoted.pt").string();
    for (const char* ext : {"", ".json"}) {
      fs::copy_file(model + ext, dest + ext + ".tmp", fs::copy_options::overwrite_existing);
      fs::rename(dest + ext + ".tmp", dest + ext);
    }
    std::lock_guard lock(mutex_);
    audit_.append("promotion", "orchestrator",
                  {{"candidate", candidate}, {"cycle", cycle}, {"approved_by", by}, {"federated", !fed_metrics.empty()},
                   {"score", score}, {"model", dest}, {"model_sha256", file_digest(dest)}});
    reg_.begin();
    reg_.promote({candidate, cycle, by, dest});
    // The promoted weights are no longer the candidate's own: status and report show these.
    if (!fed_metrics.empty())
      reg_.set_meta("federated_metrics", nlohmann::json{{"candidate", candidate}, {"cycle", cycle}, {"metrics", fed_metrics}}.dump());
    const std::string what = "c" + std::to_string(candidate) + (fed_metrics.empty() ? "" : "'s federated model");
    reg_.add_decision(used(), cycle, "promote", what + " promoted (score " + fixed(score, 4) + ", approved by " + by + ") → " + dest);
    reg_.set_session_seconds(session_, elapsed());
    reg_.commit();
    out_ << "[" << clock_text(used()) << "] promote: " << what << " (score "
         << fixed(score, 4) << ", " << by << ")\n";
  }

  bool federates() const { return c_.federation.rounds > 0 && !nodes_.empty(); }

  // Challengers that were federated and still lost to the promoted model.
  std::set<int> refused_challengers() const {
    const auto m = reg_.meta("refused_challengers");
    if (!m) return {};
    try {
      return nlohmann::json::parse(*m).get<std::set<int>>();
    } catch (const nlohmann::json::exception& e) {
      throw Error(dir_ + "/registry.db: the refused challengers are damaged (" + e.what() + ")");
    }
  }

  // The file the promoted model was copied from (promoted.pt may be half-replaced by a run killed
  // while promoting): the candidate's top-rung model, or its federated model of that cycle.
  std::string promoted_source(const PromotionRow& p, const std::map<std::pair<int, int>, EvaluationRow>& evals) const {
    if (p.approved_by.ends_with("; federated"))
      return (fs::path(dir_) / "models" / ("c" + std::to_string(p.candidate) + "-fed" + std::to_string(p.cycle + 1) + ".pt")).string();
    return evals.at({p.candidate, static_cast<int>(c_.rungs.size()) - 1}).model;
  }

  std::string design_of(int candidate) const {
    for (const auto& c : reg_.candidates())
      if (c.id == candidate) return c.design;
    throw Error("registry: no candidate c" + std::to_string(candidate));
  }

  EvalSettings eval_settings() const {
    EvalSettings es;
    es.noise_sigma = c_.noise_sigma;
    es.watts = c_.watts;
    return es;
  }

  // A model's metrics on the orchestrator's validation set: the same images for every candidate's
  // top-rung model and every federated model, so their scores compare.
  Metrics measure(const Design& design, const fed::Update& state) const {
    return evaluate_state(space_->family(), design, state, val_, eval_settings());
  }
  Metrics measure_model(const std::string& path, const std::string& design_json) const {
    return measure(Design::from_json(design_json), load_state(path));
  }

  // The promoted model refined once more across the nodes, when no challenger was federated in this
  // cycle; the result replaces it when it scores higher. Done once per cycle (a resumed run does
  // not repeat it).
  void federate_promoted(int cycle) {
    if (!federates() || reg_.promotions().empty()) return;
    for (const auto& d : reg_.decisions())
      if (d.kind == "federated" && d.cycle == cycle) return;
    const auto promoted = reg_.promotions().back();
    const auto f = federate(cycle, promoted.candidate, promoted_source(promoted, evaluations()));
    const bool better = f && f->score > f->before && policy_.safety_violation(f->metrics).empty();
    if (better) promote(cycle, promoted.candidate, f->path, f->score, f->metrics, promoted.approved_by);
    note_federated(cycle, promoted.candidate, f, better ? "promoted" : "kept the model it started from");
  }

  struct Federated {
    Metrics metrics;       // of the last aggregate, on the orchestrator's validation set
    double score, before;  // its score, and that of the model it started from
    std::string path;      // models/c<candidate>-fed<cycle>.pt
  };

  // Federate: a model is refined across the nodes (each trains it on its own shard; the states are
  // aggregated here by the configured rule), round by round, each round needing a quorum of
  // answers, and scored on the orchestrator's validation set. Nothing is promoted here.
  std::optional<Federated> federate(int cycle, int candidate, const std::string& base) {
    const auto& F = c_.federation;
    const std::string design_json = design_of(candidate);
    const Design design = Design::from_json(design_json);
    fed::Rule rule;
    rule.kind = F.rule == "trimmed_mean" ? fed::Rule::trimmed_mean
                : F.rule == "median"     ? fed::Rule::median
                : F.rule == "krum"       ? fed::Rule::krum
                                         : fed::Rule::fedavg;
    rule.trim = F.trim;
    rule.byzantine = F.byzantine;
    rule.multi = F.multi;
    fed::Update global = load_state(base);
    const double before = policy_.score(measure(design, global));
    const std::size_t quorum = static_cast<std::size_t>(std::ceil(F.quorum * static_cast<double>(nodes_.size())));
    Metrics last;  // of the latest aggregate
    int missed = 0;
    for (int round = 1; round <= F.rounds;) {
      if (left() <= 0) {
        note(cycle, "federate", "round " + std::to_string(round) + " not started: wall-clock budget spent");
        break;
      }
      std::vector<fed::Update> states;
      std::vector<double> overhead, compute;  // per answering node: seconds of exchange, of training
      std::mutex m;
      std::vector<std::thread> pool;
      for (auto& n : nodes_) {
        if (!n.client) continue;
        pool.emplace_back([&, round](NodeProc& node) {
          net::RoundJob job{fs::path(dir_).filename().string(), round, candidate, space_->family(), design_json, global,
                            TrainBudget{}, F.mu, F.rounds};
          job.budget.epochs = F.epochs;
          job.budget.samples = F.samples;
          job.budget.batch = c_.batch;
          job.budget.seed = c_.seed * 7919 + static_cast<uint64_t>(round);
          try {
            const auto sent = std::chrono::steady_clock::now();
            net::RoundResult r = node.client->federated_round(job);
            const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - sent).count();
            fed::check_update(r.state, global);  // a malformed or poisoned-with-NaN state is refused, not fatal
            std::lock_guard lock(m);
            states.push_back(std::move(r.state));
            if (const auto c = r.metrics.find("compute_s"); c != r.metrics.end()) {
              compute.push_back(c->second);
              overhead.push_back(wall - c->second);
            }
          } catch (const net::Unreachable& e) {
            note(cycle, "node", node.id + " is down (" + e.what() + ") in federated round " + std::to_string(round));
            node.client.reset();
          } catch (const std::exception& e) {
            note(cycle, "federate", node.id + "'s update refused in round " + std::to_string(round) + ": " + e.what());
          }
        }, std::ref(n));
      }
      for (auto& t : pool) t.join();
      // Too few answers, or too few for the rule (Krum needs n ≥ 2f + 3; Multi-Krum averages at
      // most the answers less f): the nodes are restarted and the round repeated.
      std::string missed_why;
      fed::Update next;
      if (states.size() < std::max<std::size_t>(1, quorum)) {
        missed_why = "below the quorum of " + std::to_string(quorum);
      } else {
        fed::Rule now = rule;
        if (now.kind == fed::Rule::krum) now.multi = std::max(1, std::min(now.multi, static_cast<int>(states.size()) - now.byzantine));
        try {
          next = fed::aggregate(states, now);
        } catch (const Error& e) {
          missed_why = std::string("too few for ") + F.rule + ": " + e.what();
        }
      }
      if (!missed_why.empty()) {
        note(cycle, "federate", "round " + std::to_string(round) + ": " + std::to_string(states.size()) + " of " +
                                    std::to_string(nodes_.size()) + " nodes answered, " + missed_why +
                                    "; restarting the nodes and repeating the round");
        reap_and_restart_nodes();
        if (++missed > 3) throw Error("federation: round " + std::to_string(round) + " failed four times (" + missed_why + ")");
        continue;
      }
      global = std::move(next);
      const Metrics mt = measure(design, global);
      std::string from;
      for (const auto& s : states) from += (from.empty() ? "" : ", ") + s.from;
      // The cost of moving the states (PQ-TLS, envelopes both ways, QKD keys, encoding), end to end:
      // each node's wall time for the call less its own training.
      std::string cost;
      if (!overhead.empty()) {
        const double o = median(overhead), c = median(compute);
        cost = "; exchange " + fixed(1000 * o, 0) + " ms per node (" + fixed(c > 0 ? 100 * o / c : 0, 1) + " % of its " +
               fixed(c, 1) + " s of compute, medians)";
      }
      note(cycle, "federate", "round " + std::to_string(round) + " (" + F.rule + " of " + from + "): accuracy " +
                                  fixed(mt.at("accuracy"), 4) + ", score " + fixed(policy_.score(mt), 4) + cost);
      last = mt;
      ++round;
    }
    reap_and_restart_nodes();
    if (last.empty()) return std::nullopt;
    Federated f{last, policy_.score(last), before,
                (fs::path(dir_) / "models" / ("c" + std::to_string(candidate) + "-fed" + std::to_string(cycle + 1) + ".pt")).string()};
    save_state(global, base, f.path);
    return f;
  }

  // The "federated" decision, written once the caller has acted on the result (so that a run
  // killed in between federates again rather than losing the result): one per cycle.
  void note_federated(int cycle, int candidate, const std::optional<Federated>& f, const std::string& outcome) {
    if (!f) return;
    const std::string why = policy_.safety_violation(f->metrics);
    note(cycle, "federated", "c" + std::to_string(candidate) + " after " + std::to_string(c_.federation.rounds) +
                                 " rounds: score " + fixed(f->score, 4) + " (was " + fixed(f->before, 4) + ")" +
                                 (why.empty() ? "" : ", unsafe: " + why) + " → " + outcome);
  }

  // Deploy: the promoted model (when it changed) goes sealed to every node, which serves it.
  void deploy(int cycle) {
    if (nodes_.empty() || reg_.promotions().empty()) return;
    const std::string model = reg_.promotions().back().model;
    const std::string digest = file_digest(model);
    if (digest == deployed_) return;
    int accepted = 0;
    for (auto& n : nodes_) {
      if (!n.client) continue;
      try {
        const int port = n.client->deploy(fs::path(dir_).filename().string(), model);
        ++accepted;
        note(cycle, "deploy", n.id + " serves model " + digest.substr(0, 12) + " on http://127.0.0.1:" + std::to_string(port) + "/v1/predict");
      } catch (const std::exception& e) {
        note(cycle, "deploy", n.id + ": not deployed: " + e.what());
      }
    }
    if (accepted > 0) deployed_ = digest;  // else the next cycle tries again
  }

  // Observe: the deployed model's telemetry from every node (the worst of each signal) shapes the
  // next cycle's objective, within the policy's telemetry bounds; every change is audited.
  void observe(int cycle) {
    if (nodes_.empty() || deployed_.empty()) return;
    Policy::Telemetry worst;
    std::string seen;
    for (auto& n : nodes_) {
      if (!n.client) continue;
      try {
        const std::string text = n.client->telemetry();
        if (text.empty()) continue;
        const auto j = nlohmann::json::parse(text);
        auto num = [&](const char* k) { return j.contains(k) && j[k].is_number() ? j[k].get<double>() : -1.0; };
        worst.drift_psi = std::max(worst.drift_psi, num("drift_psi"));
        worst.latency_p99_ms = std::max(worst.latency_p99_ms, num("latency_p99_ms"));
        if (const double a = num("feedback_accuracy"); a >= 0)
          worst.feedback_accuracy = worst.feedback_accuracy < 0 ? a : std::min(worst.feedback_accuracy, a);
        seen += (seen.empty() ? "" : "; ") + n.id + ": " + std::to_string(j.value("requests", 0)) + " requests, drift " +
                j.value("drift", std::string("?"));
      } catch (const std::exception& e) {
        seen += (seen.empty() ? "" : "; ") + n.id + ": no telemetry (" + e.what() + ")";
      }
    }
    if (seen.empty()) return;
    note(cycle, "telemetry", seen);
    const std::string change = policy_.react(worst, base_policy_);
    if (change.empty()) return;
    nlohmann::json weights(policy_.objectives);
    {
      std::lock_guard lock(mutex_);
      audit_.append("policy", "orchestrator", {{"cycle", cycle}, {"objectives", weights}, {"reason", change}});
      reg_.set_meta("objectives", weights.dump());
    }
    note(cycle, "objective", change);
  }

  // --- nodes: local `gng node` processes, one shard each, reached over PQ-TLS ---------------------

  struct NodeProc {
    std::string id;
    pid_t pid = -1;
    std::unique_ptr<net::NodeClient> client;  // null while the node is down
  };

  // The run's KME (unless the policy turns QKD off): ETSI GS QKD 014 over the same PQ-TLS, in this
  // process, fed by simulated BB84 links — one per pair of parties (orchestrator and nodes).
  void start_kme(const std::string& pki, const secure::Identity& me, const secure::TrustStore& trust) {
    if (policy_.qkd == "off" || kme_server_) return;
    if (!fs::exists(fs::path(pki) / "issued" / "kme.pem")) secure::pki_issue(pki, {"kme", "kme"});  // once per run
    secure::qkd::KmeConfig kc;
    kc.link.km = c_.link_km;
    kc.link.eve_fraction = c_.eavesdropper;
    auto kme = std::make_unique<secure::qkd::Kme>("kme", kc);
    auto server = std::make_unique<net::Server>(secure::load_identity(pki, "kme"), trust);
    kme->mount(*server);
    const int port = server->listen("127.0.0.1", 0);
    kme_ = std::move(kme);
    kme_server_ = std::move(server);
    kme_port_ = port;
    // The orchestrator's own keys, shared by its clients of every node (one KME connection).
    orchestrator_qkd_ = secure::qkd::kme_access(std::make_unique<net::Client>(me, trust, "127.0.0.1", kme_port_), policy_.qkd == "required");
    note(-1, "kme", "QKD " + policy_.qkd + ": KME on 127.0.0.1:" + std::to_string(kme_port_) + " (ETSI GS QKD 014; simulated BB84 links, " +
                        fixed(c_.link_km, 0) + " km" + (c_.eavesdropper > 0 ? ", eavesdropper on " + fixed(c_.eavesdropper, 2) : "") + ")");
  }

  // Starts every node that is not running; each dies with this process (PR_SET_PDEATHSIG).
  void start_nodes() {
    if (nodes_.empty()) return;
    const std::string pki = (fs::path(dir_) / "pki").string();
    const secure::Identity me = secure::load_identity(pki, "orchestrator");
    const secure::TrustStore trust = secure::TrustStore::load(pki);
    start_kme(pki, me, trust);
    for (std::size_t k = 0; k < nodes_.size(); ++k) {
      NodeProc& n = nodes_[k];
      if (n.client) continue;
      const fs::path home = fs::path(dir_) / "nodes" / n.id;
      fs::create_directories(home);
      const std::string config = (home / "node.yaml").string(), log = (home / "node.log").string();
      std::ostringstream y;
      y << "id: " << n.id << "\npki: " << pki << "\ndir: " << home.string() << "\nlisten: 127.0.0.1:0\ndata: "
        << c_.data_dir << "\nshard: {index: " << k << ", of: " << nodes_.size() << ", partition: " << c_.partition
        << ", alpha: " << c_.alpha << ", seed: " << c_.seed << "}\nvalidation: "
        << std::max<std::size_t>(1, c_.validation / nodes_.size()) << "\ntrain_limit: " << c_.train_limit
        << "\nholdout: " << c_.validation << "\n";  // the orchestrator's validation images are in no shard
      if (kme_server_) y << "kme: 127.0.0.1:" << kme_port_ << "\nqkd: " << policy_.qkd << "\n";
      secure::write_file_atomic(config, y.str());
      fs::remove(log);
      const pid_t pid = fork();
      if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (!freopen(log.c_str(), "w", stdout) || !freopen(log.c_str(), "a", stderr)) _exit(126);
        execl("/proc/self/exe", "gng", "node", "--config", config.c_str(), static_cast<char*>(nullptr));
        _exit(127);
      }
      if (pid < 0) throw Error("cannot start node " + n.id + ": fork failed");
      n.pid = pid;
      int port = 0;
      for (int i = 0; i < 1200 && port == 0; ++i) {  // up to two minutes to load its shard
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        std::smatch m;
        const std::string out = fs::exists(log) ? secure::read_file(log) : "";
        if (std::regex_search(out, m, std::regex("serving on 127\\.0\\.0\\.1:(\\d+)"))) port = std::stoi(m[1]);
        if (waitpid(pid, nullptr, WNOHANG) == pid) throw Error("node " + n.id + " did not start: " + out);
      }
      if (port == 0) throw Error("node " + n.id + " did not start within two minutes (see " + log + ")");
      net::Limits limits;
      limits.timeout = std::chrono::hours(12);  // trainings are long; a dead node shows as a broken connection
      limits.retries = 0;
      n.client = std::make_unique<net::NodeClient>(me, trust, "127.0.0.1", port, limits, orchestrator_qkd_, &audit_);
      const net::NodeHealth h = n.client->health();
      note(-1, "node", n.id + " up on 127.0.0.1:" + std::to_string(port) + " (pid " + std::to_string(pid) + "): " +
                           std::to_string(h.train_samples) + " training / " + std::to_string(h.validation_samples) +
                           " validation images of its own");
    }
  }

  // Collects the exit of nodes that are down and starts them again (they rejoin with their shard).
  void reap_and_restart_nodes() {
    bool any = false;
    for (auto& n : nodes_)
      if (!n.client && n.pid > 0) {
        kill(n.pid, SIGKILL);  // it stopped answering: it does not get to finish anything
        waitpid(n.pid, nullptr, 0);
        n.pid = -1;
        any = true;
      }
    if (any) start_nodes();
  }

  void stop_nodes() {
    for (auto& n : nodes_) {
      n.client.reset();  // close the kept-alive connections first: the servers wait for them
      if (n.pid > 0) {
        kill(n.pid, SIGTERM);
        waitpid(n.pid, nullptr, 0);
        n.pid = -1;
      }
    }
    orchestrator_qkd_ = {};
    kme_server_.reset();  // after the nodes, whose KME connections are gone with them
    kme_.reset();
  }

  void finish(const std::string& stop) {
    stop_nodes();
    const auto promoted = reg_.promotions();
    if (!promoted.empty() && reg_.meta("test_candidate") != std::to_string(promoted.back().candidate)) {
      const double acc = saved_accuracy(promoted.back().model, test_);
      reg_.begin();
      reg_.set_meta("test_accuracy", fixed(acc, 6));
      reg_.set_meta("test_candidate", std::to_string(promoted.back().candidate));
      reg_.commit();
      note(-1, "test", "promoted c" + std::to_string(promoted.back().candidate) + ": test accuracy " + fixed(acc, 4) +
                           " on " + std::to_string(test_.count) + " held-out test images");
    }
    const std::string state = stop.empty() ? "finished" : "stopped: " + stop;
    reg_.set_meta("state", state);
    note(-1, "end", state);
  }

  std::string dir_;
  RunConfig c_;
  std::ostream& out_;
  Registry reg_;
  Policy policy_;
  Dataset train_, val_, test_;
  std::unique_ptr<SearchSpace> space_;
  std::vector<NodeProc> nodes_;
  std::unique_ptr<secure::qkd::Kme> kme_;       // the run's KME, when the policy wants QKD keys
  std::unique_ptr<net::Server> kme_server_;
  int kme_port_ = 0;
  net::Qkd orchestrator_qkd_;                   // its keys from that KME; none when QKD is off
  std::string deployed_;   // digest of the model the nodes serve
  Policy base_policy_;     // the policy as written: telemetry reactions are bounded relative to it
  Feasibility feasible_;
  int session_ = 0;
  double used_before_ = 0, best_ = -1e300;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::mutex mutex_;
  audit::AuditLog audit_;
};

std::string utc_stamp() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", &tm);
  return buf;
}

}  // namespace

std::string start_run(const std::string& config_path, const std::string& runs_dir, std::ostream& out) {
  RunConfig c = RunConfig::from_file(config_path);
  // Check the policy and the space before anything is created.
  const Policy p = Policy::from_yaml(c.policy_text, c.policy_source);
  load_space(c, p, InputShape{});
  std::string dir = (fs::path(runs_dir) / (c.name + "-" + utc_stamp())).string();
  for (int k = 2; fs::exists(dir); ++k) dir = (fs::path(runs_dir) / (c.name + "-" + utc_stamp() + "-" + std::to_string(k))).string();
  fs::create_directories(dir);
  {
    Registry reg((fs::path(dir) / "registry.db").string(), true);
    reg.begin();
    reg.set_meta("config", c.text);
    reg.set_meta("config_source", config_path);
    reg.set_meta("space", c.space_text);
    reg.set_meta("space_source", c.space_source);
    reg.set_meta("policy", c.policy_text);
    reg.set_meta("policy_source", c.policy_source);
    reg.set_meta("state", "running");
    reg.commit();
    const secure::SigningKey key = secure::SigningKey::generate("ML-DSA-65");
    secure::write_file_atomic((fs::path(dir) / kAuditKey).string(), key.pem(), true);
    secure::write_file_atomic((fs::path(dir) / audit::kKeyFile).string(), key.public_key().pem());
    audit::AuditLog log((fs::path(dir) / audit::kLogFile).string(), true);
    log.append("policy", "operator",
               {{"policy", c.policy_text}, {"policy_source", c.policy_source},
                {"policy_sha256", sha256_hex(secure::view(c.policy_text))},
                {"config_sha256", sha256_hex(secure::view(c.text))},
                {"space_sha256", sha256_hex(secure::view(c.space_text))}});
    log.sign_head(key);
  }
  if (c.nodes > 0) {  // the run's own PKI: an ML-DSA-87 CA, the orchestrator and one identity per node
    const std::string pki = (fs::path(dir) / "pki").string();
    secure::pki_init(pki);
    secure::pki_issue(pki, {"orchestrator", "orchestrator"});
    for (int k = 1; k <= c.nodes; ++k) secure::pki_issue(pki, {"node", "n" + std::to_string(k)});
  }
  out << "run " << dir << "\n" << std::flush;
  Engine(dir, std::move(c), out).run();
  return dir;
}

void resume_run(const std::string& run_dir, std::ostream& out) {
  RunConfig c;
  {
    Registry reg((fs::path(run_dir) / "registry.db").string(), false);
    auto get = [&](const char* k) {
      auto v = reg.meta(k);
      if (!v) throw Error(run_dir + ": the registry lacks '" + k + "': not a complete gng run");
      return *v;
    };
    c = RunConfig::from_yaml(get("config"), get("config_source"), get("space"), get("policy"));
    c.space_source = get("space_source");
    c.policy_source = get("policy_source");
    reg.set_meta("state", "running");
    audit::AuditLog((fs::path(run_dir) / audit::kLogFile).string(), true)
        .append("decision", "orchestrator", {{"cycle", -1}, {"kind", "resume"}, {"text", "resumed from " + run_dir}});
    reg.add_decision(reg.used_seconds(), -1, "resume", "resumed from " + run_dir);
  }
  out << "resuming " << run_dir << "\n" << std::flush;
  Engine(run_dir, std::move(c), out).run();
}

void approve_candidate(const std::string& run_dir, int candidate, const std::string& by) {
  Registry reg((fs::path(run_dir) / "registry.db").string(), false);
  const auto policy_text = reg.meta("policy");
  const Policy p = Policy::from_yaml(policy_text.value_or(""), "<stored policy>");
  bool exists = false;
  for (const auto& c : reg.candidates()) exists |= c.id == candidate;
  if (!exists) throw Error(run_dir + ": no candidate " + std::to_string(candidate));
  const RunConfig c = RunConfig::from_yaml(*reg.meta("config"), "<stored config>", "", "");
  const int top = static_cast<int>(c.rungs.size()) - 1;
  for (const auto& e : reg.evaluations())
    if (e.candidate == candidate && e.rung == top) {
      if (const auto why = p.safety_violation(e.metrics); !why.empty())
        throw Error("c" + std::to_string(candidate) + " breaks the policy's safety constraints (" + why + "): not approved");
      audit::AuditLog log((fs::path(run_dir) / audit::kLogFile).string(), true);
      log.append("approval", by, {{"candidate", candidate}, {"metrics", e.metrics}});
      sign_audit_head(log, run_dir);
      reg.approve(candidate, by);
      reg.add_decision(reg.used_seconds(), -1, "approve", "c" + std::to_string(candidate) + " approved by " + by);
      return;
    }
  throw Error("c" + std::to_string(candidate) + " has not been evaluated at the highest fidelity: nothing to approve yet");
}

}  // namespace gng
