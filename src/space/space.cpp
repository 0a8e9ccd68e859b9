#include "space/space.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/yaml.h"

namespace gng {

namespace {

constexpr double kEnumerateLimit = double(1u << 22);  // encodings finalize() enumerates at most
constexpr int kRandomTries = 100000;

// Strict number: the whole string, finite.
std::optional<double> parse_number(std::string_view t) {
  if (!t.empty() && t[0] == '+') t.remove_prefix(1);
  double v = 0;
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (t.empty() || ec != std::errc() || p != t.data() + t.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

// Costs and budgets as people write them: 300000, not 3e+05; 0.0003, not 3.0000e-04.
std::string fmt(double v) {
  char buf[64];
  if (std::fabs(v) < 1e15 && v == std::floor(v))
    std::snprintf(buf, sizeof buf, "%.0f", v);
  else
    std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return std::string(s);
}

// Decision names may not contain the operator characters of literals.
bool valid_name(std::string_view s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
  });
}

// Where each decision's gate bit lies (−1: not gated), the decision each bit belongs to, and for a
// uniform draw the chance that each flag is on.
struct Layout {
  std::vector<int64_t> gate_bit;
  std::vector<uint32_t> decision_of;
  std::vector<double> p_on;
  explicit Layout(const std::vector<Decision>& ds) : gate_bit(ds.size(), -1), p_on(ds.size(), 0.5) {
    std::vector<double> gated(ds.size(), 1.0);  // flag → Π k_c of the one-ofs it gates
    for (std::size_t d = 0; d < ds.size(); ++d) {
      for (std::size_t g = 0; g < d && !ds[d].when.empty(); ++g)
        if (ds[g].name == ds[d].when) {
          gate_bit[d] = ds[g].first_bit;
          gated[g] *= double(ds[d].values.size());
          // On with probability Π k_c / (1 + Π k_c): then every completion is equally likely.
          p_on[g] = gated[g] / (1 + gated[g]);
        }
      for (uint32_t b = 0; b < ds[d].bits; ++b) decision_of.push_back(static_cast<uint32_t>(d));
    }
  }
};

// Calls fn on every bit vector that satisfies the encoding rules (one-hot, gating, thermometer), in
// a fixed order; stops when fn returns false. Returns false when stopped.
bool walk(const std::vector<Decision>& ds, const Layout& lay, std::size_t d, Bits& x,
          const std::function<bool(const Bits&)>& fn) {
  if (d == ds.size()) return fn(x);
  const Decision& dec = ds[d];
  const uint32_t b = dec.first_bit;
  switch (dec.kind) {
    case DecisionKind::flag: {
      bool go_on = true;
      for (uint8_t v : {0, 1}) {
        x[b] = v;
        if (!(go_on = walk(ds, lay, d + 1, x, fn))) break;
      }
      x[b] = 0;
      return go_on;
    }
    case DecisionKind::one_of:
      if (lay.gate_bit[d] >= 0 && !x[lay.gate_bit[d]]) return walk(ds, lay, d + 1, x, fn);
      for (uint32_t i = 0; i < dec.bits; ++i) {
        x[b + i] = 1;
        const bool go_on = walk(ds, lay, d + 1, x, fn);
        x[b + i] = 0;
        if (!go_on) return false;
      }
      return true;
    case DecisionKind::ordinal:
      for (uint32_t i = 0; i <= dec.bits; ++i) {
        if (i > 0) x[b + i - 1] = 1;
        if (!walk(ds, lay, d + 1, x, fn)) {
          std::fill(x.begin() + b, x.begin() + b + dec.bits, 0);
          return false;
        }
      }
      std::fill(x.begin() + b, x.begin() + b + dec.bits, 0);
      return true;
  }
  return true;
}

// Number of bit vectors that satisfy the encoding rules: a gate flag with gated one-ofs of sizes
// k_c contributes 1 + Π k_c, any other decision its number of values.
double encodings(const std::vector<Decision>& ds) {
  std::map<std::string, double> gated;  // gate → Π k_c
  for (const Decision& d : ds)
    if (!d.when.empty()) gated.try_emplace(d.when, 1.0).first->second *= double(d.values.size());
  double n = 1;
  for (const Decision& d : ds) {
    if (!d.when.empty()) continue;
    auto g = gated.find(d.name);
    n *= g != gated.end() ? 1 + g->second : double(d.values.size());
  }
  return n;
}

// A uniformly random bit vector among those that satisfy the encoding rules.
Bits random_encoding(const std::vector<Decision>& ds, const Layout& lay, Rng& rng) {
  Bits x(lay.decision_of.size(), 0);
  for (std::size_t d = 0; d < ds.size(); ++d) {
    const Decision& dec = ds[d];
    const uint32_t b = dec.first_bit;
    if (dec.kind == DecisionKind::flag) {
      x[b] = rng.uniform() < lay.p_on[d];
    } else if (dec.kind == DecisionKind::one_of) {
      if (lay.gate_bit[d] < 0 || x[lay.gate_bit[d]]) x[b + rng.below(dec.bits)] = 1;
    } else {
      const uint64_t index = rng.below(dec.bits + 1);
      for (uint32_t i = 0; i < index; ++i) x[b + i] = 1;
    }
  }
  return x;
}

// The cost model on one design; its failure names the design, since a space can hold designs the
// family cannot build.
std::map<std::string, double> costs_of(const CostModel& cost, const Design& d, const std::string& family) {
  try {
    return cost(d);
  } catch (const Error& e) {
    throw Error("the cost model of family '" + family + "' fails on " + d.to_json() + ": " + e.what());
  }
}

struct Affine {  // c + s·x_bit
  double c, s;
  uint32_t bit;
};

struct Terms {
  std::vector<double> linear;
  std::vector<Coupling> quadratic;
  double offset = 0;
  void add(const Affine& p, const Affine& q, double w = 1) {  // w·p·q
    offset += w * p.c * q.c;
    linear[q.bit] += w * p.c * q.s;
    linear[p.bit] += w * q.c * p.s;
    quadratic.push_back({p.bit, q.bit, w * p.s * q.s});  // the Qubo folds p.bit == q.bit into linear
  }
};

}  // namespace

// --- Design -----------------------------------------------------------------------------------------

const std::string* Design::find(std::string_view name) const {
  for (const auto& [k, v] : values)
    if (k == name) return &v;
  return nullptr;
}

std::string Design::text(std::string_view name, const std::string& fallback) const {
  const std::string* v = find(name);
  return v ? *v : fallback;
}

double Design::number(std::string_view name, double fallback) const {
  const std::string* v = find(name);
  if (!v) return fallback;
  if (auto n = parse_number(*v)) return *n;
  throw Error("design: " + std::string(name) + " = '" + *v + "' is not a number");
}

bool Design::flag(std::string_view name) const {
  const std::string* v = find(name);
  return v && *v == "true";
}

std::string Design::to_json() const {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (const auto& [k, v] : values) j[k] = v;
  return j.dump();
}

Design Design::from_json(const std::string& json) {
  nlohmann::ordered_json j;
  try {
    j = nlohmann::ordered_json::parse(json);
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("design JSON: ") + e.what());
  }
  if (!j.is_object()) throw Error("design JSON: expected an object of decision name → value");
  Design d;
  for (const auto& [k, v] : j.items()) {
    if (!v.is_string()) throw Error("design JSON: value of '" + k + "' must be a string, got " + v.dump());
    d.values.emplace_back(k, v.get<std::string>());
  }
  return d;
}

