// gng search --benchmark nb201 — the surrogate-QUBO search measured on a tabular benchmark.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli/commands.h"
#include "core/args.h"
#include "core/error.h"
#include "search/nb201.h"
#include "search/search.h"

namespace gng::cli {

int search(const std::vector<std::string>& argv) {
  Args args("gng search");
  args.option("benchmark", "tabular benchmark: nb201")
      .option("data", "the benchmark table (nb201: nb201-cifar10.csv)")
      .option("budget", "distinct designs evaluated (default: report 25, 50, 100, 200, 400)")
      .option("seeds", "independent searches (default 10)")
      .option("sampler", "sampler for the surrogate QUBO (default tabu)")
      .option("batch", "designs per surrogate fit (default 1)")
      .option("initial", "random designs before the first fit (default 10)")
      .option("threads", "searches run in parallel (default: all cores)")
      .flag("json", "print one JSON object")
      .flag("help", "show this help");
  args.parse(argv);
  if (args.has("help")) {
    std::printf("usage: gng search --benchmark nb201 --data FILE [OPTIONS]\n\n%s", args.help().c_str());
    return 0;
  }
  if (args.str("benchmark") != "nb201") throw Error("--benchmark nb201 is the tabular benchmark available");
  if (!args.has("data")) throw Error("--data FILE is required (nb201-cifar10.csv)");
  std::vector<int> budgets = {25, 50, 100, 200, 400};
  if (args.has("budget")) {
    const int64_t b = args.integer("budget", 100, 1, Nb201::kCells);
    budgets = {static_cast<int>(b)};
  }
  const int64_t seeds = args.integer("seeds", 10, 1, 10000);
  SearchOptions base;
  base.budget = budgets.back();
  base.sampler = args.str("sampler", "tabu");
  base.batch = static_cast<int>(args.integer("batch", 1, 1, Nb201::kCells));
  base.initial = static_cast<int>(args.integer("initial", 10, 0, Nb201::kCells));
  const int threads = static_cast<int>(args.integer("threads", std::max(1u, std::thread::hardware_concurrency()), 1, 1024));
  const Nb201 table = Nb201::load(args.str("data"));  // after the options: a bad one is named at once

  // regret[s][k]: best test accuracy minus the test accuracy of the best-validation cell among
  // the first budgets[k] evaluations of seed s.
  std::vector<std::vector<double>> regret(seeds);
  std::mutex mu;
  std::string failure;
  int64_t next = 0;
  auto worker = [&]() {
    for (;;) {
      int64_t s;
      {
        std::lock_guard lock(mu);
        if (next >= seeds || !failure.empty()) return;
        s = next++;
      }
      try {
        SearchOptions o = base;
        o.seed = static_cast<uint64_t>(s + 1);
        const auto obs = surrogate_search(Nb201::kBits, one_hot_feasibility(Nb201::kBits, Nb201::groups()), [&](const Bits& x) -> std::optional<double> {
          const auto code = Nb201::decode(x);
          if (!code) return std::nullopt;
          return table.val(*code);
        }, o);
        if (obs.size() < static_cast<std::size_t>(o.budget))
          throw Error("search seed " + std::to_string(s + 1) + " ran out of new valid designs after " + std::to_string(obs.size()) +
                      " of " + std::to_string(o.budget));
        std::vector<double> r;
        double best_val = -INFINITY, test_at_best = 0;
        std::size_t k = 0;
        for (std::size_t i = 0; i < obs.size() && k < budgets.size(); ++i) {
          if (obs[i].score > best_val) best_val = obs[i].score, test_at_best = table.test(*Nb201::decode(obs[i].x));
          while (k < budgets.size() && static_cast<std::size_t>(budgets[k]) == i + 1) r.push_back(table.best_test() - test_at_best), ++k;
        }
        std::lock_guard lock(mu);
        regret[s] = std::move(r);
      } catch (const std::exception& e) {
        std::lock_guard lock(mu);
        failure = e.what();
      }
    }
  };
  {
    std::vector<std::jthread> pool;
    for (int t = 0; t < threads; ++t) pool.emplace_back(worker);
  }
  if (!failure.empty()) throw Error(failure);
  nlohmann::json out;
  out["benchmark"] = "nb201 (" + std::filesystem::path(args.str("data")).filename().string() + ")";  // the table read
  out["method"] = "quadratic Bayesian surrogate, Thompson sampling, " + base.sampler + " on the surrogate QUBO";
  out["seeds"] = seeds;
  auto& rows = out["budgets"] = nlohmann::json::array();
  if (!args.has("json")) std::printf("%8s %12s %12s   (regret = %.2f − test_acc_12ep of the best-val cell, %lld seeds)\n", "budget",
                                     "mean_regret", "std_regret", table.best_test(), static_cast<long long>(seeds));
  for (std::size_t k = 0; k < budgets.size(); ++k) {
    double mean = 0, var = 0;
    for (const auto& r : regret) mean += r[k] / seeds;
    for (const auto& r : regret) var += (r[k] - mean) * (r[k] - mean) / std::max<int64_t>(1, seeds - 1);
    rows.push_back({{"budget", budgets[k]}, {"mean_regret", mean}, {"std_regret", std::sqrt(var)}});
    if (!args.has("json")) std::printf("%8d %12.3f %12.3f\n", budgets[k], mean, std::sqrt(var));
  }
  if (args.has("json")) std::printf("%s\n", out.dump().c_str());
  return 0;
}

}  // namespace gng::cli
