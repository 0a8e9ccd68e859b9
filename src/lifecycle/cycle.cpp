#include "lifecycle/cycle.h"

#include <algorithm>
#include <memory>
#include <ostream>

#include "data/dataset.h"
#include "lifecycle/deploy.h"
#include "lifecycle/federation.h"
#include "lifecycle/generate.h"
#include "lifecycle/halving.h"
#include "lifecycle/nodes.h"
#include "lifecycle/promotion.h"
#include "lifecycle/run_state.h"
#include "lifecycle/trainers.h"

namespace gng {

namespace {

Dataset first(const Dataset& d, std::size_t n) {
  std::vector<std::size_t> idx(n);
  for (std::size_t i = 0; i < n; ++i) idx[i] = i;
  return subset(d, idx);
}

std::map<std::pair<int, int>, EvaluationRow> by_candidate_and_rung(const std::vector<EvaluationRow>& rows) {
  std::map<std::pair<int, int>, EvaluationRow> m;
  for (const auto& e : rows) m[{e.candidate, e.rung}] = e;
  return m;
}

class Cycle {
 public:
  Cycle(const std::string& dir, RunConfig config, std::ostream& out)
      : run_(dir, std::move(config), out), nodes_(run_), top_(static_cast<int>(run_.c.rungs.size()) - 1) {}

  void run() {
    run_.begin_session();
    for (const auto& e : run_.reg.evaluations()) best_ = std::max(best_, e.score);  // the run's best, over its sessions
    const auto runtime = init_training_runtime();
    load_data();
    space_ = std::make_unique<SearchSpace>(load_space(run_.c, run_.policy, shape_of(train_)));
    feasible_ = feasibility(*space_);
    run_.note(-1, "start", "session " + std::to_string(run_.session()) + ": " + std::to_string(train_.count) + " training / " + std::to_string(val_.count) +
                               " validation / " + std::to_string(test_.count) + " test images; " +
                               std::to_string(space_->bits()) + " design bits (" + space_->family() + "); BLAS: " + runtime);
    if (runtime.find("slow") != std::string::npos) run_.out << "warning: " << runtime << "\n";
    nodes_.start({{train_.channels, train_.height, train_.width}, train_.classes});
    std::string stop;
    for (int cycle = 0; cycle < run_.policy.cycles && stop.empty(); ++cycle) {
      if (cycle_done(cycle)) continue;
      if (run_.left() <= 0) {
        stop = "wall-clock budget spent";
        break;
      }
      observe(run_, nodes_, cycle, deployed_);
      std::vector<int> contenders = generate(run_, *space_, feasible_, cycle);
      if (contenders.empty()) {
        stop = "candidate budget spent";
        break;
      }
      for (std::size_t r = 0; r < run_.c.rungs.size() && !contenders.empty(); ++r) {
        if (r > 0)
          contenders = best_of(contenders, evaluations(), static_cast<int>(r) - 1,
                               rung_keep(run_.c.rungs[r], contenders.size(), run_.c.eta));
        if (!train(cycle, static_cast<int>(r), contenders)) {
          stop = "wall-clock budget spent";
          break;
        }
      }
      if (!stop.empty()) break;
      select(cycle);
      federate_promoted(cycle);
      deploy(run_, nodes_, cycle, deployed_);
      run_.note(cycle, "cycle-done", "cycle " + std::to_string(cycle + 1) + " of " + std::to_string(run_.policy.cycles) + " done");
    }
    finish(stop);
  }

 private:
  void load_data() {
    const RunConfig& c = run_.c;
    const Dataset all = read_mnist_dir(c.data_dir, true);
    Dataset train_all = all;
    if (c.train_limit && c.train_limit < all.count) train_all = first(all, c.train_limit);
    if (c.validation >= train_all.count)
      throw Error("data: validation (" + std::to_string(c.validation) + ") must be smaller than the training set (" +
                  std::to_string(train_all.count) + ")");
    Split s = split(train_all, static_cast<double>(c.validation) / train_all.count, c.seed);
    train_ = std::move(s.first);
    val_ = std::move(s.second);
    test_ = read_mnist_dir(c.data_dir, false);
    if (c.test_limit && c.test_limit < test_.count) test_ = first(test_, c.test_limit);
  }

  bool cycle_done(int cycle) const {
    for (const auto& d : run_.reg.decisions())
      if (d.kind == "cycle-done" && d.cycle == cycle) return true;
    return false;
  }

  std::map<std::pair<int, int>, EvaluationRow> evaluations() const { return by_candidate_and_rung(run_.reg.evaluations()); }