// --- reading the YAML -------------------------------------------------------------------------------

SearchSpace SearchSpace::from_file(const std::string& path) {
  return from_yaml(yaml::slurp(path), path);
}

SearchSpace SearchSpace::from_yaml(const std::string& text, const std::string& source) {
  SearchSpace sp;
  sp.source_ = source;
  auto fail = [&](const YAML::Node& at, const std::string& what) -> Error {
    const int line = at.Mark().line;
    return Error(source + (line >= 0 ? ":" + std::to_string(line + 1) : std::string()) + ": " + what);
  };
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    throw Error(source + ":" + std::to_string(e.mark.line + 1) + ": invalid YAML: " + e.msg);
  }
  if (!root.IsMap()) throw fail(root, "expected a map with keys family and decisions");

  // Keys of a map, each once, each from the allowed list.
  auto check_keys = [&](const YAML::Node& map, std::initializer_list<const char*> allowed, const std::string& where) {
    std::set<std::string> seen;
    std::string expected;
    for (const char* a : allowed) expected += std::string(expected.empty() ? "" : ", ") + a;
    for (auto it = map.begin(); it != map.end(); ++it) {
      const std::string key = it->first.Scalar();
      if (std::find_if(allowed.begin(), allowed.end(), [&](const char* a) { return key == a; }) == allowed.end())
        throw fail(it->first, "unknown key '" + key + "'" + where + " (expected " + expected + ")");
      if (!seen.insert(key).second) throw fail(it->first, "duplicate key '" + key + "'" + where);
    }
  };
  check_keys(root, {"family", "decisions", "constraints", "budgets"}, "");

  const YAML::Node family = root["family"];
  if (!family) throw fail(root, "missing key 'family'");
  if (!family.IsScalar() || family.Scalar().empty()) throw fail(family, "family must be a name, e.g. cnn");
  sp.family_ = family.Scalar();

  const YAML::Node decisions = root["decisions"];
  if (!decisions) throw fail(root, "missing key 'decisions'");
  if (!decisions.IsMap() || decisions.size() == 0)
    throw fail(decisions, "decisions must be a non-empty map of name → decision");
  std::map<std::string, std::size_t> index;
  for (auto it = decisions.begin(); it != decisions.end(); ++it) {
    const YAML::Node key = it->first;
    const YAML::Node value = it->second;
    Decision d;
    d.name = key.Scalar();
    if (!valid_name(d.name))
      throw fail(key,
                 "decision name '" + d.name + "' must be letters, digits, '_', '-' or '.', starting with a letter");
    if (index.count(d.name)) throw fail(key, "duplicate decision '" + d.name + "'");
    const std::string shape = "decision '" + d.name + "': expected flag, {one_of: [...]} or {ordinal: [...]}";
    if (value.IsScalar()) {
      if (value.Scalar() != "flag") throw fail(value, shape + ", got '" + value.Scalar() + "'");
      d.kind = DecisionKind::flag;
      d.values = {"false", "true"};
      d.bits = 1;
    } else if (value.IsMap()) {
      check_keys(value, {"one_of", "ordinal", "when"}, " in decision '" + d.name + "'");
      const YAML::Node one_of = value["one_of"], ordinal = value["ordinal"], when = value["when"];
      if (bool(one_of) == bool(ordinal)) throw fail(value, shape);
      const YAML::Node list = one_of ? one_of : ordinal;
      d.kind = one_of ? DecisionKind::one_of : DecisionKind::ordinal;
      if (!list.IsSequence() || list.size() < 2)
        throw fail(list, "decision '" + d.name + "': needs a list of at least two values");
      for (const YAML::Node& v : list) {
        if (!v.IsScalar() || v.Scalar().empty())
          throw fail(v, "decision '" + d.name + "': values must be plain scalars");
        if (std::find(d.values.begin(), d.values.end(), v.Scalar()) != d.values.end())
          throw fail(v, "decision '" + d.name + "': duplicate value '" + v.Scalar() + "'");
        if (ordinal) {
          const auto n = parse_number(v.Scalar());
          if (!n) throw fail(v, "ordinal '" + d.name + "': value '" + v.Scalar() + "' is not a number");
          if (!d.values.empty() && !(*n > *parse_number(d.values.back())))
            throw fail(v,
                       "ordinal '" + d.name + "': values must increase, " + v.Scalar() + " follows " + d.values.back());
        }
        d.values.push_back(v.Scalar());
      }
      d.bits = static_cast<uint32_t>(one_of ? d.values.size() : d.values.size() - 1);
      if (when) {
        if (!one_of) throw fail(when, "decision '" + d.name + "': 'when' is only allowed on a one_of");
        const std::string gate = when.IsScalar() ? when.Scalar() : "";
        auto g = index.find(gate);
        if (g == index.end() || sp.decisions_[g->second].kind != DecisionKind::flag)
          throw fail(when, "decision '" + d.name + "': when '" + gate + "' must name a flag declared before it");
        d.when = gate;
      }
    } else {
      throw fail(value.IsNull() ? key : value, shape);
    }
    d.first_bit = static_cast<uint32_t>(sp.bits_);
    sp.bits_ += d.bits;
    index[d.name] = sp.decisions_.size();
    sp.decisions_.push_back(std::move(d));
  }

  if (const YAML::Node constraints = root["constraints"]) {
    if (!constraints.IsSequence())
      throw fail(constraints, "constraints must be a list of {requires: [a, b]} or {excludes: [a, b]}");
    for (const YAML::Node& c : constraints) {
      const std::string shape = "a constraint is {requires: [a, b]} or {excludes: [a, b]}";
      if (!c.IsMap() || c.size() != 1) throw fail(c, shape);
      const std::string kind = c.begin()->first.Scalar();
      const YAML::Node pair = c.begin()->second;
      if (kind != "requires" && kind != "excludes") throw fail(c, "unknown constraint '" + kind + "' (" + shape + ")");
      if (!pair.IsSequence() || pair.size() != 2) throw fail(c, kind + " needs a list of two literals");
      std::string lit_text[2];
      for (int k = 0; k < 2; ++k) {
        const YAML::Node l = pair[k];
        if (!l.IsScalar()) throw fail(c, kind + ": literals must be plain text such as kernel=5");
        if (l.Tag().size() > 1 && l.Tag()[0] == '!')  // YAML reads a bare !name as a tag
          throw fail(c,
                     "write the negation in quotes, \"" + l.Tag() + "\" (YAML reads a bare " + l.Tag() + " as a tag)");
        lit_text[k] = trim(l.Scalar());
      }
      Rule r;
      r.requires_ = kind == "requires";
      r.text = kind + " " + lit_text[0] + ", " + lit_text[1];
      r.line = c.Mark().line + 1;
      auto literal = [&](const std::string& t) -> Literal {
        auto bad = [&](const std::string& what) { return fail(c, "constraint '" + r.text + "': " + what); };
        if (!t.empty() && t[0] == '!') {
          const std::string name = trim(t.substr(1));
          auto d = index.find(name);
          if (d == index.end()) throw bad("unknown decision '" + name + "'");
          if (sp.decisions_[d->second].kind != DecisionKind::flag) throw bad("'!" + name + "' needs a flag");
          return {sp.decisions_[d->second].first_bit, true};
        }
        const std::size_t at = t.find_first_of("<>=");
        const std::string name = trim(t.substr(0, at));
        auto di = index.find(name);
        if (di == index.end()) throw bad("unknown decision '" + name + "'");
        const Decision& d = sp.decisions_[di->second];
        if (at == std::string::npos) {
          if (d.kind != DecisionKind::flag) throw bad("'" + name + "' is not a flag: write " + name + "=value");
          return {d.first_bit, false};
        }
        std::string op = t.substr(at, 1);
        if (op != "=" && at + 1 < t.size() && t[at + 1] == '=') op += "=";
        const std::string value = trim(t.substr(at + op.size()));
        if (d.kind == DecisionKind::flag) {
          if (op != "=" || (value != "true" && value != "false"))
            throw bad("flag '" + name + "' takes =true or =false");
          return {d.first_bit, value == "false"};
        }
        auto vi = std::find(d.values.begin(), d.values.end(), value);
        if (vi == d.values.end() && d.kind == DecisionKind::ordinal) {  // 0.10 names the value 0.1
          const auto n = parse_number(value);
          vi = std::find_if(d.values.begin(), d.values.end(),
                            [&](const std::string& v) { return n && *parse_number(v) == *n; });
        }
        if (vi == d.values.end()) throw bad("'" + name + "' has no value '" + value + "'");
        const uint32_t i = static_cast<uint32_t>(vi - d.values.begin()), last = d.bits;  // last index = k − 1
        if (d.kind == DecisionKind::one_of) {
          if (op != "=") throw bad("one_of '" + name + "' takes " + name + "=value");
          return {d.first_bit + i, false};
        }
        // Thermometer bit j is "index > j": >= v_i is bit i−1, > v_i bit i, <= v_i ¬bit i, < v_i ¬bit i−1.
        const std::string range = d.values.front() + " .. " + d.values.back();
        if (op == "=") throw bad("ordinal '" + name + "' takes >=, >, <= or <, not =");
        if (op == ">=" || op == "<") {
          if (i == 0)
            throw bad("'" + t + "' is always " + (op == ">=" ? "true" : "false") + " (" + name + " ranges " + range +
                      ")");
          return {d.first_bit + i - 1, op == "<"};
        }
        if (i == last)
          throw bad("'" + t + "' is always " + (op == "<=" ? "true" : "false") + " (" + name + " ranges " + range +
                    ")");
        return {d.first_bit + i, op == "<="};
      };
      r.a = literal(lit_text[0]);
      r.b = literal(lit_text[1]);
      sp.rules_.push_back(std::move(r));
    }
  }

  if (const YAML::Node budgets = root["budgets"]) {
    if (!budgets.IsMap()) throw fail(budgets, "budgets must be a map of metric → maximum, e.g. {params: 200000}");
    for (auto it = budgets.begin(); it != budgets.end(); ++it) {
      const std::string metric = it->first.Scalar();
      const auto v = it->second.IsScalar() ? parse_number(it->second.Scalar()) : std::nullopt;
      if (!v || *v <= 0) throw fail(it->first, "budget '" + metric + "' must be a positive number");
      if (sp.budgets_.count(metric)) throw fail(it->first, "duplicate budget '" + metric + "'");
      sp.budgets_[metric] = *v;
    }
  }
  sp.build_penalty({});
  return sp;
}

