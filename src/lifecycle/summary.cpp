#include "lifecycle/summary.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "lifecycle/config.h"
#include "lifecycle/registry.h"
#include "search/search.h"
#include "space/space.h"
#include "surrogate/surrogate.h"

namespace gng {

namespace {

namespace fs = std::filesystem;

// True when no other point is at least as good in every objective and better in one.
std::vector<bool> pareto(const std::vector<std::vector<double>>& pts) {  // all maximised
  std::vector<bool> front(pts.size(), true);
  for (std::size_t i = 0; i < pts.size(); ++i)
    for (std::size_t j = 0; j < pts.size() && front[i]; ++j) {
      if (i == j) continue;
      bool ge = true, gt = false;
      for (std::size_t k = 0; k < pts[i].size(); ++k) ge &= pts[j][k] >= pts[i][k], gt |= pts[j][k] > pts[i][k];
      if (ge && gt) front[i] = false;
    }
  return front;
}

std::string short_design(const std::string& json) {
  std::string s;
  const auto j = nlohmann::ordered_json::parse(json);  // named: items() of a temporary would dangle
  for (const auto& [k, v] : j.items()) s += (s.empty() ? "" : " ") + k + "=" + v.get<std::string>();
  return s;
}

}  // namespace

ReportData summarize_run(const std::string& dir) {
  Registry reg((fs::path(dir) / "registry.db").string(), false, true);  // a reader: writes nothing
  ReportData r;
  r.run_id = fs::path(dir).filename().string();
  r.config = reg.meta("config_source").value_or("");
  r.state = reg.meta("state").value_or("unknown");
  const RunConfig c = RunConfig::from_yaml(reg.meta("config").value_or(""), "<stored config>", "", "");
  const Policy p = Policy::from_yaml(reg.meta("policy").value_or(""), "<stored policy>");
  r.sampler = c.sampler;
  r.elapsed_s = reg.used_seconds();
  r.budget_s = p.wall_clock_s;
  r.cycles = p.cycles;
  for (const auto& [k, w] : p.objectives) {
    std::ostringstream s;
    s << w << " × " << k;
    r.objectives.push_back(s.str());
  }
  r.notes = "Models are trained for real with libtorch on this machine's CPU. Designs come from a quadratic "
            "surrogate of the observed scores, sampled (Thompson) and minimised as a QUBO by the '" + c.sampler +
            "' sampler" + (c.sampler == "qaoa" || c.sampler == "vqe" ? ", which runs on a classical state-vector "
                                                                       "simulator, not on quantum hardware" : ", a classical algorithm") +
            ". Energy is an estimate: measured single-image latency × " + std::to_string(c.watts).substr(0, 4) +
            " W per core, not a power measurement.";
  if (c.sites() > 0) {
    const std::size_t sites = reg.sites().size();
    r.notes += " Candidates trained on " + std::to_string(sites) + " site(s) that dialled in to the orchestrator (" +
               std::to_string(c.nodes) + " of them local node processes with a shard each; remote sites hold their own data), over "
               "TLS 1.3 (X25519MLKEM768, ML-DSA certificates)";
    r.notes += p.qkd == "off" ? "; model exchanges were sealed without QKD keys (policy: qkd off)."
                              : "; model exchanges were also keyed by QKD keys from a simulated BB84 link (a model of a "
                                "fibre link, not photonic hardware), distilled between the two ends' own KMEs and delivered "
                                "through ETSI GS QKD 014 (policy: qkd " + p.qkd + ").";
  }
  const auto decisions = reg.decisions();
  for (const auto& d : decisions) {
    r.decisions.push_back({d.time_s, d.kind, d.text});
    if (d.kind == "cycle-done") r.cycles_done = std::max(r.cycles_done, d.cycle + 1);
  }
  const auto cands = reg.candidates();
  const auto evals = reg.evaluations();
  const auto promos = reg.promotions();
  const int promoted = promos.empty() ? -1 : promos.back().candidate;
  const int top = static_cast<int>(c.rungs.size()) - 1;
  int surrogate = 0, random = 0;
  std::vector<Bits> xs;
  std::vector<double> ys;
  for (const auto& cand : cands) {
    (cand.origin.rfind("Thompson", 0) == 0 ? surrogate : random)++;
    ReportCandidate rc;
    rc.id = cand.id;
    rc.cycle = cand.cycle + 1;  // cycles are counted from 1 wherever a person reads them
    rc.bits = cand.bits;
    rc.design = short_design(cand.design);
    rc.rung = -1;
    for (const auto& e : evals)
      if (e.candidate == cand.id && e.rung > rc.rung) {
        rc.rung = e.rung, rc.score = e.score, rc.metrics = e.metrics;
        rc.epochs = e.metrics.count("epochs") ? e.metrics.at("epochs") : 0;
      }
    for (const auto& e : evals)
      if (e.candidate == cand.id && e.rung == 0) {
        Bits x;
        for (char ch : cand.bits) x.push_back(ch == '1');
        xs.push_back(x), ys.push_back(e.score);
      }
    rc.promoted = cand.id == promoted;
    if (rc.rung < 0) {
      rc.status = "not evaluated yet";
    } else if (rc.rung < top) {
      rc.status = "stopped at rung " + std::to_string(rc.rung);
    } else {
      const auto why = p.safety_violation(rc.metrics);
      rc.status = why.empty() ? "full fidelity" : "unsafe: " + why;
    }
    if (rc.promoted) rc.status += ", promoted";
    r.candidates.push_back(rc);
  }
  // Pareto front of the full-fidelity candidates: accuracy, robustness up; latency, params down.
  std::vector<std::vector<double>> pts;
  std::vector<std::size_t> at;
  for (std::size_t i = 0; i < r.candidates.size(); ++i) {
    const auto& m = r.candidates[i].metrics;
    if (r.candidates[i].rung != top || !m.count("accuracy")) continue;
    pts.push_back({m.at("accuracy"), m.at("robustness"), -m.at("latency_ms"), -m.at("params")});
    at.push_back(i);
  }
  const auto front = pareto(pts);
  for (std::size_t k = 0; k < at.size(); ++k) r.candidates[at[k]].pareto = front[k];
  // Convergence over the lowest-fidelity scores, the one measure every candidate has.
  double best = -1e300;
  int n = 0;
  for (const auto& e : evals)
    if (e.rung == 0) r.convergence.push_back({++n, best = std::max(best, e.score)});
  r.sampler_stats = {{"designs from the surrogate", std::to_string(surrogate)},
                     {"random designs", std::to_string(random)},
                     {"evaluations (all rungs)", std::to_string(evals.size())},
                     {"fidelity rungs", std::to_string(c.rungs.size()) + " (eta " + std::to_string(c.eta) + ")"}};
  // The surrogate's learned coefficients (posterior mean, in normal-score units: positive helps).
  try {
    SearchSpace space = SearchSpace::from_yaml(reg.meta("space").value_or(""), "<stored space>");
    for (std::size_t i = 0; i < space.bits(); ++i) r.bit_names.push_back(space.bit_name(i));
    if (xs.size() >= 4) {
      QuadraticSurrogate model(space.bits(), space.one_of_groups());
      model.fit(xs, normal_scores(ys), true);
      const Qubo q = model.mean_qubo();
      r.couplings.assign(space.bits(), std::vector<double>(space.bits(), 0.0));
      for (std::size_t i = 0; i < space.bits(); ++i) r.couplings[i][i] = -q.linear()[i];
      for (const auto& t : q.quadratic()) r.couplings[t.i][t.j] = r.couplings[t.j][t.i] = -t.value;
    }
  } catch (const Error& e) {
    r.couplings.clear();  // the report still shows everything else, and says why this is missing
    r.sampler_stats["surrogate"] = std::string("not shown: ") + e.what();
  }
  if (promoted >= 0) {
    for (const auto& rc : r.candidates)
      if (rc.id == promoted) r.promoted_metrics = rc.metrics;
    // When the promoted model is the federated one, its metrics are those measured after the
    // last round, not the candidate's own top-rung ones.
    for (const auto& [k, v] : promos.back().metrics) r.promoted_metrics[k] = v;
    if (const auto t = reg.meta("test_accuracy"); t && reg.meta("test_candidate") == std::to_string(promoted))
      r.promoted_metrics["test_accuracy"] = std::stod(*t);
    r.promoted_path = promos.back().model;
  }
  r.audit_head = reg.meta("audit_head").value_or("");
  return r;
}

}  // namespace gng
