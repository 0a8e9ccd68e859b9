#include "fed/fed.h"

#include <algorithm>
#include <map>
#include <cstring>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <unordered_set>

#include "core/error.h"

namespace gng::fed {

namespace {

std::string quoted(const std::string& s) { return "'" + s + "'"; }

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

bool has_tensor(const Update& u, const std::string& name) {
  return std::any_of(u.tensors.begin(), u.tensors.end(), [&](const Tensor& t) { return t.name == name; });
}

// Squared Euclidean distance over all values; a and b already checked to match.
double squared_distance(const Update& a, const Update& b) {
  double s = 0;
  for (std::size_t t = 0; t < a.tensors.size(); ++t) {
    const std::vector<float>& x = a.tensors[t].values;
    const std::vector<float>& y = b.tensors[t].values;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double d = static_cast<double>(x[i]) - static_cast<double>(y[i]);
      s += d * d;
    }
  }
  return s;
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
Update weighted_mean(std::span<const Update> updates, const std::vector<std::size_t>& chosen, const char* rule) {
  double total = 0;
  for (std::size_t i : chosen) total += updates[i].samples;
  if (!(total > 0))
    throw Error(std::string(rule) + ": all " + std::to_string(chosen.size()) + " updates have 0 samples, so there is nothing to weight by");
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

Update trimmed_mean(std::span<const Update> updates, double trim) {
  if (!(trim >= 0 && trim < 0.5)) throw Error("trimmed_mean: trim " + number(trim) + " must be in [0, 0.5)");
  const std::size_t n = updates.size();
  // The small slack keeps e.g. 0.29 · 100 = 28.999999999999996 from losing one.
  const auto k = static_cast<std::size_t>(std::floor(trim * static_cast<double>(n) + 1e-9));
  if (2 * k >= n) throw Error("trimmed_mean: trim " + number(trim) + " leaves nothing of " + std::to_string(n) + " updates");
  const double kept = static_cast<double>(n - 2 * k);
  return coordinatewise(updates, [&](const std::vector<float>& sorted) {
    double s = 0;
    for (std::size_t i = k; i < n - k; ++i) s += sorted[i];
    return s / kept;
  });
}

Update median(std::span<const Update> updates) {
  const std::size_t n = updates.size();
  return coordinatewise(updates, [&](const std::vector<float>& sorted) {
    if (n % 2) return static_cast<double>(sorted[n / 2]);
    return 0.5 * (static_cast<double>(sorted[n / 2 - 1]) + static_cast<double>(sorted[n / 2]));
  });
}

Update krum(std::span<const Update> updates, int f, int m) {
  const auto n = static_cast<int>(updates.size());
  if (f < 0) throw Error("krum: byzantine = " + std::to_string(f) + " must be >= 0");
  if (n < 2 * f + 3)
    throw Error("krum: n = " + std::to_string(n) + " updates with f = " + std::to_string(f) +
                " byzantine; Krum needs n >= 2f + 3 = " + std::to_string(2 * f + 3));
  if (m < 1 || m > n - f)
    throw Error("krum: multi = " + std::to_string(m) + " must be in 1..n - f = " + std::to_string(n - f));

  std::vector<std::vector<double>> d2(n, std::vector<double>(n, 0.0));
  for (int i = 0; i < n; ++i)
    for (int j = i + 1; j < n; ++j) d2[i][j] = d2[j][i] = squared_distance(updates[i], updates[j]);

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
    Update r = updates[order[0]];
    r.from.clear();
    return r;
  }
  return weighted_mean(updates, order, "krum");
}

}  // namespace

void check_update(const Update& u, const Update& like) {
  const std::string who = "update from " + quoted(u.from);
  const std::string other = "the update from " + quoted(like.from);
  if (!std::isfinite(u.samples) || u.samples < 0)
    throw Error(who + ": samples " + number(u.samples) + " is not a finite number >= 0");

  const std::size_t common = std::min(u.tensors.size(), like.tensors.size());
  for (std::size_t t = 0; t <= common; ++t) {
    if (t == common) {
      if (u.tensors.size() < like.tensors.size())
        throw Error(who + " lacks tensor " + quoted(like.tensors[t].name) + " that " + other + " has");
      if (u.tensors.size() > like.tensors.size())
        throw Error(who + " has tensor " + quoted(u.tensors[t].name) + " that " + other + " lacks");
      break;
    }
    const std::string& mine = u.tensors[t].name;
    const std::string& theirs = like.tensors[t].name;
    if (mine == theirs) continue;
    if (!has_tensor(u, theirs)) throw Error(who + " lacks tensor " + quoted(theirs) + " that " + other + " has");
    if (!has_tensor(like, mine)) throw Error(who + " has tensor " + quoted(mine) + " that " + other + " lacks");
    throw Error(who + " has tensor " + quoted(mine) + " at position " + std::to_string(t) + " where " + other +
                " has " + quoted(theirs));
  }

  std::unordered_set<std::string> seen;
  for (std::size_t t = 0; t < u.tensors.size(); ++t) {
    const Tensor& x = u.tensors[t];
    const std::string tensor = who + ": tensor " + quoted(x.name);
    if (!seen.insert(x.name).second) throw Error(who + " has tensor " + quoted(x.name) + " twice");
    if (x.shape != like.tensors[t].shape)
      throw Error(tensor + " has shape " + shape_text(x.shape) + ", but " + other + " has " + shape_text(like.tensors[t].shape));
    std::size_t size = 1;
    for (int64_t d : x.shape) {
      if (d < 0) throw Error(tensor + " has a negative dimension in shape " + shape_text(x.shape));
      size *= static_cast<std::size_t>(d);
    }
    if (x.values.size() != size)
      throw Error(tensor + " has " + std::to_string(x.values.size()) + " values, but its shape " + shape_text(x.shape) +
                  " holds " + std::to_string(size));
    for (std::size_t k = 0; k < x.values.size(); ++k)
      if (!std::isfinite(x.values[k]))
        throw Error(tensor + " holds " + (std::isnan(x.values[k]) ? "NaN" : x.values[k] > 0 ? "inf" : "-inf") +
                    " at index " + std::to_string(k));
  }
}

Update scaled_from(const Update& u, const Update& reference, double scale) {
  check_update(u, reference);
  Update out = u;
  for (std::size_t t = 0; t < out.tensors.size(); ++t)
    for (std::size_t k = 0; k < out.tensors[t].values.size(); ++k) {
      const double r = reference.tensors[t].values[k];
      out.tensors[t].values[k] = static_cast<float>(r + scale * (out.tensors[t].values[k] - r));
    }
  return out;
}

double l2_distance(const Update& a, const Update& b) {
  check_update(a, a);
  check_update(b, a);
  return std::sqrt(squared_distance(a, b));
}

Update aggregate(std::span<const Update> updates, const Rule& rule) {
  if (updates.empty()) throw Error("aggregate: no updates");
  for (const Update& u : updates) check_update(u, updates[0]);
  switch (rule.kind) {
    case Rule::fedavg: {
      std::vector<std::size_t> all(updates.size());
      std::iota(all.begin(), all.end(), 0);
      return weighted_mean(updates, all, "fedavg");
    }
    case Rule::trimmed_mean:
      return trimmed_mean(updates, rule.trim);
    case Rule::median:
      return median(updates);
    case Rule::krum:
      return krum(updates, rule.byzantine, rule.multi);
  }
  throw Error("aggregate: unknown rule " + std::to_string(static_cast<int>(rule.kind)));
}

namespace {

void put(std::string& b, uint64_t v, int bytes) {
  for (int s = 8 * (bytes - 1); s >= 0; s -= 8) b.push_back(static_cast<char>((v >> s) & 0xff));
}

struct Reader {
  std::string_view in;
  std::size_t at = 0;
  std::string_view take(std::size_t n, const char* what) {
    if (n > in.size() - at)
      throw Error(std::string("truncated update: ") + what + " needs " + std::to_string(n) + " bytes, " +
                  std::to_string(in.size() - at) + " left");
    const std::string_view v = in.substr(at, n);
    at += n;
    return v;
  }
  uint64_t uint(int bytes, const char* what) {
    uint64_t v = 0;
    for (char c : take(static_cast<std::size_t>(bytes), what)) v = (v << 8) | static_cast<uint8_t>(c);
    return v;
  }
  std::string str(const char* what) { return std::string(take(uint(2, what), what)); }
};

}  // namespace

std::string encode(const Update& u) {
  std::string b = "GNGU\x01";
  if (u.from.size() > 0xffff) throw Error("update: sender name too long");
  put(b, u.from.size(), 2);
  b += u.from;
  uint64_t samples;
  static_assert(sizeof samples == sizeof u.samples);
  std::memcpy(&samples, &u.samples, sizeof samples);
  put(b, samples, 8);
  put(b, u.tensors.size(), 4);
  for (const auto& t : u.tensors) {
    if (t.name.size() > 0xffff || t.shape.size() > 255) throw Error("update: tensor '" + t.name + "' cannot be encoded");
    put(b, t.name.size(), 2);
    b += t.name;
    put(b, t.shape.size(), 1);
    for (int64_t d : t.shape) put(b, static_cast<uint64_t>(d), 8);
    put(b, t.values.size(), 8);
    const std::size_t at = b.size();
    b.resize(at + 4 * t.values.size());
    std::memcpy(b.data() + at, t.values.data(), 4 * t.values.size());  // x86-64: little-endian already
  }
  return b;
}

Update decode(std::string_view bytes) {
  Reader r{bytes};
  if (r.take(5, "magic") != std::string_view("GNGU\x01", 5)) throw Error("not a gng model update (bad magic or version)");
  Update u;
  u.from = r.str("sender");
  const uint64_t samples = r.uint(8, "samples");
  std::memcpy(&u.samples, &samples, sizeof samples);
  const uint64_t n = r.uint(4, "tensor count");
  for (uint64_t i = 0; i < n; ++i) {
    Tensor t;
    t.name = r.str("tensor name");
    const uint64_t rank = r.uint(1, "rank");
    for (uint64_t k = 0; k < rank; ++k) t.shape.push_back(static_cast<int64_t>(r.uint(8, "dimension")));
    const uint64_t count = r.uint(8, "value count");
    if (count > (bytes.size() - r.at) / 4) throw Error("truncated update: tensor '" + t.name + "' claims " + std::to_string(count) + " values");
    const std::string_view v = r.take(4 * count, "values");
    t.values.resize(count);
    std::memcpy(t.values.data(), v.data(), v.size());
    u.tensors.push_back(std::move(t));
  }
  if (r.at != bytes.size()) throw Error("update has " + std::to_string(bytes.size() - r.at) + " trailing bytes");
  return u;
}

}  // namespace gng::fed
