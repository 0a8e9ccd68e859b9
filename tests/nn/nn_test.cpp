#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <numeric>

#include "core/error.h"
#include "data/dataset.h"
#include "nn/nn.h"
#include "nn/small_data.h"
#include "support/error_of.h"
#include "support/paths.h"

namespace gng {
namespace {

using test::design;
using test::error_of;
using test::small;

TEST(Cost, ParameterFormulaMatchesTheBuiltModules) {
  const InputShape in{1, 28, 28, 10};
  int checked = 0;
  for (const char* depth : {"1", "2", "3"})
    for (const char* bn : {"false", "true"})
      for (const char* att : {"false", "true"})
        for (const char* kernel : {"3", "5"}) {
          const Design d = design({{"depth", depth}, {"width", "8"}, {"kernel", kernel}, {"batch_norm", bn},
                                   {"residual", bn}, {"attention", att}, {"heads", "2"}, {"hidden", att[0] == 't' ? "32" : "0"}});
          EXPECT_EQ(design_cost("cnn", d, in).at("params"), built_parameters("cnn", d, in)) << d.to_json();
          ++checked;
        }
  for (const char* patch : {"4", "7"})
    for (const char* depth : {"1", "3"})
      for (const char* mlp : {"2", "4"}) {
        const Design d = design({{"patch", patch}, {"width", "32"}, {"depth", depth}, {"heads", "4"}, {"mlp_ratio", mlp}});
        EXPECT_EQ(design_cost("vit", d, in).at("params"), built_parameters("vit", d, in)) << d.to_json();
        ++checked;
      }
  EXPECT_EQ(checked, 32);
}

TEST(Cost, FlopsGrowWithTheWorkDone) {
  const InputShape in{1, 28, 28, 10};
  const auto f = [&](const char* width, const char* kernel) {
    return design_cost("cnn", design({{"width", width}, {"kernel", kernel}}), in).at("flops");
  };
  // One stage: a same-padded convolution on 28×28, pooled to 14×14, then the classifier: 2·MACs.
  EXPECT_DOUBLE_EQ(f("8", "3"), 2.0 * (1 * 8 * 9) * 784 + 2.0 * (8 * 14 * 14) * 10);
  EXPECT_GT(f("16", "3"), 1.9 * f("8", "3"));  // one input channel: the first conv is linear in width
  EXPECT_GT(f("8", "5"), f("8", "3"));
}

TEST(Cost, RejectsDesignsTheFamilyCannotBuild) {
  const InputShape in{1, 28, 28, 10};
  EXPECT_EQ(error_of([&] { design_cost("mlp", Design{}, in); }), "unknown model family 'mlp' (cnn, vit)");
  EXPECT_EQ(error_of([&] { design_cost("vit", design({{"width", "30"}, {"heads", "4"}}), in); }),
            "vit: heads 4 must divide width 30");
  EXPECT_EQ(error_of([&] { design_cost("vit", design({{"patch", "5"}}), in); }), "vit: patch 5 does not tile a 28x28 input");
  EXPECT_EQ(error_of([&] { design_cost("cnn", design({{"depth", "5"}}), in); }), "cnn: depth 5 pools the input below 1 pixel");
  EXPECT_EQ(error_of([&] { design_cost("cnn", design({{"activation", "tanh"}}), in); }),
            "unknown activation 'tanh' (relu, gelu, silu)");
  EXPECT_NE(error_of([&] { design_cost("cnn", design({{"width", "wide"}}), in); }), "no error");
}

TEST(Train, CnnLearnsFashionMnistAndReportsEveryMetric) {
  const auto& s = small();
  TrainBudget b;
  b.epochs = 2;
  b.batch = 64;
  const Design d = design({{"width", "8"}, {"depth", "2"}, {"batch_norm", "true"}, {"lr", "0.003"}});
  const Metrics m = train_and_evaluate("cnn", d, s.train, s.val, b, EvalSettings{});
  EXPECT_GT(m.at("accuracy"), 0.70);  // chance is 0.10
  EXPECT_GT(m.at("robustness"), 0.5);
  EXPECT_LE(m.at("robustness"), m.at("accuracy") + 0.05);
  EXPECT_GT(m.at("latency_ms"), 0);
  EXPECT_GT(m.at("batch_latency_ms"), 0);
  EXPECT_DOUBLE_EQ(m.at("energy_mj"), m.at("latency_ms") * 5.0);
  EXPECT_NEAR(m.at("epochs"), 2.0, 0.05);
  EXPECT_EQ(m.at("params"), built_parameters("cnn", d, shape_of(s.train)));
}

TEST(Train, VitLearns) {
  const auto& s = small();
  TrainBudget b;
  b.epochs = 3;
  b.batch = 64;
  const Metrics m = train_and_evaluate(
      "vit", design({{"patch", "7"}, {"width", "32"}, {"depth", "1"}, {"heads", "2"}, {"lr", "0.003"}}), s.train, s.val, b,
      EvalSettings{});
  EXPECT_GT(m.at("accuracy"), 0.65);
}

TEST(Train, SgdWithAugmentationLearns) {
  const auto& s = small();
  TrainBudget b;
  b.epochs = 2;
  b.batch = 64;
  b.augment = true;
  const Metrics m = train_and_evaluate("cnn", design({{"width", "8"}, {"optimizer", "sgd"}, {"lr", "0.03"}}), s.train,
                                       s.val, b, EvalSettings{});
  EXPECT_GT(m.at("accuracy"), 0.65);
}

TEST(Train, WallClockCapStopsTraining) {
  const auto& s = small();
  TrainBudget b;
  b.epochs = 1000;
  b.seconds = 0.5;
  const Metrics m = train_and_evaluate("cnn", design({{"width", "8"}}), s.train, s.val, b, EvalSettings{});
  EXPECT_LT(m.at("train_s"), 5.0);
  EXPECT_LT(m.at("epochs"), 1000);
}

TEST(Train, RejectsBadInput) {
  const auto& s = small();
  EXPECT_EQ(error_of([&] { train_and_evaluate("cnn", design({{"optimizer", "lamb"}}), s.train, s.val, {}, {}); }),
            "unknown optimizer 'lamb' (adamw, sgd)");
  EXPECT_EQ(error_of([&] { train_and_evaluate("cnn", Design{}, Dataset{}, s.val, {}, {}); }),
            "train_and_evaluate: empty training or validation set");
}

TEST(Export, SavedModelReloadsInCppAndInPythonTorch) {
  const auto& s = small();
  const auto dir = std::filesystem::temp_directory_path() / ("gng-nn-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "model.pt").string();
  TrainBudget b;
  b.epochs = 1;
  const Design d = design({{"width", "8"}, {"batch_norm", "true"}, {"attention", "true"}, {"heads", "2"}});
  const Metrics m = train_and_evaluate("cnn", d, s.train, s.val, b, EvalSettings{}, path);
  EXPECT_DOUBLE_EQ(saved_accuracy(path, s.val), m.at("accuracy"));

  // Python's torch.load reads the state dict: names, shapes and the normalisation constants.
  const double mean = std::accumulate(s.train.pixels.begin(), s.train.pixels.end(), 0.0) / s.train.pixels.size();
  const auto r = test::run("/usr/bin/python3 -c \"import torch; d = torch.load('" + path +
                           "'); print(tuple(d['head.weight'].shape), '%.4f' % float(d['normalise.input_mean']), "
                           "sum(v.numel() for k, v in d.items() if 'running' not in k and 'num_batches' not in k and 'normalise' not in k))\"");
  ASSERT_EQ(r.status, 0) << r.out;
  char expect[200];
  snprintf(expect, sizeof expect, "(10, 1568) %.4f %.0f", mean, m.at("params"));
  EXPECT_NE(r.out.find(expect), std::string::npos) << r.out << " expected " << expect;

  // A truncated model file is refused, before it is parsed, for not being the weights its
  // description names; and the good one still loads.
  std::filesystem::copy_file(path, path + ".bad");
  std::filesystem::copy_file(path + ".json", path + ".bad.json");
  std::filesystem::resize_file(path + ".bad", std::filesystem::file_size(path) / 2);
  EXPECT_NE(error_of([&] { saved_accuracy(path + ".bad", s.val); }).find(".bad: its SHA-256 is "), std::string::npos);
  std::ofstream(path + ".bad.json") << "{\"family\": \"cnn\"}";
  EXPECT_NE(error_of([&] { saved_accuracy(path + ".bad", s.val); }).find(".bad.json: not a gng model description ("),
            std::string::npos);
  EXPECT_EQ(error_of([&] { saved_accuracy((dir / "none.pt").string(), s.val); }),
            (dir / "none.pt").string() + ".json: cannot open the model description");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace gng

namespace gng {
namespace {

// Every design of the example spaces builds, and the budgets see exactly the built parameters.
TEST(Cost, ExampleSpacesBuildAndMatchTheFormula) {
  const InputShape in{1, 28, 28, 10};
  for (const char* file : {"cnn", "vit"}) {
    SearchSpace sp = SearchSpace::from_file(std::string(GNG_SOURCE_DIR) + "/examples/spaces/" + file + ".yaml");
    const std::string family = sp.family();
    sp.set_cost_model([&](const Design& d) { return design_cost(family, d, in); });
    sp.finalize();
    Rng rng(7);
    for (int k = 0; k < 25; ++k) {
      const auto d = sp.decode(sp.random_valid(rng));
      ASSERT_TRUE(d.has_value());
      const auto cost = design_cost(family, *d, in);
      EXPECT_EQ(cost.at("params"), built_parameters(family, *d, in)) << d->to_json();
      EXPECT_LE(cost.at("params"), sp.budgets().at("params"));
      EXPECT_LE(cost.at("flops"), sp.budgets().at("flops"));
    }
  }
}

}  // namespace
}  // namespace gng
