#include "lifecycle/federation.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <mutex>
#include <thread>
#include <vector>

#include "nn/nn.h"

namespace gng {

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n == 0 ? 0 : n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

std::unique_ptr<fed::Strategy> strategy_of(const RunConfig::Federation& f) {
  return fed::make_strategy({f.rule, f.mu, f.trim, f.byzantine, f.multi});
}

std::optional<FederatedModel> federate(RunState& run, NodePool& nodes, const fed::Strategy& strategy,
                                       const MeasureState& measure, const std::string& family, int cycle, int candidate,
                                       const std::string& design_json, const std::string& base) {
  const auto& F = run.c.federation;
  fed::Update global = load_state(base);
  const double before = run.policy.score(measure(design_json, global));
  Metrics last;  // of the latest aggregate
  int missed = 0;
  for (int round = 1; round <= F.rounds;) {
    if (run.left() <= 0) {
      run.note(cycle, "federate", "round " + std::to_string(round) + " not started: wall-clock budget spent");
      break;
    }
    nodes.refresh();  // a site that joined since takes part from this round
    const std::size_t quorum = static_cast<std::size_t>(std::ceil(F.quorum * static_cast<double>(nodes.size())));
    const fed::RoundConfig rc = strategy.configure_round(round);
    std::vector<fed::Update> states;
    std::vector<double> overhead, compute;  // per answering node: seconds of exchange, of training
    std::mutex m;
    std::vector<std::thread> pool;
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      if (!nodes.up(i)) continue;
      pool.emplace_back([&, round, i] {
        node::RoundJob job{run.id(), round, candidate, family, design_json, global, TrainBudget{}, rc.mu, F.rounds};
        job.budget.epochs = F.epochs;
        job.budget.samples = F.samples;
        job.budget.batch = run.c.batch;
        job.budget.seed = run.c.seed * 7919 + static_cast<uint64_t>(round);
        try {
          const auto sent = std::chrono::steady_clock::now();
          node::RoundResult r = nodes.client(i).federated_round(job);
          const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - sent).count();
          fed::check_update(r.state, global);  // a malformed or poisoned-with-NaN state is refused, not fatal
          std::lock_guard lock(m);
          states.push_back(std::move(r.state));
          if (const auto c = r.metrics.find("compute_s"); c != r.metrics.end()) {
            compute.push_back(c->second);
            overhead.push_back(wall - c->second);
          }
        } catch (const net::Unreachable& e) {
          run.note(cycle, "node", nodes.id(i) + " is down (" + e.what() + ") in federated round " + std::to_string(round));
          nodes.mark_down(i);
        } catch (const std::exception& e) {
          run.note(cycle, "federate", nodes.id(i) + "'s update refused in round " + std::to_string(round) + ": " + e.what());
        }
      });
    }
    for (auto& t : pool) t.join();
    // Too few answers, or too few for the strategy (Krum needs n ≥ 2f + 3): the nodes are restarted
    // and the round repeated.
    std::string missed_why;
    fed::Update next;
    if (states.size() < std::max<std::size_t>(1, quorum)) {
      missed_why = "below the quorum of " + std::to_string(quorum);
    } else {
      try {
        next = strategy.aggregate(states);
      } catch (const Error& e) {
        missed_why = "too few for " + strategy.name() + ": " + e.what();
      }
    }
    if (!missed_why.empty()) {
      run.note(cycle, "federate", "round " + std::to_string(round) + ": " + std::to_string(states.size()) + " of " +
                                      std::to_string(nodes.size()) + " nodes answered, " + missed_why +
                                      "; restarting the nodes and repeating the round");
      nodes.restart_down();
      if (++missed > 3) throw Error("federation: round " + std::to_string(round) + " failed four times (" + missed_why + ")");
      continue;
    }
    global = std::move(next);
    const Metrics mt = measure(design_json, global);
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
    run.note(cycle, "federate", "round " + std::to_string(round) + " (" + strategy.name() + " of " + from + "): accuracy " +
                                    fixed(mt.at("accuracy"), 4) + ", score " + fixed(run.policy.score(mt), 4) + cost);
    last = mt;
    ++round;
  }
  nodes.restart_down();
  if (last.empty()) return std::nullopt;
  FederatedModel f{last, run.policy.score(last), before, run.federated_path(candidate, cycle)};
  save_state(global, base, f.path);
  return f;
}

void note_federated(RunState& run, int cycle, int candidate, const std::optional<FederatedModel>& f,
                    const std::string& outcome) {
  if (!f) return;
  const std::string why = run.policy.safety_violation(f->metrics);
  run.note(cycle, "federated", "c" + std::to_string(candidate) + " after " + std::to_string(run.c.federation.rounds) +
                                   " rounds: score " + fixed(f->score, 4) + " (was " + fixed(f->before, 4) + ")" +
                                   (why.empty() ? "" : ", unsafe: " + why) + " → " + outcome);
}

}  // namespace gng