// --- rules, penalty ---------------------------------------------------------------------------------

bool SearchSpace::holds(const Rule& r, const Bits& x) const {
  const bool a = x[r.a.bit] != r.a.negated, b = x[r.b.bit] != r.b.negated;
  return r.requires_ ? (!a || b) : !(a && b);
}

const SearchSpace::Rule* SearchSpace::broken_rule(const Bits& x) const {
  for (const Rule& r : rules_)
    if (!holds(r, x)) return &r;
  return nullptr;
}

void SearchSpace::build_penalty(const std::vector<Cut>& cuts) {
  Terms t{std::vector<double>(bits_, 0.0), {}, 0.0};
  const Layout lay(decisions_);
  for (std::size_t d = 0; d < decisions_.size(); ++d) {
    const Decision& dec = decisions_[d];
    const uint32_t b = dec.first_bit;
    if (dec.kind == DecisionKind::one_of) {
      // (Σx − g)² with g = 1 or the gate bit: 0 on a valid choice, ≥ 1 otherwise.
      for (uint32_t i = 0; i < dec.bits; ++i) {
        t.linear[b + i] += 1;
        for (uint32_t j = i + 1; j < dec.bits; ++j) t.quadratic.push_back({b + i, b + j, 2});
      }
      if (lay.gate_bit[d] < 0) {
        for (uint32_t i = 0; i < dec.bits; ++i) t.linear[b + i] -= 2;
        t.offset += 1;
      } else {
        const uint32_t g = static_cast<uint32_t>(lay.gate_bit[d]);
        for (uint32_t i = 0; i < dec.bits; ++i) t.quadratic.push_back({g, b + i, -2});
        t.linear[g] += 1;
      }
    } else if (dec.kind == DecisionKind::ordinal) {
      for (uint32_t j = 0; j + 1 < dec.bits; ++j)  // x_{j+1}(1 − x_j)
        t.add({0, 1, b + j + 1}, {1, -1, b + j});
    }
  }
  auto affine = [](const Literal& l) { return l.negated ? Affine{1, -1, l.bit} : Affine{0, 1, l.bit}; };
  for (const Rule& r : rules_) {
    const Affine a = affine(r.a), b = affine(r.b);
    if (r.requires_)
      t.add(a, {1 - b.c, -b.s, b.bit});  // a(1 − b)
    else
      t.add(a, b);
  }
  for (const Cut& c : cuts) {
    if (c.pair)
      t.add(affine(c.a), affine(c.b));
    else
      t.add(affine(c.a), {1, 0, c.a.bit});
  }
  penalty_ = Qubo(bits_, std::move(t.linear), t.quadratic, t.offset);
}

