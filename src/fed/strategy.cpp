#include "fed/strategy.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace gng::fed {

namespace {

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// Every result checked against the first (the first against itself too).
void check_all(std::span<const Update> results) {
  if (results.empty()) throw Error("aggregate: no updates");
  for (const Update& u : results) check_update(u, results[0]);
}

// The first update's layout, with values zeroed.
Update empty_like(const Update& u) {
  Update r;
  r.tensors.reserve(u.tensors.size());
  for (const Tensor& t : u.tensors) r.tensors.push_back({t.name, t.shape, std::vector<float>(t.values.size())});
  return r;
}

double total_samples(std::span<const Update> updates) {
  double s = 0;
  for (const Update& u : updates) s += u.samples;
  return s;
}

// Batch-norm running statistics are moments of each node's data, not weights: the variance of the
// nodes' data together is the weighted mean of (variance + mean²) less the pooled mean² (the law
// of total variance). The mean of the variances alone misses how far the nodes' means lie apart —
// large on non-IID shards — and leaves the aggregate normalising with too small a variance.
// `r` holds the weighted means already; each "X.running_var" with an "X.running_mean" is redone.
void pool_batch_norm_variances(std::span<const Update> updates, const std::vector<std::size_t>& chosen, double total,
                               Update& r) {
  std::map<std::string, std::size_t> index;
  for (std::size_t t = 0; t < r.tensors.size(); ++t) index[r.tensors[t].name] = t;
  constexpr std::string_view kVar = ".running_var";
  for (std::size_t v = 0; v < r.tensors.size(); ++v) {
    const std::string& name = r.tensors[v].name;
    if (!name.ends_with(kVar)) continue;
    const auto m = index.find(name.substr(0, name.size() - kVar.size()) + ".running_mean");
    if (m == index.end() || r.tensors[m->second].values.size() != r.tensors[v].values.size()) continue;
    std::vector<double> second(r.tensors[v].values.size(), 0.0);
    for (std::size_t i : chosen) {
      const double w = updates[i].samples / total;
      const std::vector<float>& var = updates[i].tensors[v].values;
      const std::vector<float>& mean = updates[i].tensors[m->second].values;
      for (std::size_t k = 0; k < second.size(); ++k)
        second[k] += w * (static_cast<double>(var[k]) + static_cast<double>(mean[k]) * mean[k]);
    }
    const std::vector<float>& pooled_mean = r.tensors[m->second].values;
    std::vector<float>& out = r.tensors[v].values;
    for (std::size_t k = 0; k < out.size(); ++k)
      out[k] = static_cast<float>(std::max(0.0, second[k] - static_cast<double>(pooled_mean[k]) * pooled_mean[k]));
  }
}

// Σ w_i x_i with w_i = samples_i / Σ samples, in double; batch-norm variances pooled (above).
Update weighted_mean(std::span<const Update> updates, const std::vector<std::size_t>& chosen, const std::string& rule) {
  double total = 0;
  for (std::size_t i : chosen) total += updates[i].samples;
  if (!(total > 0))
    throw Error(rule + ": all " + std::to_string(chosen.size()) + " updates have 0 samples, so there is nothing to weight by");
  Update r = empty_like(updates[chosen[0]]);
  r.samples = total;
  std::vector<double> acc;
  for (std::size_t t = 0; t < r.tensors.size(); ++t) {
    acc.assign(r.tensors[t].values.size(), 0.0);
    for (std::size_t i : chosen) {
      const double w = updates[i].samples / total;
      if (w == 0) continue;
      const std::vector<float>& x = updates[i].tensors[t].values;
      for (std::size_t k = 0; k < acc.size(); ++k) acc[k] += w * static_cast<double>(x[k]);
    }
    std::vector<float>& out = r.tensors[t].values;
    for (std::size_t k = 0; k < acc.size(); ++k) out[k] = static_cast<float>(acc[k]);
  }
  pool_batch_norm_variances(updates, chosen, total, r);
  return r;
}

// Per coordinate: the n values sorted, then `reduce` of the sorted column.
template <typename Reduce>
Update coordinatewise(std::span<const Update> updates, Reduce reduce) {
  const std::size_t n = updates.size();
  Update r = empty_like(updates[0]);
  r.samples = total_samples(updates);
  std::vector<float> column(n);
  std::vector<const float*> in(n);
  for (std::size_t t = 0; t < r.tensors.size(); ++t) {
    for (std::size_t i = 0; i < n; ++i) in[i] = updates[i].tensors[t].values.data();
    std::vector<float>& out = r.tensors[t].values;
    for (std::size_t k = 0; k < out.size(); ++k) {
      for (std::size_t i = 0; i < n; ++i) column[i] = in[i][k];
      std::sort(column.begin(), column.end());
      out[k] = static_cast<float>(reduce(column));
    }
  }
  return r;
}

void check_mu(const std::string& rule, double mu) {
  if (!(std::isfinite(mu) && mu >= 0)) throw Error(rule + ": mu " + number(mu) + " must be a finite number >= 0");
}

// ---- the strategies ------------------------------------------------------------------------------

class FedAvg : public Strategy {
 public:
  std::string name() const override { return "fedavg"; }
  Update aggregate(std::span<const Update> results) const override {
    check_all(results);
    std::vector<std::size_t> all(results.size());
    std::iota(all.begin(), all.end(), 0);
    return weighted_mean(results, all, name());
  }
};

// FedAvg's aggregation; the sites are sent mu (Li et al. 2020, "Federated Optimization in
// Heterogeneous Networks").
class FedProx final : public FedAvg {
 public:
  explicit FedProx(double mu) { mu_ = mu; }
  std::string name() const override { return "fedprox"; }
};

class TrimmedMean final : public Strategy {
 public:
  TrimmedMean(double trim, double mu) : trim_(trim) {
    if (!(trim >= 0 && trim < 0.5)) throw Error("trimmed_mean: trim " + number(trim) + " must be in [0, 0.5)");
    mu_ = mu;
  }
  std::string name() const override { return "trimmed_mean"; }
  Update aggregate(std::span<const Update> results) const override {
    check_all(results);
    const std::size_t n = results.size();
    // The small slack keeps e.g. 0.29 · 100 = 28.999999999999996 from losing one.
    const auto k = static_cast<std::size_t>(std::floor(trim_ * static_cast<double>(n) + 1e-9));
    if (2 * k >= n)
      throw Error("trimmed_mean: trim " + number(trim_) + " leaves nothing of " + std::to_string(n) + " updates");
    const double kept = static_cast<double>(n - 2 * k);
    return coordinatewise(results, [&](const std::vector<float>& sorted) {
      double s = 0;
      for (std::size_t i = k; i < n - k; ++i) s += sorted[i];
      return s / kept;
    });
  }

