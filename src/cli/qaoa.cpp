// gng qaoa FILE — QAOA on the classical state-vector simulator, with optional OpenQASM 3 export.
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/args.h"
#include "core/error.h"
#include "core/file.h"
#include "quantum/qasm.h"
#include "quantum/run.h"

namespace gng::cli {

namespace {

// "0-3,4,5-7" → [[0,1,2,3],[4],[5,6,7]]
std::vector<std::vector<uint32_t>> parse_groups(const std::string& text) {
  std::vector<std::vector<uint32_t>> out;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const std::size_t comma = std::min(text.find(',', pos), text.size());
    const std::string item = text.substr(pos, comma - pos);
    const std::size_t dash = item.find('-');
    uint32_t a = 0, b = 0;
    auto num = [&](const std::string& s, uint32_t& v) {
      auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
      if (ec != std::errc() || p != s.data() + s.size() || s.empty())
        throw Error("--groups: expected ranges like 0-3,4-7, got '" + item + "'");
    };
    num(item.substr(0, dash), a);
    b = a;
    if (dash != std::string::npos) num(item.substr(dash + 1), b);
    if (b < a) throw Error("--groups: empty range '" + item + "'");
    std::vector<uint32_t> g;
    for (uint32_t v = a; v <= b; ++v) g.push_back(v);
    out.push_back(std::move(g));
    pos = comma + 1;
  }
  return out;
}

}  // namespace

