#include "lifecycle/config.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/address.h"
#include "core/error.h"
#include "core/yaml.h"
#include "data/dataset.h"
#include "solve/sampler.h"

namespace gng {

namespace {

using yaml::check_keys;
using yaml::get;
using yaml::load;
using yaml::number;
using yaml::slurp;
using yaml::where;

const std::set<std::string> kMetrics{"accuracy", "robustness", "latency_ms", "batch_latency_ms", "energy_mj",
                                     "params", "flops", "loss"};

}  // namespace

Policy Policy::from_yaml(const std::string& text, const std::string& source) {
  Policy p;
  const YAML::Node root = load(text, source);
  check_keys(root, source, "the policy", {"objectives", "budgets", "safety", "approval", "telemetry", "qkd"});
  if (const auto o = root["objectives"]) {
    check_keys(o, source, "objectives", kMetrics);
    p.objectives.clear();
    for (const auto& kv : o) {
      const auto name = kv.first.as<std::string>();
      p.objectives[name] = number(kv.second, source, name, -1e9, 1e9);
    }
    if (p.objectives.empty()) throw Error(where(source, o) + ": objectives: name at least one metric");
  }
  if (const auto b = root["budgets"]) {
    check_keys(b, source, "budgets", {"cycles", "candidates", "wall_clock_s", "max_params", "max_flops"});
    if (b["cycles"]) p.cycles = static_cast<int>(number(b["cycles"], source, "cycles", 1, 1e6));
    if (b["candidates"]) p.candidates = static_cast<int>(number(b["candidates"], source, "candidates", 1, 1e7));
    if (b["wall_clock_s"]) p.wall_clock_s = number(b["wall_clock_s"], source, "wall_clock_s", 1, 1e9);
    if (b["max_params"]) p.max_cost["params"] = number(b["max_params"], source, "max_params", 1, 1e15);
    if (b["max_flops"]) p.max_cost["flops"] = number(b["max_flops"], source, "max_flops", 1, 1e18);
  }
  if (const auto s = root["safety"]) {
    check_keys(s, source, "safety", {"min_accuracy", "min_robustness", "max_latency_ms"});
    if (s["min_accuracy"]) p.min_accuracy = number(s["min_accuracy"], source, "min_accuracy", 0, 1);
    if (s["min_robustness"]) p.min_robustness = number(s["min_robustness"], source, "min_robustness", 0, 1);
    if (s["max_latency_ms"]) p.max_latency_ms = number(s["max_latency_ms"], source, "max_latency_ms", 0, 1e9);
  }
  if (const auto a = root["approval"]) {
    const auto v = get<std::string>(a, source, "approval");
    if (v != "auto" && v != "manual") throw Error(where(source, a) + ": approval must be 'auto' or 'manual', got '" + v + "'");
    p.manual_approval = v == "manual";
  }
  if (const auto t = root["telemetry"]) {
    check_keys(t, source, "telemetry", {"drift_psi", "boost", "max_boost"});
    if (t["drift_psi"]) p.drift_psi = number(t["drift_psi"], source, "drift_psi", 0, 100);
    if (t["boost"]) p.boost = number(t["boost"], source, "boost", 1, 100);
    if (t["max_boost"]) p.max_boost = number(t["max_boost"], source, "max_boost", 1, 1000);
  }
  if (const auto q = root["qkd"]) {
    p.qkd = get<std::string>(q, source, "qkd");
    if (p.qkd != "required" && p.qkd != "optional" && p.qkd != "off")
      throw Error(where(source, q) + ": qkd must be required, optional or off, got '" + p.qkd + "'");
  }
  return p;
}

std::string Policy::react(const Telemetry& t, const Policy& base) {
  std::ostringstream why;
  auto raise = [&](const char* metric, double start, const std::string& reason) {
    const auto b = base.objectives.find(metric);
    const double w0 = b != base.objectives.end() && b->second != 0 ? b->second : start;
    const auto it = objectives.find(metric);
    const double was = it == objectives.end() ? 0 : it->second;
    const double now = was != 0 ? was : w0;
    const double cap = w0 * max_boost;
    const double next = std::abs(now * boost) > std::abs(cap) ? cap : now * boost;
    if (next == was) return;
    why << (why.tellp() > 0 ? "; " : "") << reason << ": weight of " << metric << " " << was << " → " << next;
    objectives[metric] = next;
  };
  if (t.drift_psi > drift_psi)
    raise("robustness", 0.1, "input drift PSI " + std::to_string(t.drift_psi).substr(0, 5) + " > " + std::to_string(drift_psi).substr(0, 4));
  if (max_latency_ms > 0 && t.latency_p99_ms > max_latency_ms)
    raise("latency_ms", -0.001, "p99 latency " + std::to_string(t.latency_p99_ms).substr(0, 6) + " ms > " +
                                    std::to_string(max_latency_ms).substr(0, 6) + " ms");
  if (min_accuracy > 0 && t.feedback_accuracy >= 0 && t.feedback_accuracy < min_accuracy)
    raise("accuracy", 1.0, "feedback accuracy " + std::to_string(t.feedback_accuracy).substr(0, 5) + " < " +
                               std::to_string(min_accuracy).substr(0, 5));
  return why.str();
}

std::string Policy::safety_violation(const std::map<std::string, double>& m) const {
  auto value = [&](const char* k) {
    const auto it = m.find(k);
    return it == m.end() ? std::nan("") : it->second;
  };
  std::ostringstream s;
  s.precision(4);
  if (min_accuracy > 0 && !(value("accuracy") >= min_accuracy)) {
    s << "accuracy " << value("accuracy") << " < " << min_accuracy;
  } else if (min_robustness > 0 && !(value("robustness") >= min_robustness)) {
    s << "robustness " << value("robustness") << " < " << min_robustness;
  } else if (max_latency_ms > 0 && !(value("latency_ms") <= max_latency_ms)) {
    s << "latency " << value("latency_ms") << " ms > " << max_latency_ms << " ms";
  }
  return s.str();
}

double Policy::score(const std::map<std::string, double>& m) const {
  double s = 0;
  for (const auto& [name, w] : objectives) {
    const auto it = m.find(name);
    if (it == m.end() || !std::isfinite(it->second)) return -1e9;  // unmeasurable: worst
    s += w * it->second;
  }
  return s;
}

RunConfig RunConfig::from_yaml(const std::string& text, const std::string& source, const std::string& space_text,
                               const std::string& policy_text) {
  RunConfig c;
  c.text = text;
  c.space_text = space_text;
  c.policy_text = policy_text;
  const YAML::Node root = load(text, source);
  check_keys(root, source, "the run file", {"name", "space", "policy", "data", "search", "fidelity", "workers", "evaluation", "nodes", "federation", "pki"});
  if (root["name"]) {
    c.name = get<std::string>(root["name"], source, "name");
    for (char ch : c.name)
      if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_')
        throw Error(where(source, root["name"]) + ": name may hold only letters, digits, '-' and '_'");
  }
  if (!root["space"]) throw Error(source + ": missing 'space' (a search-space file or an inline mapping)");
  if (!root["policy"]) throw Error(source + ": missing 'policy' (a policy file or an inline mapping)");
  const auto d = root["data"];
  c.data_dir = kFashionMnistDir;
  if (d) {
    check_keys(d, source, "data", {"dir", "validation", "train_limit", "test_limit"});
    if (d["dir"]) c.data_dir = get<std::string>(d["dir"], source, "dir");
    if (d["validation"]) c.validation = static_cast<std::size_t>(number(d["validation"], source, "validation", 1, 1e9));
    if (d["train_limit"]) c.train_limit = static_cast<std::size_t>(number(d["train_limit"], source, "train_limit", 0, 1e9));
    if (d["test_limit"]) c.test_limit = static_cast<std::size_t>(number(d["test_limit"], source, "test_limit", 0, 1e9));
  }
  if (const auto s = root["search"]) {
    check_keys(s, source, "search", {"sampler", "seed", "per_cycle"});
    if (s["sampler"]) {
      c.sampler = get<std::string>(s["sampler"], source, "sampler");
      // An unknown name stops the run here, not when the surrogate is first minimised.
      const auto names = sampler_names();
      if (std::find(names.begin(), names.end(), c.sampler) == names.end())
        throw Error(where(source, s["sampler"]) + ": search.sampler must be exact, anneal, tabu, qaoa or vqe, got '" + c.sampler + "'");
    }
    if (s["seed"]) c.seed = get<uint64_t>(s["seed"], source, "seed");
    if (s["per_cycle"]) c.per_cycle = static_cast<int>(number(s["per_cycle"], source, "per_cycle", 1, 1e6));
  }
  if (const auto f = root["fidelity"]) {
    check_keys(f, source, "fidelity", {"rungs", "eta", "batch", "eval_samples"});
    if (f["eval_samples"]) c.eval_samples = static_cast<std::size_t>(number(f["eval_samples"], source, "eval_samples", 0, 1e9));
    if (f["eta"]) c.eta = static_cast<int>(number(f["eta"], source, "eta", 2, 100));
    if (f["batch"]) c.batch = static_cast<int>(number(f["batch"], source, "batch", 1, 65536));
    if (const auto r = f["rungs"]) {
      if (!r.IsSequence() || r.size() == 0) throw Error(where(source, r) + ": rungs must be a non-empty list");
      c.rungs.clear();
      for (const auto& e : r) {
        check_keys(e, source, "a rung", {"epochs", "samples", "augment", "keep"});
        Rung g;
        if (!e["epochs"]) throw Error(where(source, e) + ": a rung needs 'epochs'");
        g.epochs = number(e["epochs"], source, "epochs", 1e-3, 1e4);
        if (e["samples"]) g.samples = static_cast<std::size_t>(number(e["samples"], source, "samples", 0, 1e9));
        if (e["augment"]) g.augment = get<bool>(e["augment"], source, "augment");
        if (e["keep"]) {
          if (c.rungs.empty()) throw Error(where(source, e["keep"]) + ": the first rung trains every candidate: no 'keep'");
          g.keep = static_cast<int>(number(e["keep"], source, "keep", 1, 1e6));
        }
        if (!c.rungs.empty() && g.epochs * (g.samples ? g.samples : 1e18) < c.rungs.back().epochs * (c.rungs.back().samples ? c.rungs.back().samples : 1e18))
          throw Error(where(source, e) + ": each rung must train at least as much as the one before");
        c.rungs.push_back(g);
      }
    }
  }
  if (root["workers"]) c.workers = static_cast<int>(number(root["workers"], source, "workers", 1, 256));
  if (const auto n = root["nodes"]) {
    if (!n.IsMap()) throw Error(where(source, n) + ": nodes must be a mapping, e.g. {local: 3} or {min: 2, wait: 10m}");
    if (n["count"]) throw Error(where(source, n["count"]) + ": nodes.count is now nodes.local (local node processes)");
    check_keys(n, source, "nodes", {"local", "min", "wait", "listen", "partition", "alpha", "link_km", "eavesdropper", "kme"});
    if (n["local"]) c.nodes = static_cast<int>(number(n["local"], source, "nodes.local", 0, 64));
    c.min_nodes = n["min"] ? static_cast<int>(number(n["min"], source, "nodes.min", 1, 10000)) : c.nodes;
    if (n["wait"]) c.wait_s = yaml::seconds(n["wait"], source, "nodes.wait", 1, 7 * 86400);
    if (n["listen"]) {
      c.listen = parse_address(get<std::string>(n["listen"], source, "nodes.listen"), where(source, n["listen"]) + ": nodes.listen");
    }
    if (n["partition"]) {
      c.partition = get<std::string>(n["partition"], source, "nodes.partition");
      if (c.partition != "iid" && c.partition != "dirichlet")
        throw Error(where(source, n["partition"]) + ": nodes.partition must be iid or dirichlet, got '" + c.partition + "'");
    }
    if (n["alpha"]) c.alpha = number(n["alpha"], source, "nodes.alpha", 1e-3, 1e6);
    if (n["link_km"]) c.link_km = number(n["link_km"], source, "nodes.link_km", 0, 1000);
    if (n["eavesdropper"]) c.eavesdropper = number(n["eavesdropper"], source, "nodes.eavesdropper", 0, 1);
    if (n["kme"]) {
      c.kme = parse_address(get<std::string>(n["kme"], source, "nodes.kme"), where(source, n["kme"]) + ": nodes.kme");
      if (c.nodes > 0)
        throw Error(where(source, n["kme"]) + ": nodes.kme names the orchestrator site's KME of your QKD network, whose sites "
                    "bring their own; local nodes get KMEs from the run instead: drop one of nodes.kme and nodes.local");
      for (const char* k : {"link_km", "eavesdropper"})
        if (n[k]) throw Error(where(source, n[k]) + ": nodes." + k + " shapes the run's own KMEs; with nodes.kme your QKD network's topology does");
    }
  }
  if (root["pki"]) {
    c.pki = get<std::string>(root["pki"], source, "pki");
    if (c.pki.empty()) throw Error(where(source, root["pki"]) + ": pki names no directory");
    if (c.sites() == 0) throw Error(where(source, root["pki"]) + ": pki is the sites' CA, and the run has no nodes");
  }
  if (const auto f = root["federation"]) {
    check_keys(f, source, "federation", {"rounds", "epochs", "samples", "rule", "mu", "quorum", "trim", "byzantine", "multi"});
    auto& F = c.federation;
    if (f["rounds"]) F.rounds = static_cast<int>(number(f["rounds"], source, "federation.rounds", 0, 10000));
    if (f["epochs"]) F.epochs = number(f["epochs"], source, "federation.epochs", 1e-3, 1e4);
    if (f["samples"]) F.samples = static_cast<std::size_t>(number(f["samples"], source, "federation.samples", 0, 1e9));
    if (f["rule"]) {
      F.rule = get<std::string>(f["rule"], source, "federation.rule");
      if (F.rule != "fedavg" && F.rule != "trimmed_mean" && F.rule != "median" && F.rule != "krum")
        throw Error(where(source, f["rule"]) + ": federation.rule must be fedavg, trimmed_mean, median or krum, got '" + F.rule + "'");
    }
    if (f["mu"]) F.mu = number(f["mu"], source, "federation.mu", 0, 1e6);
    if (f["quorum"]) F.quorum = number(f["quorum"], source, "federation.quorum", 0.01, 1);
    if (f["trim"]) F.trim = number(f["trim"], source, "federation.trim", 0, 0.49);
    if (f["byzantine"]) F.byzantine = static_cast<int>(number(f["byzantine"], source, "federation.byzantine", 0, 100));
    if (f["multi"]) F.multi = static_cast<int>(number(f["multi"], source, "federation.multi", 1, 100));
    if (F.rounds > 0 && c.sites() == 0) throw Error(where(source, f) + ": federation needs nodes (nodes: {local: N} or {min: N})");
    if (F.rule == "krum" && F.rounds > 0) {
      if (c.sites() < 2 * F.byzantine + 3)
        throw Error(where(source, f) + ": Krum tolerating " + std::to_string(F.byzantine) + " attacker(s) needs at least " +
                    std::to_string(2 * F.byzantine + 3) + " nodes, the run has " + std::to_string(c.sites()));
      if (F.multi > c.sites() - F.byzantine)
        throw Error(where(source, f) + ": federation.multi (" + std::to_string(F.multi) + ") must be at most nodes − byzantine (" +
                    std::to_string(c.sites() - F.byzantine) + ")");
    }
  }
  if (const auto e = root["evaluation"]) {
    check_keys(e, source, "evaluation", {"noise_sigma", "watts"});
    if (e["noise_sigma"]) c.noise_sigma = number(e["noise_sigma"], source, "noise_sigma", 0, 10);
    if (e["watts"]) c.watts = number(e["watts"], source, "watts", 0, 1e6);
  }
  return c;
}

RunConfig RunConfig::from_file(const std::string& path) {
  const std::string text = slurp(path);
  const YAML::Node root = load(text, path);
  const auto dir = std::filesystem::path(path).parent_path();
  // `space:` and `policy:` hold a file name (relative to the run file) or the mapping itself.
  auto part = [&](const char* key, std::string& source) -> std::string {
    const auto n = root[key];
    if (!n) return "";
    if (n.IsScalar()) {
      source = (dir / n.Scalar()).string();
      return slurp(source);
    }
    source = path + " (" + key + ")";
    YAML::Emitter out;
    out << n;
    return out.c_str();
  };
  std::string space_source, policy_source;
  const std::string space = part("space", space_source), policy = part("policy", policy_source);
  RunConfig c = from_yaml(text, path, space, policy);
  if (!c.pki.empty()) c.pki = std::filesystem::absolute(dir / c.pki).lexically_normal().string();
  c.space_source = space_source;
  c.policy_source = policy_source;
  return c;
}

}  // namespace gng