 private:
  double trim_;
};

class Median final : public Strategy {
 public:
  explicit Median(double mu) { mu_ = mu; }
  std::string name() const override { return "median"; }
  Update aggregate(std::span<const Update> results) const override {
    check_all(results);
    const std::size_t n = results.size();
    return coordinatewise(results, [&](const std::vector<float>& sorted) {
      if (n % 2) return static_cast<double>(sorted[n / 2]);
      return 0.5 * (static_cast<double>(sorted[n / 2 - 1]) + static_cast<double>(sorted[n / 2]));
    });
  }
};

class Krum final : public Strategy {
 public:
  Krum(int byzantine, int multi, double mu) : f_(byzantine), multi_(multi) {
    if (f_ < 0) throw Error("krum: byzantine = " + std::to_string(f_) + " must be >= 0");
    if (multi_ < 1) throw Error("krum: multi = " + std::to_string(multi_) + " must be >= 1");
    mu_ = mu;
  }
  std::string name() const override { return "krum"; }
  Update aggregate(std::span<const Update> results) const override {
    check_all(results);
    const auto n = static_cast<int>(results.size());
    const int f = f_;
    if (n < 2 * f + 3)
      throw Error("krum: n = " + std::to_string(n) + " updates with f = " + std::to_string(f) +
                  " byzantine; Krum needs n >= 2f + 3 = " + std::to_string(2 * f + 3));
    const int m = std::min(multi_, n - f);  // Multi-Krum averages at most the n − f presumed honest

    std::vector<std::vector<double>> d2(n, std::vector<double>(n, 0.0));
    for (int i = 0; i < n; ++i)
      for (int j = i + 1; j < n; ++j) d2[i][j] = d2[j][i] = squared_distance(results[i], results[j]);

    // score_i: sum of squared distances to its n − f − 2 nearest others.
    const int neighbours = n - f - 2;
    std::vector<double> score(n);
    std::vector<double> others;
    for (int i = 0; i < n; ++i) {
      others.clear();
      for (int j = 0; j < n; ++j)
        if (j != i) others.push_back(d2[i][j]);
      std::partial_sort(others.begin(), others.begin() + neighbours, others.end());
      score[i] = std::accumulate(others.begin(), others.begin() + neighbours, 0.0);
    }
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return score[a] < score[b]; });  // ties: first sent
    order.resize(m);
    if (m == 1) {
      Update r = results[order[0]];
      r.from.clear();
      return r;
    }
    return weighted_mean(results, order, name());
  }

 private:
  int f_, multi_;
};

}  // namespace

RoundConfig Strategy::configure_round(int /*round*/) const { return RoundConfig{mu_}; }

std::unique_ptr<Strategy> make_strategy(const StrategyConfig& c) {
  if (c.rule != "fedavg" && c.rule != "trimmed_mean" && c.rule != "median" && c.rule != "krum")
    throw Error("make_strategy: unknown rule '" + c.rule + "' (fedavg, trimmed_mean, median or krum)");
  check_mu(c.rule, c.mu);
  if (c.rule == "trimmed_mean") return std::make_unique<TrimmedMean>(c.trim, c.mu);
  if (c.rule == "median") return std::make_unique<Median>(c.mu);
  if (c.rule == "krum") return std::make_unique<Krum>(c.byzantine, c.multi, c.mu);
  if (c.mu > 0) return std::make_unique<FedProx>(c.mu);
  return std::make_unique<FedAvg>();
}

}  // namespace gng::fed
