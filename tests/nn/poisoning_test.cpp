// Robust aggregation against a poisoning node, end to end on real models: five nodes hold IID shards
// of 500 Fashion-MNIST images and federate a tiny CNN for 3 rounds; one of them sends its update
// sign-flipped and scaled ×10 (global − 10 · (its state − global)) every round. Plain FedAvg is
// dragged to chance; trimmed mean, coordinate median and Krum outvote the attacker.
//
// The goal, "within 1 point of the clean run", is for the full-scale run (bench/fed). At
// this scale the robust rules pay for their robustness: trimmed mean and median drop honest values
// too (and, with the attacker at one extreme, the honest value at the other), Krum keeps a single
// node's update, and 1,000 validation images after a few steps per node are noisy. Over six seeds of
// this set-up they ended between 9.2 points below and 0.9 above the clean FedAvg run (FedAvg under
// attack: 0–11 %; the clean run 70–74 %), so the
// test asserts what holds with margin: each robust rule under attack ends within 12 points of the
// clean FedAvg run and above 55 %, while attacked FedAvg ends below 20 %.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "fed/fed.h"
#include "fed/strategy.h"
#include "nn/nn.h"
#include "nn/small_data.h"

namespace gng {
namespace {

using test::design;
using test::rows;
using test::small;

const InputShape kFashion{1, 28, 28, 10};
constexpr int kNodes = 5, kRounds = 3, kAttacker = 4;

std::unique_ptr<fed::Strategy> strategy(const std::string& rule) {
  // trim 0.2 with 5 nodes: drops the largest and the smallest value of every coordinate
  return fed::make_strategy({.rule = rule, .trim = 0.2, .byzantine = 1});
}

struct Federation {
  Design d = design({{"width", "4"}, {"lr", "0.01"}});
  Dataset val = rows(small().val, 0, 1000);
  std::vector<Dataset> shards;
  fed::Update start = initial_state("cnn", d, kFashion, 11);

  Federation() {
    const Dataset train = rows(small().train, 0, 500);
    for (const auto& part : partition_iid(train, kNodes, 3)) shards.push_back(subset(train, part));
  }

  // Validation accuracy after kRounds rounds (2 local epochs of batches of 25) under `s`, with or
  // without the attacker. Seeds depend on round and node only, so runs differ only by the rule.
  double run(const fed::Strategy& s, bool attack) const {
    fed::Update global = start;
    for (int round = 0; round < kRounds; ++round) {
      std::vector<fed::Update> updates;
      for (int node = 0; node < kNodes; ++node) {
        TrainBudget b;
        b.epochs = 2;
        b.batch = 25;
        b.seed = 100 + 10 * round + node;
        fed::Update u = train_from("cnn", d, global, shards[node], Dataset{}, b, EvalSettings{}).state;
        if (attack && node == kAttacker) u = fed::scaled_from(u, global, -10);
        u.from = "n";
        u.from += std::to_string(node);
        updates.push_back(std::move(u));
      }
      global = s.aggregate(updates);
    }
    return evaluate_state("cnn", d, global, val, EvalSettings{}).at("accuracy");
  }
};

TEST(Poisoning, SignFlipX10DragsFedAvgToChanceWhileTrimmedMeanMedianKrumEndWithin12PointsOfClean) {
  const Federation f;
  const double clean = f.run(*strategy("fedavg"), false);
  const double attacked = f.run(*strategy("fedavg"), true);
  EXPECT_GT(clean, 0.65);     // chance is 0.10
  EXPECT_LT(attacked, 0.20);  // near chance
  for (const std::string name : {"trimmed_mean", "median", "krum"}) {
    const double robust = f.run(*strategy(name), true);
    RecordProperty(name, std::to_string(robust));
    EXPECT_GT(robust, clean - 0.12) << name << ": clean FedAvg " << clean << ", attacked FedAvg " << attacked;
    EXPECT_GT(robust, 0.55) << name;
  }
}

}  // namespace
}  // namespace gng