Qubo SearchSpace::with_penalty(const Qubo& objective) const {
  if (objective.size() != bits_)
    throw Error("objective has " + std::to_string(objective.size()) + " variables, the space " + std::to_string(bits_) +
                " bits");
  double p = 1;
  for (double a : objective.linear()) p += std::fabs(a);
  for (const Coupling& c : objective.quadratic()) p += std::fabs(c.value);
  std::vector<double> linear = objective.linear();
  for (std::size_t i = 0; i < bits_; ++i) linear[i] += p * penalty_.linear()[i];
  std::vector<Coupling> quadratic = objective.quadratic();
  for (const Coupling& c : penalty_.quadratic()) quadratic.push_back({c.i, c.j, p * c.value});
  return Qubo(bits_, std::move(linear), quadratic, objective.offset() + p * penalty_.offset());
}

// --- budgets ----------------------------------------------------------------------------------------

void SearchSpace::forget_enumeration() {
  // Cuts computed for other budgets or another cost model may cut designs that are now feasible.
  feasible_.clear();
  enumerated_ = false;
  build_penalty({});
}

void SearchSpace::set_budget(const std::string& metric, double max) {
  if (metric.empty() || !std::isfinite(max) || max <= 0)
    throw Error("budget '" + metric + "' must be a positive number, got " + fmt(max));
  budgets_[metric] = max;
  forget_enumeration();
}