int qaoa(const std::vector<std::string>& argv) {
  Args args("gng qaoa");
  args.option("format", "bqp | rudy | json (default: guessed from the file)")
      .option("instance", "which instance of a bqp file, 1-based (default 1)")
      .option("p", "QAOA depth (default 2)")
      .option("mixer", "x | xy (xy needs one-hot groups: from the JSON file or --groups)")
      .option("groups", "one-hot groups as index ranges, e.g. 0-3,4-7")
      .option("optimizer", "lbfgs | cobyla | bobyqa (default lbfgs)")
      .option("init", "interp | ramp (default interp: optimise p = 1, 2, … and interpolate)")
      .option("max-evals", "circuit evaluations per optimisation (default 300)")
      .option("shots", "samples drawn from the optimised state (default 1024)")
      .option("seed", "random seed of the shots (default 1)")
      .option("precision", "double | float (default double)")
      .option("memory-gib", "memory budget for the state vectors (default 8)")
      .option("depolarizing", "global depolarising probability per layer (default 0)")
      .option("readout", "readout bit-flip probability (default 0)")
      .option("threads", "OpenMP threads (default: all cores)")
      .option("qasm", "write the optimised circuit as OpenQASM 3 to this file")
      .flag("json", "print one JSON object")
      .flag("help", "show this help");
  args.parse(argv);
  if (args.has("help")) {
    std::printf("usage: gng qaoa FILE [OPTIONS]\n\nQAOA on a classical state-vector simulator (no quantum hardware is used).\n\n%s",
                args.help().c_str());
    return 0;
  }
  const Problem p = load_problem(args);
  quantum::RunSettings s;
  s.depth = static_cast<int>(args.integer("p", 2, 1, 64));
  const std::string mixer = args.str("mixer", "x");
  if (mixer != "x" && mixer != "xy") throw Error("--mixer must be x or xy, got '" + mixer + "'");
  s.circuit.mixer = mixer == "x" ? quantum::Mixer::x : quantum::Mixer::xy;
  s.circuit.groups = args.has("groups") ? parse_groups(args.str("groups")) : p.one_hot;
  if (s.circuit.mixer == quantum::Mixer::x) s.circuit.groups.clear();
  s.optimizer = quantum::parse_optimizer(args.str("optimizer", "lbfgs"));
  const std::string init = args.str("init", "interp");
  if (init != "interp" && init != "ramp") throw Error("--init must be interp or ramp, got '" + init + "'");
  s.interp = init == "interp";
  s.max_evals = static_cast<int>(args.integer("max-evals", 300, 1, 1'000'000));
  const int64_t shots = args.integer("shots", 1024, 1, 10'000'000);
  s.shots = static_cast<std::size_t>(shots);
  const int64_t seed = args.integer("seed", 1, 0, INT64_MAX);
  s.seed = static_cast<uint64_t>(seed);
  const std::string precision = args.str("precision", "double");
  if (precision != "double" && precision != "float") throw Error("--precision must be double or float");
  s.circuit.precision = precision == "double" ? quantum::Precision::f64 : quantum::Precision::f32;
  const double gib = args.real("memory-gib", 8.0, 1.0 / 1024, 1 << 20);
  s.circuit.memory_budget_bytes = gib * (1ull << 30);
  s.circuit.noise.depolarizing = args.real("depolarizing", 0.0, 0, 0.999);
  s.circuit.noise.readout = args.real("readout", 0.0, 0, 0.499);
  s.circuit.threads = static_cast<int>(args.integer("threads", 0, 0, 1024));

  const quantum::RunOutcome r = quantum::run_qaoa(p.qubo, s);
  const int d = s.depth;
  const std::vector<double> gammas(r.theta.begin(), r.theta.begin() + d), betas(r.theta.begin() + d, r.theta.end());
  // Approximation ratio in the file's own sense: ⟨C⟩/C_max for a maximised objective with a
  // positive optimum (Max-Cut, bqp); otherwise (f_max − ⟨f⟩)/(f_max − f_min).
  const double best_obj = p.objective(r.min_energy), expected = p.objective(r.expectation);
  const double ratio = p.maximize && best_obj > 0 ? expected / best_obj
                       : r.max_energy > r.min_energy ? (r.max_energy - r.expectation) / (r.max_energy - r.min_energy)
                                                     : 1.0;
  if (args.has("qasm")) {
    write_file_atomic(args.str("qasm"), quantum::qaoa_qasm(p.qubo, r.theta, s.circuit));
  }
  const Sample& best = r.samples.best();
  if (args.has("json")) {
    nlohmann::json j;
    j["problem"] = p.name;
    j["n"] = p.qubo.size();
    j["p"] = d;
    j["mixer"] = mixer;
    j["optimizer"] = args.str("optimizer", "lbfgs");
    j["simulated"] = "classical state-vector simulation; no quantum hardware was used";
    j["states"] = r.states;
    j["expected_objective"] = expected;
    j["energy"] = r.expectation;
    j["optimal_objective"] = json_number(best_obj);
    j["approximation_ratio"] = ratio;
    j["best"] = {{"objective", json_number(p.objective(best.energy))}, {"energy", json_number(best.energy)}, {"x", bitstring(best.x)}};
    j["gammas"] = gammas;
    j["betas"] = betas;
    j["evaluations"] = r.evaluations;
    j["float_evaluations"] = r.float_evaluations;
    j["shots"] = s.shots;
    j["time_s"] = r.samples.stats.time_s;
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("problem    %s (n = %zu), %s %s\n", p.name.c_str(), p.qubo.size(), p.maximize ? "maximise" : "minimise", p.objective_name.c_str());
  const bool subspace = s.circuit.mixer == quantum::Mixer::xy;
  std::printf("circuit    QAOA p = %d, mixer %s, %s — simulated on a classical state-vector simulator over %zu states%s\n", d,
              mixer.c_str(), precision.c_str(), r.states, subspace ? " (the one-hot subspace)" : "");
  std::printf("expected   %s = %.8g (optimum %.8g%s, approximation ratio %.4f), %d evaluations (%d in float)\n",
              p.objective_name.c_str(), expected, best_obj, subspace ? " in the subspace" : "", ratio, r.evaluations,
              r.float_evaluations);
  std::printf("best shot  %s = %.10g  x = %s  (of %zu shots)\n", p.objective_name.c_str(), p.objective(best.energy), bitstring(best.x).c_str(), s.shots);
  for (int l = 0; l < d; ++l) std::printf("layer %-3d  gamma = %+.6f  beta = %+.6f\n", l + 1, gammas[l], betas[l]);
  std::printf("time       %.3f s\n", r.samples.stats.time_s);
  return 0;
}

}  // namespace gng::cli
