#include "lifecycle/generate.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <set>

#include "surrogate/surrogate.h"

namespace gng {

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

Proposal propose_designs(const std::vector<CandidateRow>& candidates, const std::vector<EvaluationRow>& evaluations,
                         const SearchSpace& space, const Feasibility& feasible, int count, Rng& rng,
                         const std::string& sampler) {
  std::set<Bits> tried;
  for (const auto& c : candidates) tried.insert(parse_bits(c.bits));
  std::map<int, double> lowest;  // candidate → its rung-0 score
  for (const auto& e : evaluations)
    if (e.rung == 0) lowest[e.candidate] = e.score;
  std::vector<Bits> xs;
  std::vector<double> ys;
  std::vector<std::pair<double, int>> ranked;
  for (const auto& c : candidates)
    if (auto it = lowest.find(c.id); it != lowest.end()) {
      xs.push_back(parse_bits(c.bits));
      ys.push_back(it->second);
      ranked.push_back({it->second, c.id});
    }
  Proposal p;
  if (xs.size() < 4) {
    for (int attempt = 0; static_cast<int>(p.designs.size()) < count && attempt < 1000 * count; ++attempt) {
      Bits x = space.random_valid(rng);
      if (tried.insert(x).second) p.designs.push_back(std::move(x));
    }
    p.origin = "random feasible design (no surrogate yet)";
    return p;
  }
  QuadraticSurrogate model(space.bits(), feasible.groups);
  model.fit(xs, normal_scores(ys), true);
  p.designs = propose(model, feasible, tried, count, rng, sampler);
  std::sort(ranked.rbegin(), ranked.rend());
  std::string parents;
  for (std::size_t i = 0; i < std::min<std::size_t>(3, ranked.size()); ++i)
    parents += (i ? ", c" : "c") + std::to_string(ranked[i].second);
  p.origin = "Thompson sample of the surrogate fitted on " + std::to_string(xs.size()) + " scores, minimised by " + sampler +
             " (best so far: " + parents + ")";
  return p;
}

std::vector<int> generate(RunState& run, const SearchSpace& space, const Feasibility& feasible, int cycle) {
  const auto all = run.reg.candidates();
  std::vector<int> ids;
  for (const auto& c : all)
    if (c.cycle == cycle) ids.push_back(c.id);
  if (!ids.empty()) return ids;
  const int count = std::min<int>(run.c.per_cycle, run.policy.candidates - static_cast<int>(all.size()));
  if (count <= 0) return {};
  Rng rng(run.c.seed, 0xc7c1e000 + cycle);
  const auto t0 = std::chrono::steady_clock::now();
  const Proposal p = propose_designs(all, run.reg.evaluations(), space, feasible, count, rng, run.c.sampler);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::lock_guard lock(run.mutex);
  run.reg.begin();
  for (const auto& x : p.designs) ids.push_back(run.reg.add_candidate(cycle, bits_text(x), space.decode(x)->to_json(), p.origin));
  run.reg.add_decision(run.used(), cycle, "generate",
                       std::to_string(p.designs.size()) + " designs in " + fixed(secs, 2) + " s: " + p.origin);
  run.save_time();
  run.reg.commit();
  run.print("generate: cycle " + std::to_string(cycle + 1) + ": " + std::to_string(p.designs.size()) + " designs (" +
            p.origin + ")");
  return ids;
}

}  // namespace gng