void SearchSpace::set_cost_model(CostModel model) {
  cost_ = std::move(model);
  forget_enumeration();
}

std::optional<std::string> SearchSpace::over_budget(const Design& d) const {
  if (budgets_.empty()) return std::nullopt;
  if (!cost_) throw Error(source_ + ": budgets need a cost model for family '" + family_ + "' (none set)");
  const auto cost = costs_of(cost_, d, family_);
  for (const auto& [metric, max] : budgets_) {
    auto c = cost.find(metric);
    if (c == cost.end())
      throw Error("the cost model of family '" + family_ + "' reports no metric '" + metric + "' (budget)");
    if (c->second > max) return "budget " + metric + ": " + fmt(c->second) + " > " + fmt(max);
  }
  return std::nullopt;
}

// --- decode, encode ---------------------------------------------------------------------------------

Design SearchSpace::design_of(const Bits& x) const {
  Design d;
  d.values.reserve(decisions_.size());
  for (const Decision& dec : decisions_) {
    const uint32_t b = dec.first_bit;
    if (dec.kind == DecisionKind::flag) {
      d.values.emplace_back(dec.name, x[b] ? "true" : "false");
    } else if (dec.kind == DecisionKind::one_of) {
      for (uint32_t i = 0; i < dec.bits; ++i)
        if (x[b + i]) d.values.emplace_back(dec.name, dec.values[i]);
    } else {
      uint32_t index = 0;
      while (index < dec.bits && x[b + index]) ++index;
      d.values.emplace_back(dec.name, dec.values[index]);
    }
  }
  return d;
}

