// Trains one design on Fashion-MNIST and prints its metrics: how long a fidelity rung costs and
// what accuracy a design reaches, measured on this machine. bench/fashion/compare.py drives it to
// run Optuna TPE and random search with gng's trainer, space and budget.
//   build/bench/train --family cnn --design width=32,depth=2,batch_norm=true --epochs 8 [--augment]
//   ... --space examples/spaces/cnn.yaml [--max-params N --max-flops N]   (refuse invalid designs)
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/args.h"
#include "core/error.h"
#include "data/dataset.h"
#include "nn/nn.h"
#include "space/space.h"

int main(int argc, char** argv) {
  using namespace gng;
  try {
    Args args("bench/train");
    args.option("family", "cnn | vit (default: the space's, else cnn)")
        .option("design", "name=value,...")
        .option("space", "check the design against this search space (constraints, budgets) first")
        .option("max-params", "extra parameter budget").option("max-flops", "extra FLOP budget")
        .option("epochs", "epochs (default 1)").option("samples", "samples per epoch (default all)")
        .option("validation", "held out of the training images (default 10000)")
        .option("batch", "batch size (default 128)").option("seed", "seed (default 1)")
        .option("threads", "intra-op threads (default 1)").option("max-eval", "validation images scored (default all)").option("save", "write the model here")
        .flag("augment", "shifts and flips").flag("check", "only check the design against --space").flag("test", "also measure test accuracy").flag("json", "one JSON line");
    args.parse(std::vector<std::string>(argv + 1, argv + argc));
    Design d;
    std::stringstream ss(args.has("design") ? args.str("design") : "");
    for (std::string kv; std::getline(ss, kv, ',');) {
      const auto eq = kv.find('=');
      if (eq == std::string::npos) throw Error("--design: expected name=value, got '" + kv + "'");
      d.values.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    }
    std::string family = args.has("family") ? args.str("family") : "cnn";
    const InputShape in{1, 28, 28, 10};
    if (args.has("space")) {
      SearchSpace sp = SearchSpace::from_file(args.str("space"));
      family = sp.family();
      if (args.has("max-params")) sp.set_budget("params", std::min(args.real("max-params", 0, -1e12, 1e12), sp.budgets().count("params") ? sp.budgets().at("params") : 1e300));
      if (args.has("max-flops")) sp.set_budget("flops", std::min(args.real("max-flops", 0, -1e12, 1e12), sp.budgets().count("flops") ? sp.budgets().at("flops") : 1e300));
      sp.set_cost_model([&](const Design& x) { return design_cost(family, x, in); });
      sp.finalize();
      std::string why;
      const auto checked = sp.decode(sp.encode(d), &why);
      if (!checked) {
        std::printf("invalid: %s\n", why.c_str());
        return 2;
      }
      d = *checked;  // in the space's order, gated-off values dropped
    }
    if (args.has("check")) {
      std::printf("valid\n");
      return 0;
    }
    const std::string blas = init_training_runtime();
    const Dataset all = read_mnist_dir(kFashionMnistDir, true);
    const Split s = split(all, args.real("validation", 10000, -1e12, 1e12) / all.count, 1);
    TrainBudget b;
    b.epochs = args.real("epochs", 1, -1e12, 1e12);
    b.samples = static_cast<std::size_t>(args.integer("samples", 0, 0, 1'000'000'000));
    b.batch = static_cast<int>(args.integer("batch", 128, 0, 1'000'000'000));
    b.seed = static_cast<uint64_t>(args.integer("seed", 1, 0, 1'000'000'000));
    b.threads = static_cast<int>(args.integer("threads", 1, 0, 1'000'000'000));
    b.augment = args.has("augment");
    const std::string save = args.has("save") ? args.str("save") : "";
    EvalSettings es;
    es.max_eval = static_cast<std::size_t>(args.integer("max-eval", 0, 0, 1'000'000'000));
    Metrics m = train_and_evaluate(family, d, s.first, s.second, b, es, save);
    if (args.has("test")) {
      if (save.empty()) throw Error("--test needs --save");
      m["test_accuracy"] = saved_accuracy(save, read_mnist_dir(kFashionMnistDir, false));
    }
    if (args.has("json")) {
      nlohmann::json j;
      j["design"] = nlohmann::json::parse(d.to_json());
      j["metrics"] = m;
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("BLAS: %s\n%s %s\n", blas.c_str(), family.c_str(), d.to_json().c_str());
      for (const auto& [k, v] : m) std::printf("  %-18s %.6g\n", k.c_str(), v);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench/train: %s\n", e.what());
    return 1;
  }
}
