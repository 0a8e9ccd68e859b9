// Trains one design on Fashion-MNIST and prints its metrics: how long a fidelity rung costs and
// what accuracy a design reaches, measured on this machine.
//   build/bench/train --family cnn --design width=32,depth=2,batch_norm=true --epochs 8 [--augment]
#include <chrono>
#include <cstdio>
#include <sstream>

#include "core/args.h"
#include "core/error.h"
#include "data/dataset.h"
#include "nn/nn.h"

int main(int argc, char** argv) {
  using namespace gng;
  try {
    Args args("bench/train");
    args.option("family", "cnn | vit").option("design", "name=value,... ").option("epochs", "epochs (default 1)")
        .option("samples", "samples per epoch (default all)").option("validation", "held out (default 10000)")
        .option("batch", "batch size (default 128)").option("seed", "seed (default 1)").flag("augment", "shifts and flips");
    args.parse(std::vector<std::string>(argv + 1, argv + argc));
    Design d;
    std::stringstream ss(args.has("design") ? args.str("design") : "");
    for (std::string kv; std::getline(ss, kv, ',');) {
      const auto eq = kv.find('=');
      if (eq == std::string::npos) throw Error("--design: expected name=value, got '" + kv + "'");
      d.values.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    }
    std::printf("BLAS: %s\n", init_training_runtime().c_str());
    const Dataset all = read_mnist_dir(kFashionMnistDir, true), test = read_mnist_dir(kFashionMnistDir, false);
    const Split s = split(all, args.real("validation", 10000) / all.count, 1);
    TrainBudget b;
    b.epochs = args.real("epochs", 1);
    b.samples = static_cast<std::size_t>(args.integer("samples", 0));
    b.batch = static_cast<int>(args.integer("batch", 128));
    b.seed = static_cast<uint64_t>(args.integer("seed", 1));
    b.augment = args.has("augment");
    const std::string family = args.has("family") ? args.str("family") : "cnn";
    const Metrics m = train_and_evaluate(family, d, s.first, s.second, b, EvalSettings{}, "/tmp/gng-bench-train.pt");
    const auto t0 = std::chrono::steady_clock::now();
    const double acc = saved_accuracy("/tmp/gng-bench-train.pt", test);
    const double test_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%s %s\n", family.c_str(), d.to_json().c_str());
    for (const auto& [k, v] : m) std::printf("  %-18s %.6g\n", k.c_str(), v);
    std::printf("  %-18s %.4f (%.1f s)\n", "test_accuracy", acc, test_s);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench/train: %s\n", e.what());
    return 1;
  }
}