std::optional<Design> SearchSpace::decode(const Bits& x, std::string* why) const {
  auto no = [&](const std::string& reason) -> std::optional<Design> {
    if (why) *why = reason;
    return std::nullopt;
  };
  if (x.size() != bits_) return no("expected " + std::to_string(bits_) + " bits, got " + std::to_string(x.size()));
  const Layout lay(decisions_);
  for (std::size_t d = 0; d < decisions_.size(); ++d) {
    const Decision& dec = decisions_[d];
    const uint32_t b = dec.first_bit;
    if (dec.kind == DecisionKind::one_of) {
      uint32_t set = 0;
      for (uint32_t i = 0; i < dec.bits; ++i) set += x[b + i] != 0;
      const bool on = lay.gate_bit[d] < 0 || x[lay.gate_bit[d]];
      if (on && set != 1)
        return no(dec.name + ": " + std::to_string(set) + " of " + std::to_string(dec.bits) + " one-of bits set");
      if (!on && set != 0)
        return no(dec.name + ": " + std::to_string(set) + " of " + std::to_string(dec.bits) +
                  " one-of bits set while '" + dec.when + "' is off");
    } else if (dec.kind == DecisionKind::ordinal) {
      for (uint32_t j = 0; j + 1 < dec.bits; ++j)
        if (x[b + j + 1] && !x[b + j])
          return no(dec.name + ": bit '" + bit_name(b + j + 1) + "' set without '" + bit_name(b + j) + "'");
    }
  }
  if (const Rule* r = broken_rule(x)) return no("constraint '" + r->text + "' broken");
  Design design = design_of(x);
  if (auto over = over_budget(design)) return no(*over);
  return design;
}

Bits SearchSpace::encode(const Design& design) const {
  for (const auto& value : design.values) {
    const std::string& name = value.first;  // (clang 14, which the fuzzers use, cannot capture a structured binding)
    if (std::none_of(decisions_.begin(), decisions_.end(), [&](const Decision& d) { return d.name == name; }))
      throw Error("design: unknown decision '" + name + "'");
  }
  Bits x(bits_, 0);
  const Layout lay(decisions_);
  for (std::size_t d = 0; d < decisions_.size(); ++d) {
    const Decision& dec = decisions_[d];
    const std::string* v = design.find(dec.name);
    const uint32_t b = dec.first_bit;
    if (dec.kind == DecisionKind::flag) {
      if (v && *v != "true" && *v != "false")
        throw Error("design: flag '" + dec.name + "' must be true or false, got '" + *v + "'");
      x[b] = v && *v == "true";
      continue;
    }
    if (dec.kind == DecisionKind::one_of && lay.gate_bit[d] >= 0 && !x[lay.gate_bit[d]]) {
      if (v) throw Error("design: '" + dec.name + "' = '" + *v + "' is set but '" + dec.when + "' is off");
      continue;
    }
    if (!v) throw Error("design: no value for '" + dec.name + "'");
    auto it = std::find(dec.values.begin(), dec.values.end(), *v);
    if (it == dec.values.end() && dec.kind == DecisionKind::ordinal) {
      const auto n = parse_number(*v);
      it = std::find_if(dec.values.begin(), dec.values.end(),
                        [&](const std::string& s) { return n && *parse_number(s) == *n; });
    }
    if (it == dec.values.end()) throw Error("design: '" + dec.name + "' has no value '" + *v + "'");
    const uint32_t i = static_cast<uint32_t>(it - dec.values.begin());
    if (dec.kind == DecisionKind::one_of)
      x[b + i] = 1;
    else
      std::fill(x.begin() + b, x.begin() + b + i, 1);
  }
  return x;
}

