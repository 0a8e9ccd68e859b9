// gng solve FILE — read a problem, run one sampler, report in the file's own objective.
#include <cmath>
#include <cstdio>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/args.h"
#include "core/error.h"
#include "qubo/io.h"
#include "solve/sampler.h"

namespace gng::cli {

Problem load_problem(const Args& args) {
  if (args.positional().size() != 1) throw Error("expected exactly one FILE (see --help)");
  std::optional<Format> format;
  if (args.has("format")) format = parse_format(args.str("format"));
  const int64_t instance = args.integer("instance", 1, 1, 1'000'000);
  if (instance < 1 || instance > INT32_MAX) throw Error("--instance must be a positive integer");
  return read_problem(args.positional()[0], format, static_cast<int>(instance));
}

int solve(const std::vector<std::string>& argv) {
  Args args("gng solve");
  args.option("format", "bqp | rudy | json (default: guessed from the file)")
      .option("instance", "which instance of a bqp file, 1-based (default 1)")
      .option("solver", "exact | anneal | tabu | qaoa | vqe (default tabu; qaoa/vqe are simulated)")
      .option("depth", "qaoa: depth p (default 2); vqe: CZ layers (default 2)")
      .option("time-limit", "stop after this many seconds")
      .option("reads", "independent reads (restarts); default depends on the solver")
      .option("steps", "per read: sweeps (anneal) or moves (tabu)")
      .option("seed", "random seed (default 1)")
      .option("threads", "worker threads (default: all cores)")
      .option("target", "stop once this objective value (in the file's sense) is reached")
      .option("keep", "distinct samples to report (default 1)")
      .flag("json", "print one JSON object")
      .flag("help", "show this help");
  args.parse(argv);
  if (args.has("help")) {
    std::printf("usage: gng solve FILE [OPTIONS]\n\n%s", args.help().c_str());
    return 0;
  }
  const Problem p = load_problem(args);

  SampleOptions o;
  const auto sampler = make_sampler(args.str("solver", "tabu"));
  const int64_t seed = args.integer("seed", 1, 0, INT64_MAX);
  o.seed = static_cast<uint64_t>(seed);
  o.reads = args.integer("reads", 0, 0, 10'000'000);
  o.steps = args.integer("steps", 0, 0, 1'000'000'000'000);
  o.time_limit_s = args.real("time-limit", 0.0, 0, 7 * 86400);
  o.threads = static_cast<int>(args.integer("threads", 0, 0, 1024));
  const int64_t keep = args.integer("keep", 1, 1, 1'000'000);
  o.keep = static_cast<std::size_t>(keep);
  if (auto t = args.real("target", -1e300, 1e300)) o.target_energy = p.energy_of(*t);
  o.quantum.depth = static_cast<int>(args.integer("depth", 2, 0, 64));

  const SampleSet result = sampler->sample(p.qubo, o);
  const Sample& best = result.best();
  const auto& st = result.stats;
  if (args.has("json")) {
    nlohmann::json j;
    j["problem"] = p.name;
    j["format"] = format_name(p.format);
    j["n"] = p.qubo.size();
    j["solver"] = sampler->name();
    j["seed"] = o.seed;
    j["objective_name"] = p.objective_name;
    j["sense"] = p.maximize ? "maximize" : "minimize";
    j["objective"] = json_number(p.objective(best.energy));
    j["energy"] = json_number(best.energy);
    j["x"] = bitstring(best.x);
    j["time_s"] = st.time_s;
    j["time_to_target_s"] = st.time_to_target_s ? nlohmann::json(*st.time_to_target_s) : nlohmann::json(nullptr);
    j["reads"] = st.reads;
    j["steps"] = st.steps;
    auto& samples = j["samples"] = nlohmann::json::array();
    for (const auto& s : result.samples())
      samples.push_back({{"objective", json_number(p.objective(s.energy))}, {"energy", json_number(s.energy)}, {"count", s.count}, {"x", bitstring(s.x)}});
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("problem    %s (%s, n = %zu, %zu couplings), %s %s\n", p.name.c_str(), std::string(format_name(p.format)).c_str(),
              p.qubo.size(), p.qubo.quadratic().size(), p.maximize ? "maximise" : "minimise", p.objective_name.c_str());
  std::printf("solver     %s (classical), seed %llu, %llu reads, %llu steps\n", std::string(sampler->name()).c_str(),
              static_cast<unsigned long long>(o.seed), static_cast<unsigned long long>(st.reads), static_cast<unsigned long long>(st.steps));
  std::printf("best       %s = %.10g   (energy %.10g)\n", p.objective_name.c_str(), p.objective(best.energy), best.energy);
  std::printf("time       %.4f s", st.time_s);
  if (o.target_energy)
    st.time_to_target_s ? std::printf("; target reached after %.4f s\n", *st.time_to_target_s) : std::printf("; target not reached\n");
  else
    std::printf("\n");
  for (const auto& s : result.samples()) std::printf("x          %s  (%.10g, seen %llu×)\n", bitstring(s.x).c_str(), p.objective(s.energy), static_cast<unsigned long long>(s.count));
  return 0;
}

}  // namespace gng::cli