  EvalSettings eval_settings() const {
    EvalSettings es;
    es.noise_sigma = run_.c.noise_sigma;
    es.watts = run_.c.watts;
    return es;
  }

  // A model's metrics on the orchestrator's validation set: the same images for every candidate's
  // top-rung model and every federated model, so their scores compare.
  Metrics measure(const std::string& design_json, const fed::Update& state) const {
    return evaluate_state(space_->family(), Design::from_json(design_json), state, val_, eval_settings());
  }
  Metrics measure_model(const std::string& path, const std::string& design_json) const {
    return measure(design_json, load_state(path));
  }

  std::string design_of(int candidate) const {
    for (const auto& c : run_.reg.candidates())
      if (c.id == candidate) return c.design;
    throw Error("registry: no candidate c" + std::to_string(candidate));
  }

  // Trains the rung's contenders that have no evaluation yet, on the nodes when the run has them,
  // else here; each result is committed as it arrives. False when the wall-clock budget ran out.
  bool train(int cycle, int rung, const std::vector<int>& contenders) {
    const auto evals = evaluations();
    std::map<int, std::string> designs;
    for (auto& c : run_.reg.candidates()) designs[c.id] = c.design;
    RungWork work;
    for (int id : contenders)
      if (!evals.count({id, rung})) work.queue.push_back(id);
    const Rung& g = run_.c.rungs[rung];
    const bool top = rung == top_;
    EvalSettings es = eval_settings();
    es.max_eval = top ? 0 : run_.c.eval_samples;  // cheap rungs are scored on part of the validation set
    work.task = [&, es](int id) {
      TrainTask t{id, rung, top, space_->family(), designs.at(id), {}, es, top ? run_.model_path(id) : ""};
      t.budget.epochs = g.epochs;
      t.budget.samples = g.samples;
      t.budget.augment = g.augment;
      t.budget.batch = run_.c.batch;
      t.budget.seed = run_.c.seed * 1000003 + id;
      // The time left is shared by the cycles still to come, so no training (a long top-rung one
      // above all) can starve the later cycles; the trainer fits its schedule to this cap.
      t.budget.seconds = std::max(1.0, run_.left() / (run_.policy.cycles - cycle));
      return t;
    };
    work.time_left = [&] { return run_.left() > 0; };
    work.done = [&](const TrainResult& r) {
      EvaluationRow e{r.candidate, rung, r.metrics, -1e9, top ? run_.model_path(r.candidate) : ""};
      if (!r.error.empty()) {  // a design that fails to train scores worst
        e.model.clear();
        run_.note(cycle, "error", "c" + std::to_string(r.candidate) + ": " + (r.where.empty() ? "" : r.where + ": ") + r.error);
      } else {
        e.score = run_.policy.score(e.metrics);
      }
      std::lock_guard lock(run_.mutex);
      run_.reg.add_evaluation(e, r.seconds);
      run_.save_time();
      best_ = std::max(best_, e.score);
      auto metric = [&](const char* k) { return e.metrics.count(k) ? e.metrics.at(k) : 0.0; };
      run_.print("cycle " + std::to_string(cycle + 1) + "/" + std::to_string(run_.policy.cycles) + "  c" +
                 std::to_string(e.candidate) + "  rung " + std::to_string(rung) + " (" + fixed(metric("epochs"), 2) +
                 " ep)  acc " + fixed(metric("accuracy"), 4) + "  score " + fixed(e.score, 4) + "  in " +
                 fixed(r.seconds, 1) + " s" + (r.where.empty() ? "" : " on " + r.where) + "  | best " + fixed(best_, 4) + "  | " +
                 clock_text(std::max(0.0, run_.left())) + " left");
    };
    work.lost = [&](int id, const std::string& why) {
      run_.note(cycle, "node", why + "; c" + std::to_string(id) + " goes back to the queue");
    };
    if (!nodes_.enabled()) {
      LocalTrainer local(train_, val_, run_.c.workers);
      return train_rung(local, std::move(work), rung);
    }
    NodeTrainer remote(nodes_, run_.id(), [this](const std::string& m, const std::string& d) { return measure_model(m, d); });
    return train_rung(remote, std::move(work), rung);
  }

  bool federates() const { return run_.c.federation.rounds > 0 && nodes_.enabled(); }

  std::optional<FederatedModel> federate(int cycle, int candidate, const std::string& base) {
    const auto strategy = strategy_of(run_.c.federation);
    return gng::federate(run_, nodes_, *strategy,
                         [this](const std::string& d, const fed::Update& s) { return measure(d, s); }, space_->family(),
                         cycle, candidate, design_of(candidate), base);
  }

