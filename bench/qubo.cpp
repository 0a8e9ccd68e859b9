// bench/qubo — time-to-target of gng's classical samplers on the standard instances in
// ../shared/data/qubo (Beasley bqp50…bqp500, G-set G1…G10), single-threaded, CPU seconds.
//
//   build/bench/qubo [--data DIR] [--solver tabu,anneal] [--seeds 10] [--time-limit 10]
//                    [--only PREFIX] [--steps N] [--json FILE]
//
// For each instance and seed, a sampler runs with target = best known value and stops when it is
// reached (or at the time limit). Reported per instance: best found, gap to best known, successes,
// median and maximum CPU time-to-target over the seeds that reached it.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/args.h"
#include "core/error.h"
#include "core/timer.h"
#include "qubo/io.h"
#include "solve/sampler.h"

using namespace gng;

namespace {

struct Instance {
  std::string name, file;
  int block = 1;
  double best_known;
};

std::vector<Instance> instances(const std::string& dir, const std::string& only) {
  std::ifstream f(dir + "/best_known.csv");
  if (!f) throw Error(dir + "/best_known.csv: cannot open");
  std::vector<Instance> out;
  std::string line;
  std::getline(f, line);
  while (std::getline(f, line)) {
    std::stringstream s(line);
    Instance in;
    std::string value;
    std::getline(s, in.name, ',');
    std::getline(s, value, ',');
    in.best_known = std::stod(value);
    if (!only.empty() && in.name.rfind(only, 0) != 0) continue;
    if (in.name.rfind("bqp", 0) == 0) {
      const auto dash = in.name.find('-');
      in.file = dir + "/bqp/" + in.name.substr(0, dash) + ".txt";
      in.block = std::stoi(in.name.substr(dash + 1));
    } else {
      in.file = dir + "/gset/" + in.name;
    }
    out.push_back(in);
  }
  return out;
}

double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string t; std::getline(ss, t, ',');) out.push_back(t);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Args args("bench/qubo");
    args.option("data", "directory with best_known.csv, bqp/ and gset/ (default ../shared/data/qubo)")
        .option("solver", "comma-separated samplers (default tabu,anneal)")
        .option("seeds", "seeds per instance (default 10)")
        .option("time-limit", "seconds per run (default 10)")
        .option("only", "instances whose name starts with this")
        .option("steps", "per read: sweeps (anneal) or moves (tabu); default: the sampler's")
        .option("json", "also write the results as JSON to this file");
    args.parse({argv + 1, argv + argc});
    const auto list = instances(args.str("data", "../shared/data/qubo"), args.str("only"));
    const int64_t seeds = args.integer("seeds", 10, 0, 1'000'000'000);
    const double limit = args.real("time-limit", 10.0, -1e12, 1e12);
    nlohmann::json results = nlohmann::json::array();
    std::printf("%-8s %-11s %5s %10s %10s %8s %6s %12s %12s\n", "solver", "instance", "n", "best_known", "best_found", "gap_%",
                "hits", "median_ttt_s", "max_ttt_s");
    for (const std::string& solver : split(args.str("solver", "tabu,anneal"))) {
      const auto sampler = make_sampler(solver);
      for (const Instance& in : list) {
        const Problem p = read_problem(in.file, std::nullopt, in.block);
        std::vector<double> ttt;
        double best = -INFINITY;
        for (int64_t seed = 1; seed <= seeds; ++seed) {
          SampleOptions o;
          o.seed = static_cast<uint64_t>(seed);
          o.threads = 1;
          o.time_limit_s = limit;
          o.steps = args.integer("steps", 0, 0, 1'000'000'000);
          o.target_energy = p.energy_of(in.best_known);
          const double cpu0 = process_cpu_seconds();
          const SampleSet s = sampler->sample(p.qubo, o);
          const double cpu = process_cpu_seconds() - cpu0;
          best = std::max(best, p.objective(s.best().energy));
          // CPU time of the run, scaled to the moment the target was reached.
          if (s.stats.time_to_target_s) ttt.push_back(cpu * (*s.stats.time_to_target_s / std::max(s.stats.time_s, 1e-12)));
        }
        const double gap = 100.0 * (in.best_known - best) / std::abs(in.best_known);
        const double med = ttt.size() * 2 > static_cast<std::size_t>(seeds) ? median(ttt) : NAN;  // median over all seeds
        const double mx = ttt.size() == static_cast<std::size_t>(seeds) ? *std::max_element(ttt.begin(), ttt.end()) : NAN;
        std::printf("%-8s %-11s %5zu %10.0f %10.0f %8.3f %3zu/%-2lld %12.4f %12.4f\n", solver.c_str(), in.name.c_str(), p.qubo.size(),
                    in.best_known, best, gap, ttt.size(), static_cast<long long>(seeds), med, mx);
        std::fflush(stdout);
        results.push_back({{"solver", solver}, {"instance", in.name}, {"n", p.qubo.size()}, {"best_known", in.best_known},
                           {"best_found", best}, {"gap_percent", gap}, {"hits", ttt.size()}, {"seeds", seeds},
                           {"median_ttt_cpu_s", std::isnan(med) ? nlohmann::json(nullptr) : nlohmann::json(med)},
                           {"max_ttt_cpu_s", std::isnan(mx) ? nlohmann::json(nullptr) : nlohmann::json(mx)},
                           {"time_limit_s", limit}});
      }
    }
    if (args.has("json")) {
      std::ofstream f(args.str("json"));
      f << results.dump(1) << "\n";
    }
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "bench/qubo: error: %s\n", e.what());
    return 1;
  }
}
