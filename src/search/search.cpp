#include "search/search.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "core/error.h"
#include "core/rng.h"
#include "solve/sampler.h"
#include "surrogate/surrogate.h"

namespace gng {

Qubo with_one_hot_penalty(const Qubo& f, const std::vector<std::vector<uint32_t>>& groups) {
  double range = 0;
  for (double a : f.linear()) range += std::abs(a);
  for (const auto& t : f.quadratic()) range += std::abs(t.value);
  const double p = 1 + range;
  std::vector<double> lin = f.linear();
  std::vector<Coupling> quad = f.quadratic();
  double offset = f.offset();
  // (Σx − 1)² = −Σ x_i + 2 Σ_{i<j} x_i x_j + 1 for binary x.
  for (const auto& g : groups) {
    for (std::size_t i = 0; i < g.size(); ++i) {
      lin[g[i]] -= p;
      for (std::size_t j = i + 1; j < g.size(); ++j) quad.push_back({g[i], g[j], 2 * p});
    }
    offset += p;
  }
  return Qubo(f.size(), std::move(lin), quad, offset);
}

std::vector<double> normal_scores(const std::vector<double>& y) {
  const std::size_t m = y.size();
  std::vector<std::size_t> order(m);
  for (std::size_t i = 0; i < m; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return y[a] < y[b]; });
  std::vector<double> out(m);
  for (std::size_t k = 0; k < m;) {
    std::size_t e = k;  // ties share their mean rank
    while (e + 1 < m && y[order[e + 1]] == y[order[k]]) ++e;
    const double p = (0.5 * (k + e) + 0.5) / static_cast<double>(m);
    double lo = -10, hi = 10;  // Φ(x) = p by bisection
    for (int it = 0; it < 60; ++it) {
      const double mid = 0.5 * (lo + hi);
      (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
    }
    for (std::size_t j = k; j <= e; ++j) out[order[j]] = 0.5 * (lo + hi);
    k = e + 1;
  }
  return out;
}

Feasibility one_hot_feasibility(std::size_t n, std::vector<std::vector<uint32_t>> groups) {
  Feasibility f;
  f.groups = groups;
  f.one_hot = groups;
  f.penalise = [groups](const Qubo& q) { return with_one_hot_penalty(q, groups); };
  f.valid = [groups](const Bits& x) {
    for (const auto& g : groups) {
      int on = 0;
      for (uint32_t v : g) on += x[v];
      if (on != 1) return false;
    }
    return true;
  };
  f.random = [n, groups](Rng& rng) {
    Bits x(n);
    for (auto& b : x) b = rng.next() >> 63;
    for (const auto& g : groups) {
      for (uint32_t v : g) x[v] = 0;
      x[g[rng.below(g.size())]] = 1;
    }
    return x;
  };
  return f;
}

std::vector<Bits> propose(const QuadraticSurrogate& model, const Feasibility& f, std::set<Bits>& tried, int count,
                          Rng& rng, const std::string& sampler_name) {
  const auto sampler = make_sampler(sampler_name);
  std::vector<Bits> out;
  for (int b = 0; b < count; ++b) {
    const Qubo q = f.penalise(model.thompson(rng));
    SampleOptions so;
    so.seed = rng.next() >> 1;
    so.reads = 8;
    so.steps = 2000;  // the surrogate QUBOs are small and smooth: short tabu walks find their optima
    so.keep = 64;
    so.threads = 1;
    if (sampler_name == "qaoa" || sampler_name == "vqe") so.reads = 256;  // shots: cheap next to the optimisation
    if (sampler_name == "qaoa" && !f.one_hot.empty()) {  // keeps to the one-hot designs: XY mixer, on their subspace
      so.quantum.circuit.mixer = quantum::Mixer::xy;
      so.quantum.circuit.groups = f.one_hot;
    }
    bool added = false;
    const SampleSet found = sampler->sample(q, so);  // named: samples() of a temporary would dangle
    for (const auto& s : found.samples())
      if (f.valid(s.x) && tried.insert(s.x).second) {
        out.push_back(s.x);
        added = true;
        break;
      }
    // The sample's optima are already known: explore at random instead (bounded attempts).
    for (int attempt = 0; !added && attempt < 1000; ++attempt) {
      Bits x = f.random(rng);
      if (tried.insert(x).second) {
        out.push_back(std::move(x));
        added = true;
      }
    }
    if (!added) break;  // the space seems exhausted
  }
  return out;
}

std::vector<Observation> surrogate_search(std::size_t n, const Feasibility& f,
                                          const std::function<std::optional<double>(const Bits&)>& evaluate,
                                          const SearchOptions& o) {
  if (o.budget < 1 || o.initial < 1 || o.batch < 1) throw Error("search: budget, initial and batch must be >= 1");
  make_sampler(o.sampler);  // an unknown name fails before any evaluation
  Rng rng(o.seed, 0x5ea2c4);
  std::vector<Observation> seen;
  std::set<Bits> tried;  // evaluated or not evaluable
  auto consider = [&](const Bits& x) {
    if (auto s = evaluate(x)) seen.push_back({x, *s});
  };
  // Random designs until `initial` have been evaluated (bounded: a tiny space may run out).
  for (int attempt = 0; static_cast<int>(seen.size()) < std::min(o.initial, o.budget) && attempt < 1000 * o.budget; ++attempt) {
    Bits x = f.random(rng);
    if (tried.insert(x).second) consider(x);
  }
  QuadraticSurrogate model(n, f.groups);
  std::size_t tuned_at = 0;
  while (static_cast<int>(seen.size()) < o.budget) {
    std::vector<Bits> xs;
    std::vector<double> ys;
    for (const auto& s : seen) xs.push_back(s.x), ys.push_back(s.score);
    // Re-choose the hyper-parameters by evidence whenever the data grew by a tenth.
    const bool tune = 10 * seen.size() >= 11 * tuned_at || tuned_at == 0;
    if (tune) tuned_at = seen.size();
    model.fit(xs, normal_scores(ys), tune);
    const auto next = propose(model, f, tried, std::min<int>(o.batch, o.budget - static_cast<int>(seen.size())), rng, o.sampler);
    if (next.empty()) return seen;  // the space is exhausted
    for (const auto& x : next) consider(x);
  }
  return seen;
}

}  // namespace gng