  std::string top_model(int candidate) const { return evaluations().at({candidate, top_}).model; }

  // The best safe candidate at the top rung challenges the promoted model (promotion.h's rule).
  void select(int cycle) {
    const Challenger best = best_safe(run_.reg.evaluations(), top_, run_.reg.refused(), run_.policy);
    if (!best.unsafe.empty()) run_.note(cycle, "safety", "not promotable under the policy:" + best.unsafe);
    const auto promoted = run_.reg.promotions();
    if (best.candidate < 0) {
      run_.note(cycle, "select", "no candidate meets the safety constraints yet");
      return;
    }
    if (!promoted.empty() && promoted.back().candidate == best.candidate) {
      run_.note(cycle, "select", "c" + std::to_string(best.candidate) + " stays promoted");
      return;
    }
    std::optional<FederatedModel> f;
    double now = 0;  // the promoted model's score as it is now, when the challenger is federated first
    const bool federate_first = !promoted.empty() && federates();
    if (federate_first) {
      const PromotionRow& champion = promoted.back();
      const std::string source = promoted_source(champion, run_, top_model(champion.candidate));
      now = run_.policy.score(measure_model(source, design_of(champion.candidate)));
      f = federate(cycle, best.candidate, best.model);
    }
    const Offer offer = challenger_offer(best, f, run_.policy);
    if (federate_first && offer.score <= now) {
      // Not considered again: its federation would repeat, and the promoted model would no longer be
      // refined in later cycles.
      run_.reg.refuse(best.candidate);
      note_federated(run_, cycle, best.candidate, f, "not promoted");
      run_.note(cycle, "select", "c" + std::to_string(promoted.back().candidate) + " stays promoted (score " + fixed(now, 4) +
                                     "): c" + std::to_string(best.candidate) + " scored " + fixed(offer.score, 4) +
                                     (f ? " at best after federation" : ""));
      return;
    }
    promote(run_, cycle, best.candidate, offer);
    note_federated(run_, cycle, best.candidate, f, offer.federated ? "promoted" : "promoted without its federation");
  }

  // The promoted model refined once more across the nodes, when no challenger was federated in this
  // cycle; the result replaces it when it scores higher. Once per cycle (a resumed run does not
  // repeat it).
  void federate_promoted(int cycle) {
    if (!federates() || run_.reg.promotions().empty()) return;
    for (const auto& d : run_.reg.decisions())
      if (d.kind == "federated" && d.cycle == cycle) return;
    const PromotionRow promoted = run_.reg.promotions().back();
    const auto f = federate(cycle, promoted.candidate, promoted_source(promoted, run_, top_model(promoted.candidate)));
    const bool better = f && improves(*f, run_.policy);
    if (better) promote(run_, cycle, promoted.candidate, {f->path, f->score, true, f->metrics}, promoted.approved_by);
    note_federated(run_, cycle, promoted.candidate, f, better ? "promoted" : "kept the model it started from");
  }

  void finish(const std::string& stop) {
    const std::string state = stop.empty() ? "finished" : "stopped: " + stop;
    const auto promoted = run_.reg.promotions();
    if (!promoted.empty() && run_.reg.meta("test_candidate") != std::to_string(promoted.back().candidate)) {
      const double acc = saved_accuracy(promoted.back().model, test_);
      run_.reg.begin();
      run_.reg.set_meta("test_accuracy", fixed(acc, 6));
      run_.reg.set_meta("test_candidate", std::to_string(promoted.back().candidate));
      run_.reg.commit();
      run_.note(-1, "test", "promoted c" + std::to_string(promoted.back().candidate) + ": test accuracy " + fixed(acc, 4) +
                                " on " + std::to_string(test_.count) + " held-out test images");
    }
    run_.reg.set_meta("state", state);
    run_.note(-1, "end", state);
    nodes_.stop(state);  // once the run is recorded as over: a site serving one run leaves on it
  }

  RunState run_;
  NodePool nodes_;
  const int top_;
  Dataset train_, val_, test_;
  std::unique_ptr<SearchSpace> space_;
  Feasibility feasible_;
  std::string deployed_;  // digest of the model the nodes serve
  double best_ = -1e300;
};

}  // namespace

void run_cycles(const std::string& dir, RunConfig config, std::ostream& out) { Cycle(dir, std::move(config), out).run(); }

}  // namespace gng