namespace {

std::vector<std::vector<uint32_t>> groups_of(const std::vector<Decision>& decisions, bool gated_too) {
  std::vector<std::vector<uint32_t>> groups;
  for (const auto& d : decisions)
    if (d.kind == DecisionKind::one_of && (gated_too || d.when.empty())) {
      std::vector<uint32_t> g(d.bits);
      for (uint32_t b = 0; b < d.bits; ++b) g[b] = d.first_bit + b;
      groups.push_back(std::move(g));
    }
  return groups;
}

}  // namespace

std::vector<std::vector<uint32_t>> SearchSpace::one_of_groups() const { return groups_of(decisions_, true); }

std::vector<std::vector<uint32_t>> SearchSpace::one_hot_groups() const { return groups_of(decisions_, false); }

std::string SearchSpace::bit_name(std::size_t bit) const {
  for (const Decision& d : decisions_) {
    if (bit < d.first_bit || bit >= d.first_bit + d.bits) continue;
    const std::size_t j = bit - d.first_bit;
    if (d.kind == DecisionKind::flag) return d.name;
    if (d.kind == DecisionKind::one_of) return d.name + "=" + d.values[j];
    return d.name + ">=" + d.values[j + 1];
  }
  throw Error("bit " + std::to_string(bit) + " is outside the space's " + std::to_string(bits_) + " bits");
}

// --- feasible set -----------------------------------------------------------------------------------

bool SearchSpace::satisfiable(const std::vector<const Rule*>& rules) const {
  Bits x(bits_, 0);
  bool found = false;
  walk(decisions_, Layout(decisions_), 0, x, [&](const Bits& y) {
    found = std::all_of(rules.begin(), rules.end(), [&](const Rule* r) { return holds(*r, y); });
    return !found;
  });
  return found;
}

