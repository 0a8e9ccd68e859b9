// Federated learning on libtorch models: states as fed::Update, local training (FedAvg, FedProx,
// FedSGD) and evaluation, on a few hundred Fashion-MNIST images with tiny designs.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>

#include "fed/fed.h"
#include "fed/strategy.h"
#include "nn/nn.h"
#include "nn/small_data.h"
#include "support/error_of.h"

namespace gng {
namespace {

using test::design;
using test::error_of;
using test::rows;
using test::small;

const Dataset& train1000() {
  static const Dataset d = rows(small().train, 0, 1000);
  return d;
}
const Dataset& val500() {
  static const Dataset d = rows(small().val, 0, 500);
  return d;
}

const InputShape kFashion{1, 28, 28, 10};

TrainBudget budget(double epochs, int batch) {
  TrainBudget b;
  b.epochs = epochs;
  b.batch = batch;
  return b;
}

const fed::Tensor& tensor(const fed::Update& u, const std::string& name) {
  const auto it = std::find_if(u.tensors.begin(), u.tensors.end(), [&](const fed::Tensor& t) { return t.name == name; });
  if (it == u.tensors.end()) throw Error("no tensor " + name);
  return *it;
}

bool same_tensors(const fed::Update& a, const fed::Update& b) {
  if (a.tensors.size() != b.tensors.size()) return false;
  for (std::size_t i = 0; i < a.tensors.size(); ++i)
    if (a.tensors[i].name != b.tensors[i].name || a.tensors[i].shape != b.tensors[i].shape ||
        a.tensors[i].values != b.tensors[i].values)
      return false;
  return true;
}

std::string contents(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

struct TempDir {
  std::filesystem::path dir = std::filesystem::temp_directory_path() / ("gng-fed-nn-" + std::to_string(getpid()));
  TempDir() { std::filesystem::create_directories(dir); }
  ~TempDir() { std::filesystem::remove_all(dir); }
  std::string operator/(const std::string& name) const { return (dir / name).string(); }
};

// Parameters and buffers (batch norm's running statistics and its integer counter included) come
// out of a saved model as floats and go back into a file identical to the one train_and_evaluate wrote.
TEST(Federated, SavedModelRoundTripsThroughItsState) {
  const TempDir tmp;
  const std::string path = tmp / "model.pt", copy = tmp / "copy.pt";
  const Design d = design({{"width", "4"}, {"batch_norm", "true"}, {"residual", "true"}});
  train_and_evaluate("cnn", d, train1000(), val500(), budget(1, 100), EvalSettings{}, path);

  const fed::Update state = load_state(path);
  EXPECT_EQ(state.from, "");
  EXPECT_EQ(state.samples, 0);
  // Parameters first, then buffers, each in the module's order.
  ASSERT_GE(state.tensors.size(), 3u);
  EXPECT_EQ(state.tensors.front().name, "stage0_conv_a.weight");
  EXPECT_EQ(state.tensors.back().name, "stage0_bn_b.num_batches_tracked");
  const fed::Tensor& counter = tensor(state, "stage0_bn_a.num_batches_tracked");
  EXPECT_TRUE(counter.shape.empty());
  EXPECT_EQ(counter.values, std::vector<float>{10});  // 1000 images in batches of 100
  EXPECT_EQ(tensor(state, "stage0_bn_a.running_var").shape, std::vector<int64_t>{4});
  EXPECT_GT(tensor(state, "normalise.input_mean").values.at(0), 0.1);

  save_state(state, path, copy);
  EXPECT_EQ(contents(copy), contents(path));
  EXPECT_EQ(contents(copy + ".json"), contents(path + ".json"));
  EXPECT_EQ(saved_accuracy(copy, val500()), saved_accuracy(path, val500()));
  EXPECT_TRUE(same_tensors(load_state(copy), state));
}

TEST(Federated, InitialStateIsReproducibleAndDependsOnTheSeed) {
  for (const auto& [family, d] : {std::pair{"cnn", design({{"width", "8"}, {"batch_norm", "true"}})},
                                  std::pair{"vit", design({{"width", "16"}, {"depth", "1"}})}}) {
    const fed::Update a = initial_state(family, d, kFashion, 5), b = initial_state(family, d, kFashion, 5);
    const fed::Update c = initial_state(family, d, kFashion, 6);
    EXPECT_TRUE(same_tensors(a, b)) << family;
    EXPECT_EQ(fed::l2_distance(a, b), 0) << family;
    EXPECT_GT(fed::l2_distance(a, c), 0.1) << family;
    EXPECT_EQ(tensor(a, "head.weight").shape, (std::vector<int64_t>{10, family[0] == 'c' ? 8 * 14 * 14 : 16}));
    EXPECT_EQ(a.samples, 0);
  }
}

TEST(Federated, LocalTrainingImprovesOnTheInitialState) {
  const Design d = design({{"width", "8"}, {"lr", "0.003"}});
  const fed::Update start = initial_state("cnn", d, kFashion, 1);
  const Metrics before = evaluate_state("cnn", d, start, val500(), EvalSettings{});
  const LocalResult r = train_from("cnn", d, start, train1000(), val500(), budget(2, 50), EvalSettings{});
  EXPECT_LT(before.at("accuracy"), 0.3);
  EXPECT_GT(r.metrics.at("accuracy"), 0.65);
  EXPECT_GT(r.metrics.at("accuracy"), before.at("accuracy") + 0.35);
  EXPECT_EQ(r.state.samples, 2000);
  EXPECT_DOUBLE_EQ(r.metrics.at("epochs"), 2.0);
  // Every metric train_and_evaluate reports, from the same evaluation.
  for (const char* key : {"accuracy", "loss", "robustness", "latency_ms", "batch_latency_ms", "energy_mj", "params",
                          "flops", "train_s", "epochs"})
    EXPECT_TRUE(r.metrics.count(key)) << key;
  EXPECT_EQ(r.metrics.at("params"), built_parameters("cnn", d, kFashion));
  const Metrics again = evaluate_state("cnn", d, r.state, val500(), EvalSettings{});
  EXPECT_EQ(again.at("accuracy"), r.metrics.at("accuracy"));
  EXPECT_EQ(again.at("loss"), r.metrics.at("loss"));

  // Without validation data nothing is evaluated; evaluate_state needs some.
  const LocalResult blind = train_from("cnn", d, start, train1000(), Dataset{}, budget(0.1, 50), EvalSettings{});
  EXPECT_FALSE(blind.metrics.count("accuracy"));
  EXPECT_EQ(blind.metrics.at("params"), r.metrics.at("params"));
  EXPECT_EQ(blind.state.samples, 100);
  EXPECT_EQ(error_of([&] { evaluate_state("cnn", d, start, Dataset{}, EvalSettings{}); }),
            "evaluate_state: empty validation set");
  EXPECT_EQ(error_of([&] { train_from("cnn", d, start, train1000(), val500(), {}, {}, -1); }),
            "train_from: mu must be a finite number >= 0");
}

TEST(Federated, FedProxKeepsTheStateNearTheStart) {
  const Design d = design({{"width", "4"}, {"lr", "0.003"}});
  const fed::Update start = initial_state("cnn", d, kFashion, 3);
  const auto moved = [&](double mu) {
    return fed::l2_distance(start, train_from("cnn", d, start, train1000(), Dataset{}, budget(1, 50), {}, mu).state);
  };
  const double free = moved(0), mild = moved(0.1), held = moved(1000);
  EXPECT_GT(free, 0.1);
  EXPECT_LE(mild, free);
  EXPECT_LT(held, 0.2 * free) << "free " << free << ", held " << held;
}

TEST(Federated, TheLearningRateDecaysAcrossRounds) {
  // One cosine across R rounds: round 1 of 4 trains at 100 %…85 % of the design's rate, round 4
  // of 4 at 15 %…0 %, so from the same start the last round moves the weights far less; a
  // constant rate (rounds 0) moves them as much as round 1 or more.
  const Design d = design({{"width", "4"}, {"lr", "0.003"}});
  const fed::Update start = initial_state("cnn", d, kFashion, 5);
  const auto moved = [&](int round, int rounds) {
    return fed::l2_distance(start, train_from("cnn", d, start, train1000(), Dataset{}, budget(0.5, 50), {}, 0, round, rounds).state);
  };
  const double constant = moved(0, 0), first = moved(1, 4), last = moved(4, 4);
  EXPECT_LT(last, 0.5 * first) << "first " << first << ", last " << last;
  EXPECT_GT(constant, 0.9 * first) << "constant " << constant << ", first " << first;
  EXPECT_EQ(error_of([&] { moved(5, 4); }), "train_from: round 5 of 4 is not a round");
  EXPECT_EQ(error_of([&] { moved(0, 4); }), "train_from: round 0 of 4 is not a round");
}

TEST(Federated, FedAvgOfTwoNodesLearns) {
  const Design d = design({{"width", "8"}, {"lr", "0.003"}});
  const fed::Update start = initial_state("cnn", d, kFashion, 7);
  std::vector<fed::Update> updates;
  for (int node = 0; node < 2; ++node) {
    TrainBudget b = budget(2, 50);
    b.seed = 10 + node;
    updates.push_back(train_from("cnn", d, start, rows(train1000(), 500 * node, 500 * node + 500), Dataset{}, b, {}).state);
    updates.back().from = "node" + std::to_string(node);
    EXPECT_EQ(updates.back().samples, 1000);
  }
  const std::unique_ptr<fed::Strategy> fedavg = fed::make_strategy({});
  const fed::Update avg = fedavg->aggregate(updates);
  EXPECT_EQ(avg.samples, 2000);
  EXPECT_GT(evaluate_state("cnn", d, avg, val500(), EvalSettings{}).at("accuracy"), 0.55);  // chance is 0.10

  // The mean of one state with itself is that state, value for value.
  const std::vector<fed::Update> twins{updates[0], updates[0]};
  EXPECT_TRUE(same_tensors(fedavg->aggregate(twins), updates[0]));
}

TEST(Federated, StateOfAnotherDesignIsRefusedNamingTheTensor) {
  const TempDir tmp;
  const Design d8 = design({{"width", "8"}}), d4 = design({{"width", "4"}});
  const fed::Update narrow = initial_state("cnn", d4, kFashion, 1);
  const std::string wrong = "tensor 'stage0_conv_a.weight' has shape [4, 1, 3, 3], the design's is [8, 1, 3, 3]";
  EXPECT_EQ(error_of([&] { train_from("cnn", d8, narrow, train1000(), val500(), {}, {}); }), "train_from: start: " + wrong);
  EXPECT_EQ(error_of([&] { evaluate_state("cnn", d8, narrow, val500(), {}); }), "evaluate_state: " + wrong);

  const std::string like = tmp / "like.pt", out = tmp / "out.pt";
  train_and_evaluate("cnn", d8, rows(train1000(), 0, 100), rows(val500(), 0, 50), budget(0.5, 50), {}, like);
  EXPECT_EQ(error_of([&] { save_state(narrow, like, out); }), "save_state " + out + ": " + wrong);
  EXPECT_FALSE(std::filesystem::exists(out));

  fed::Update s = load_state(like);
  s.tensors.push_back({"extra.weight", {1}, {0.f}});
  EXPECT_EQ(error_of([&] { save_state(s, like, out); }), "save_state " + out + ": tensor 'extra.weight' is not part of the design");
  s.tensors.pop_back();
  s.tensors.erase(s.tensors.begin() + 1);
  EXPECT_EQ(error_of([&] { evaluate_state("cnn", d8, s, val500(), {}); }), "evaluate_state: missing tensor 'stage0_conv_a.bias'");
  s = load_state(like);
  s.tensors[0].values.pop_back();
  EXPECT_EQ(error_of([&] { evaluate_state("cnn", d8, s, val500(), {}); }),
            "evaluate_state: tensor 'stage0_conv_a.weight' has 71 values for shape [8, 1, 3, 3]");
}

// FedSGD: epochs 1 over `batch` samples is a single optimizer step. AdamW's first step moves every
// weight by at most lr (plus decay), and most by lr; a second step moves some by up to 2 lr.
TEST(Federated, FedSgdTakesOneStep) {
  const Design d = design({{"width", "4"}, {"lr", "0.01"}});
  const fed::Update start = initial_state("cnn", d, kFashion, 2);
  TrainBudget one = budget(1, 32);
  one.samples = 32;
  const auto largest_move = [&](const fed::Update& u) {
    double m = 0;
    for (std::size_t t = 0; t < u.tensors.size(); ++t)
      for (std::size_t k = 0; k < u.tensors[t].values.size(); ++k)
        m = std::max<double>(m, std::abs(u.tensors[t].values[k] - start.tensors[t].values[k]));
    return m;
  };
  const LocalResult r = train_from("cnn", d, start, train1000(), Dataset{}, one, {});
  EXPECT_EQ(r.state.samples, 32);
  EXPECT_DOUBLE_EQ(r.metrics.at("epochs"), 1.0);
  EXPECT_GT(largest_move(r.state), 0.0099);
  EXPECT_LT(largest_move(r.state), 0.0101);
  EXPECT_TRUE(same_tensors(train_from("cnn", d, start, train1000(), Dataset{}, one, {}).state, r.state));  // reproducible

  TrainBudget two = one;
  two.samples = 64;
  const LocalResult r2 = train_from("cnn", d, start, train1000(), Dataset{}, two, {});
  EXPECT_EQ(r2.state.samples, 64);
  EXPECT_GT(largest_move(r2.state), 0.015);

  // A node with fewer samples than a batch trains on all of them at once.
  const LocalResult tiny = train_from("cnn", d, start, rows(train1000(), 0, 10), Dataset{}, one, {});
  EXPECT_EQ(tiny.state.samples, 10);
}

}  // namespace
}  // namespace gng
