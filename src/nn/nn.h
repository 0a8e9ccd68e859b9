#pragma once
// Train and evaluate: a design (src/space) becomes a libtorch module of its family, is trained under
// a budget and measured. Only src/nn/*.cpp include <torch/torch.h>; this header does not.
//
// Families (the decision names each reads, with defaults when a decision is absent):
//   cnn: depth stages (1) of conv → [batch_norm] → activation (relu | gelu | silu) → 2×2 max-pool;
//        width channels in the first stage (32, doubled per stage), kernel (3); residual adds a
//        second conv with a skip around it in each stage; attention adds multi-head
//        self-attention (`heads`) over the last stage's positions; the classifier sees every
//        position (flattened), through a `hidden` layer when > 0 (0), with dropout (0).
//   vit: patch (7), width (64), depth encoder blocks (2), heads (2), mlp_ratio (2), activation
//        (gelu), dropout (0); pre-norm blocks, learned position embedding, mean pooling.
//   Both: optimizer (adamw | sgd), lr (0.001).
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "fed/fed.h"
#include "space/space.h"

namespace gng {

struct InputShape {
  int channels = 1, height = 28, width = 28, classes = 10;
};
InputShape shape_of(const Dataset& d);

// Analytic cost of one design (no libtorch): "params" (trainable parameters, exactly those of the
// built module) and "flops" (2 × multiply-accumulates of convolutions, linear layers and attention
// products for one image; element-wise work not counted). Throws gng::Error on an unknown family or
// a design the family cannot build (e.g. width not divisible by heads).
std::map<std::string, double> design_cost(const std::string& family, const Design& d, const InputShape& in);

// Trainable parameters of the built libtorch module (checks design_cost's formula).
double built_parameters(const std::string& family, const Design& d, const InputShape& in);

struct TrainBudget {
  double epochs = 1;          // passes over the (sub)sampled training set
  std::size_t samples = 0;    // training samples per epoch: 0 = all
  double seconds = 0;         // wall-clock cap on training (0 = none); stops between batches
  int batch = 128;
  bool augment = false;       // random ±2-pixel shifts and horizontal flips
  uint64_t seed = 1;          // initialisation, sampling and shuffling
  int threads = 1;            // intra-op threads; process-wide while it trains, so use > 1 only
                              // when no other training runs at the same time
};

struct EvalSettings {
  double noise_sigma = 0.1;   // robustness: accuracy with N(0, σ²) added to every pixel (clamped to [0,1])
  double watts = 5.0;         // energy estimate: measured single-image CPU latency × this power
  std::size_t max_eval = 0;   // evaluate on at most this many validation samples (0 = all)
};

// Validation accuracy, latency_ms (median single-image forward after warm-up), batch_latency_ms
// (per image, batch of 256), params, flops, energy_mj (latency × watts, per image),
// robustness (accuracy under noise), loss (validation cross-entropy), train_s, epochs (done).
using Metrics = std::map<std::string, double>;

// Builds the design's module, trains it on `train` under the budget (cosine learning-rate schedule
// with warm-up), evaluates it on `val`, and, when `save` is not empty, writes the trained weights as a
// state dict that Python's torch.load() reads ({name: tensor}), plus `save`.json with the family, the
// design and the weights' SHA-256. Deterministic for a seed when run on one thread. Throws gng::Error on bad input.
Metrics train_and_evaluate(const std::string& family, const Design& d, const Dataset& train, const Dataset& val,
                           const TrainBudget& budget, const EvalSettings& eval, const std::string& save = "");

// Accuracy of a saved model (from train_and_evaluate's `save`) on a dataset.
double saved_accuracy(const std::string& path, const Dataset& data);

// A saved model (train_and_evaluate's `save`: the weights file and `save`.json) loaded for inference.
// predict() may be called from several threads at once: the module is only read (each call runs in
// its own inference mode, on the calling thread with the process's intra-op threads; one after
// init_training_runtime()). Throws gng::Error on a missing or malformed model, and on weights whose
// SHA-256 is not the one `path`.json names (every saved model's description names it; every load
// checks it, here and wherever a saved model is read).
class Predictor {
 public:
  explicit Predictor(const std::string& path);
  ~Predictor();
  Predictor(Predictor&&) noexcept;
  Predictor& operator=(Predictor&&) noexcept;

  const InputShape& shape() const;
  const std::string& family() const;
  const std::string& sha256() const;  // of the weights, checked against the description when loaded

  struct Prediction {
    std::vector<float> logits;  // images × classes, row-major
    std::vector<int> classes;   // arg-max of each row
  };
  // `images`: n × channels × height × width floats as training saw them ([0, 1]); n from the size,
  // which must be a whole number of images (gng::Error otherwise).
  Prediction predict(std::span<const float> images) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// --- federated learning: a model's state as plain tensors (fed::Update, no libtorch types) -------

// Every parameter and buffer of a saved model (train_and_evaluate's `save`), by name, as float32
// (integer buffers such as batch-norm counters converted). `from` and `samples` are left empty.
fed::Update load_state(const std::string& path);
// Writes `state` as a model file that torch.load reads, with the description (`path`.json) of the
// model `like` (same family and design); gng::Error when the state does not fit that design.
void save_state(const fed::Update& state, const std::string& like, const std::string& path);
// The design's freshly initialised state for `seed` (what every node starts the first round from).
fed::Update initial_state(const std::string& family, const Design& d, const InputShape& in, uint64_t seed);

struct LocalResult {
  fed::Update state;  // samples = training samples seen
  Metrics metrics;    // of the trained state on `val` (as train_and_evaluate reports them)
};
// Local training for one federated round: starts from `start` (a state of this design), trains on
// `train` for `budget`, adding the FedProx term mu/2·‖w − start‖² to the loss when mu > 0 (Li et al.
// 2020), and evaluates on `val` (skipped when val is empty). budget.samples = batch and epochs = 1
// is one step (FedSGD). The learning rate: with rounds > 0, round `round` (1-based) of `rounds`
// follows its segment of one cosine decay across all rounds (R rounds of E epochs then see one
// R·E-epoch cosine, without train_and_evaluate's warm-up: rounds start from a trained state; a
// decaying rate is what lets FedAvg converge on non-IID shards, Li et al. 2020), else the
// design's rate, constant.
LocalResult train_from(const std::string& family, const Design& d, const fed::Update& start, const Dataset& train,
                       const Dataset& val, const TrainBudget& budget, const EvalSettings& eval, double mu = 0,
                       int round = 0, int rounds = 0);
// Metrics of `state` on `val`, as train_and_evaluate reports them (no training).
Metrics evaluate_state(const std::string& family, const Design& d, const fed::Update& state, const Dataset& val,
                       const EvalSettings& eval);

// Process-wide settings for training: one intra-op thread (parallelism comes from candidates and
// nodes; spinning OpenMP threads on two cores cost 5-20×) and malloc thresholds that stop glibc from
// returning tensor buffers to the OS after every step. Call once at start-up. Returns the BLAS
// libtorch uses ("OpenBLAS", or a warning text when only the slow reference BLAS is present).
std::string init_training_runtime();

}  // namespace gng