void SearchSpace::finalize() {
  feasible_.clear();
  enumerated_ = false;
  if (!budgets_.empty() && !cost_)
    throw Error(source_ + ": budgets need a cost model for family '" + family_ + "' (none set)");
  const std::string empty = source_ + ": empty feasible set: ";
  const Layout lay(decisions_);
  const double count = encodings(decisions_);

  if (count > kEnumerateLimit) {
    // Too many to enumerate: look for one feasible design at random; decode() stays exact.
    build_penalty({});
    Rng rng(0x5eedu);
    for (int t = 0; t < kRandomTries; ++t) {
      const Bits x = random_encoding(decisions_, lay, rng);
      if (!broken_rule(x) && !over_budget(design_of(x))) return;
    }
    throw Error(empty + "no design satisfies the constraints and budgets in " + std::to_string(kRandomTries) +
                " random draws (about 2^" + std::to_string(int(std::log2(count))) +
                " encodings, too many to enumerate)");
  }

  // One pass over every encoding: keep the designs within budget, and note which literals (bit b at
  // value v, id 2b + v) and literal pairs occur in designs that obey the rules, and in those within
  // budget. Pairs are rows of bit masks: row l holds every literal seen together with l.
  const std::size_t nl = 2 * bits_, words = (nl + 63) / 64;
  const bool cuts_wanted = !budgets_.empty();
  std::vector<uint64_t> seen(cuts_wanted ? nl * words : 0), ok(seen.size()), mask(words);
  std::map<std::string, double> smallest;
  uint64_t ruled = 0;
  Bits x(bits_, 0);
  walk(decisions_, lay, 0, x, [&](const Bits& y) {
    if (broken_rule(y)) return true;
    ++ruled;
    bool within = true;
    if (cuts_wanted) {
      const auto cost = costs_of(cost_, design_of(y), family_);
      for (const auto& [metric, max] : budgets_) {
        auto c = cost.find(metric);
        if (c == cost.end())
          throw Error("the cost model of family '" + family_ + "' reports no metric '" + metric + "' (budget)");
        auto [s, fresh] = smallest.try_emplace(metric, c->second);
        if (!fresh) s->second = std::min(s->second, c->second);
        within = within && c->second <= max;
      }
      std::fill(mask.begin(), mask.end(), 0);
      for (std::size_t b = 0; b < bits_; ++b) {
        const std::size_t l = 2 * b + y[b];
        mask[l / 64] |= uint64_t{1} << (l % 64);
      }
      for (std::size_t b = 0; b < bits_; ++b) {
        const std::size_t l = 2 * b + y[b];
        for (std::size_t w = 0; w < words; ++w) {
          seen[l * words + w] |= mask[w];
          if (within) ok[l * words + w] |= mask[w];
        }
      }
    }
    if (within) feasible_.insert(feasible_.end(), y.begin(), y.end());
    return true;
  });

  if (ruled == 0) {
    // Name a smallest set of constraints that cannot hold together: drop each one that is not needed.
    std::vector<const Rule*> culprits;
    for (const Rule& r : rules_) culprits.push_back(&r);
    for (std::size_t i = culprits.size(); i-- > 0;) {
      std::vector<const Rule*> without = culprits;
      without.erase(without.begin() + static_cast<std::ptrdiff_t>(i));
      if (!satisfiable(without)) culprits = std::move(without);
    }
    std::string names;
    for (std::size_t i = 0; i < culprits.size(); ++i)
      names += std::string(i == 0                     ? ""
                           : i + 1 == culprits.size() ? " and "
                                                      : ", ") +
               "'" + culprits[i]->text + "' (line " + std::to_string(culprits[i]->line) + ")";
    throw Error(empty + (culprits.size() == 1 ? "constraint " + names + " cannot hold"
                                              : "constraints " + names + " cannot all hold together"));
  }
  if (feasible_.empty()) {
    for (const auto& [metric, max] : budgets_)
      if (smallest[metric] > max)
        throw Error(empty + "no design meets budget " + metric + " <= " + fmt(max) +
                    " (smallest: " + fmt(smallest[metric]) + ")");
    std::string all;
    for (const auto& [metric, max] : budgets_) all += (all.empty() ? "" : ", ") + metric + " <= " + fmt(max);
    throw Error(empty + "no design meets the budgets " + all + " together");
  }

  std::vector<Cut> cuts;
  if (cuts_wanted) {
    auto has = [&](const std::vector<uint64_t>& rows, std::size_t p, std::size_t q) {
      return (rows[p * words + q / 64] >> (q % 64)) & 1;
    };
    auto literal = [](std::size_t id) { return Literal{static_cast<uint32_t>(id / 2), id % 2 == 0}; };
    // Singles: occurring in a design that obeys the rules, but in none within budget. Pairs: the same,
    // from different decisions, neither already cut alone.
    for (std::size_t l = 0; l < nl; ++l)
      if (has(seen, l, l) && !has(ok, l, l)) cuts.push_back({literal(l), literal(l), false});
    for (std::size_t p = 0; p < nl; ++p)
      for (std::size_t q = p + 1; q < nl; ++q)
        if (lay.decision_of[p / 2] != lay.decision_of[q / 2] && has(seen, p, q) && !has(ok, p, q) && has(ok, p, p) &&
            has(ok, q, q))
          cuts.push_back({literal(p), literal(q), true});
  }
  build_penalty(cuts);
  enumerated_ = true;
}

Bits SearchSpace::random_valid(Rng& rng) const {
  if (enumerated_) {
    const std::size_t i = rng.below(feasible_.size() / bits_);
    return Bits(feasible_.begin() + i * bits_, feasible_.begin() + (i + 1) * bits_);
  }
  const Layout lay(decisions_);
  for (int t = 0; t < kRandomTries; ++t) {
    Bits x = random_encoding(decisions_, lay, rng);
    if (!broken_rule(x) && !over_budget(design_of(x))) return x;
  }
  throw Error(source_ + ": no valid design found in " + std::to_string(kRandomTries) + " random draws");
}

std::optional<uint64_t> SearchSpace::count_feasible(uint64_t limit) const {
  if (encodings(decisions_) > double(limit)) return std::nullopt;
  if (enumerated_) return feasible_.size() / bits_;
  uint64_t n = 0;
  Bits x(bits_, 0);
  walk(decisions_, Layout(decisions_), 0, x, [&](const Bits& y) {
    n += !broken_rule(y) && !over_budget(design_of(y));
    return true;
  });
  return n;
}

}  // namespace gng
