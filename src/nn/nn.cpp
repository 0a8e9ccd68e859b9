// The only translation unit that includes <torch/torch.h> (it costs ~25 s of CPU to compile).
#include <dlfcn.h>
#include <malloc.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <numeric>

#include "core/error.h"
#include "core/rng.h"
#include "nn/arch.h"
#include "nn/nn.h"

namespace gng {

namespace {

namespace F = torch::nn::functional;

torch::Tensor activate(const std::string& act, const torch::Tensor& x) {
  if (act == "gelu") return F::gelu(x);
  if (act == "silu") return F::silu(x);
  return F::relu(x);
}

// Every model normalises its raw [0, 1] input with the training set's mean and deviation, kept as
// buffers so that an exported model carries them.
struct Normalise : torch::nn::Module {
  torch::Tensor mean, stddev;
  Normalise() {
    mean = register_buffer("input_mean", torch::zeros({1}));
    stddev = register_buffer("input_std", torch::ones({1}));
  }
  torch::Tensor operator()(const torch::Tensor& x) const { return (x - mean) / stddev; }
};

// Pre-norm multi-head self-attention with a skip: x + MHA(LN(x)), x of shape (tokens, batch, width).
struct AttentionImpl : torch::nn::Module {
  torch::nn::LayerNorm norm{nullptr};
  torch::nn::MultiheadAttention mha{nullptr};
  AttentionImpl(int width, int heads) {
    norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width})));
    mha = register_module("mha", torch::nn::MultiheadAttention(torch::nn::MultiheadAttentionOptions(width, heads)));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    const auto h = norm(x);
    return x + std::get<0>(mha->forward(h, h, h, {}, /*need_weights=*/false));
  }
};
TORCH_MODULE(Attention);

class Net : public torch::nn::Module {
 public:
  Normalise* normalise;
  Net() { normalise = register_module("normalise", std::make_shared<Normalise>()).get(); }
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;
};

class Cnn : public Net {
 public:
  Cnn(const CnnArch& a, const InputShape& in) : a_(a) {
    int c_in = in.channels, h = in.height, w = in.width;
    for (int s = 0; s < a.depth; ++s) {
      const int c = a.width << s;
      Stage st;
      auto conv = [&](int from) {
        return torch::nn::Conv2d(torch::nn::Conv2dOptions(from, c, a.kernel).padding(a.kernel / 2).bias(!a.batch_norm));
      };
      const std::string p = "stage" + std::to_string(s) + "_";
      st.conv_a = register_module(p + "conv_a", conv(c_in));
      if (a.batch_norm) st.bn_a = register_module(p + "bn_a", torch::nn::BatchNorm2d(c));
      if (a.residual) {
        st.conv_b = register_module(p + "conv_b", conv(c));
        if (a.batch_norm) st.bn_b = register_module(p + "bn_b", torch::nn::BatchNorm2d(c));
      }
      stages_.push_back(st);
      c_in = c, h /= 2, w /= 2;
    }
    if (a.attention) attention_ = register_module("attention", Attention(c_in, a.heads));
    int features = c_in * h * w;
    if (a.hidden > 0) {
      hidden_ = register_module("hidden", torch::nn::Linear(features, a.hidden));
      features = a.hidden;
    }
    head_ = register_module("head", torch::nn::Linear(features, in.classes));
  }

  torch::Tensor forward(const torch::Tensor& input) override {
    auto x = (*normalise)(input);
    for (auto& st : stages_) {
      x = st.conv_a(x);
      if (st.bn_a) x = st.bn_a(x);
      x = activate(a_.activation, x);
      if (st.conv_b) {
        auto y = st.conv_b(x);
        if (st.bn_b) y = st.bn_b(y);
        x = activate(a_.activation, x + y);
      }
      x = F::max_pool2d(x, F::MaxPool2dFuncOptions(2));
    }
    if (attention_) {
      const auto shape = x.sizes().vec();
      auto t = attention_(x.flatten(2).permute({2, 0, 1}));  // (positions, batch, channels)
      x = t.permute({1, 2, 0}).reshape(shape);
    }
    const auto drop = F::DropoutFuncOptions().p(a_.dropout).training(is_training());
    x = F::dropout(x.flatten(1), drop);
    if (hidden_) x = F::dropout(activate(a_.activation, hidden_(x)), drop);
    return head_(x);
  }

 private:
  struct Stage {
    torch::nn::Conv2d conv_a{nullptr}, conv_b{nullptr};
    torch::nn::BatchNorm2d bn_a{nullptr}, bn_b{nullptr};
  };
  CnnArch a_;
  std::vector<Stage> stages_;
  Attention attention_{nullptr};
  torch::nn::Linear hidden_{nullptr}, head_{nullptr};
};

class Vit : public Net {
 public:
  Vit(const VitArch& a, const InputShape& in) : a_(a) {
    const int tokens = (in.height / a.patch) * (in.width / a.patch);
    embed_ = register_module("embed", torch::nn::Conv2d(torch::nn::Conv2dOptions(in.channels, a.width, a.patch).stride(a.patch)));
    position_ = register_parameter("position", torch::randn({tokens, 1, a.width}) * 0.02);
    for (int b = 0; b < a.depth; ++b) {
      Block blk;
      const std::string p = "block" + std::to_string(b) + "_";
      blk.attention = register_module(p + "attention", Attention(a.width, a.heads));
      blk.norm = register_module(p + "norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({a.width})));
      blk.fc1 = register_module(p + "fc1", torch::nn::Linear(a.width, a.width * a.mlp_ratio));
      blk.fc2 = register_module(p + "fc2", torch::nn::Linear(a.width * a.mlp_ratio, a.width));
      blocks_.push_back(blk);
    }
    norm_ = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({a.width})));
    head_ = register_module("head", torch::nn::Linear(a.width, in.classes));
  }

  torch::Tensor forward(const torch::Tensor& input) override {
    auto x = embed_((*normalise)(input)).flatten(2).permute({2, 0, 1}) + position_;  // (tokens, batch, width)
    const auto drop = F::DropoutFuncOptions().p(a_.dropout).training(is_training());
    for (auto& b : blocks_) {
      x = b.attention(x);
      x = x + F::dropout(b.fc2(activate(a_.activation, b.fc1(b.norm(x)))), drop);
    }
    return head_(F::dropout(norm_(x).mean(0), drop));
  }

 private:
  struct Block {
    Attention attention{nullptr};
    torch::nn::LayerNorm norm{nullptr};
    torch::nn::Linear fc1{nullptr}, fc2{nullptr};
  };
  VitArch a_;
  torch::nn::Conv2d embed_{nullptr};
  torch::Tensor position_;
  std::vector<Block> blocks_;
  torch::nn::LayerNorm norm_{nullptr};
  torch::nn::Linear head_{nullptr};
};

// libtorch initialises parameters from its global generator: seeding and building under one lock
// keeps concurrent trainings (one per worker thread) reproducible.
std::mutex build_mutex;

std::shared_ptr<Net> build(const std::string& family, const Design& d, const InputShape& in, uint64_t seed) {
  design_cost(family, d, in);  // validates the design for this input
  std::lock_guard lock(build_mutex);
  torch::manual_seed(seed);
  if (family == "cnn") return std::make_shared<Cnn>(cnn_arch(d), in);
  return std::make_shared<Vit>(vit_arch(d), in);
}

torch::Tensor images(const Dataset& d) {
  return torch::from_blob(const_cast<float*>(d.pixels.data()),
                          {static_cast<int64_t>(d.count), static_cast<int64_t>(d.channels),
                           static_cast<int64_t>(d.height), static_cast<int64_t>(d.width)},
                          torch::kFloat32);
}
torch::Tensor labels(const Dataset& d) {
  return torch::from_blob(const_cast<int32_t*>(d.labels.data()), {static_cast<int64_t>(d.count)}, torch::kInt32)
      .to(torch::kInt64);
}

// Random ±2-pixel shifts (zero fill) and horizontal flips of a batch of raw images.
torch::Tensor augment(const torch::Tensor& x, Rng& rng) {
  const int64_t n = x.size(0), h = x.size(2), w = x.size(3);
  const auto padded = F::pad(x, F::PadFuncOptions({2, 2, 2, 2}));
  std::vector<torch::Tensor> out;
  out.reserve(n);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t dy = rng.below(5), dx = rng.below(5);
    auto img = padded[i].slice(1, dy, dy + h).slice(2, dx, dx + w);
    out.push_back(rng.next() >> 63 ? img.flip({2}) : img);
  }
  return torch::stack(out);
}

struct Quality {
  double accuracy, loss;
};

Quality evaluate(Net& net, const torch::Tensor& x, const torch::Tensor& y) {
  torch::NoGradGuard no_grad;
  net.eval();
  int64_t correct = 0;
  double loss = 0;
  const int64_t n = x.size(0);
  for (int64_t i = 0; i < n; i += 500) {
    const auto xb = x.slice(0, i, std::min(n, i + 500)), yb = y.slice(0, i, std::min(n, i + 500));
    const auto logits = net.forward(xb);
    loss += F::cross_entropy(logits, yb, F::CrossEntropyFuncOptions().reduction(torch::kSum)).item<double>();
    correct += logits.argmax(1).eq(yb).sum().item<int64_t>();
  }
  return {static_cast<double>(correct) / std::max<int64_t>(n, 1), loss / std::max<int64_t>(n, 1)};
}

double median_ms(const std::function<void()>& f, int warmup, int runs) {
  for (int i = 0; i < warmup; ++i) f();
  std::vector<double> t;
  for (int i = 0; i < runs; ++i) {
    const auto s = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - s).count());
  }
  std::nth_element(t.begin(), t.begin() + runs / 2, t.end());
  return t[runs / 2];
}

std::vector<std::pair<std::string, torch::Tensor>> state(Net& net) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : net.named_parameters())
    if (p.value().defined()) out.emplace_back(p.key(), p.value());
  for (const auto& b : net.named_buffers())
    if (b.value().defined()) out.emplace_back(b.key(), b.value());
  return out;
}

void write_atomically(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    f.flush();
    if (!f) throw Error(path + ": cannot write");
  }
  std::filesystem::rename(tmp, path);
}

void save(Net& net, const std::string& family, const Design& d, const InputShape& in, const std::string& path) {
  c10::Dict<std::string, at::Tensor> dict;
  for (const auto& [k, v] : state(net)) dict.insert(k, v.detach().contiguous());
  const std::vector<char> bytes = torch::pickle_save(c10::IValue(dict));
  write_atomically(path, std::string(bytes.begin(), bytes.end()));
  nlohmann::ordered_json j;
  j["format"] = "gng model v1: torch.load(path) gives {name: tensor}";
  j["family"] = family;
  j["design"] = nlohmann::ordered_json::parse(d.to_json());
  j["input"] = {{"channels", in.channels}, {"height", in.height}, {"width", in.width}, {"classes", in.classes}};
  write_atomically(path + ".json", j.dump(2) + "\n");
}

}  // namespace

double built_parameters(const std::string& family, const Design& d, const InputShape& in) {
  double n = 0;
  for (const auto& p : build(family, d, in, 1)->parameters())
    if (p.defined()) n += static_cast<double>(p.numel());
  return n;
}

std::string init_training_runtime() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  at::set_num_threads(1);
  at::set_num_interop_threads(1);
  // Debian's libtorch links libblas.so.3, which the alternatives system points at OpenBLAS when one
  // is installed; without it the reference BLAS is ~15x slower. (gng doctor checks the same.)
  void* blas = dlopen("libopenblas.so.0", RTLD_LAZY);
  if (!blas) return "reference BLAS (slow): install libopenblas0-openmp";
  dlclose(blas);
  return "OpenBLAS";
}

Metrics train_and_evaluate(const std::string& family, const Design& d, const Dataset& train, const Dataset& val,
                           const TrainBudget& budget, const EvalSettings& eval, const std::string& save_path) {
  if (train.count == 0 || val.count == 0) throw Error("train_and_evaluate: empty training or validation set");
  if (train.features() != val.features()) throw Error("train_and_evaluate: training and validation shapes differ");
  if (budget.batch < 1 || !(budget.epochs > 0)) throw Error("train_and_evaluate: batch and epochs must be positive");
  const InputShape in{static_cast<int>(train.channels), static_cast<int>(train.height), static_cast<int>(train.width),
                      std::max(train.classes, val.classes)};
  const auto clock = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - clock).count(); };

  // Intra-op threads for this training only (see TrainBudget::threads).
  struct Threads {
    explicit Threads(int n) : n_(n) {
      if (n_ > 1) at::set_num_threads(n_);
    }
    ~Threads() {
      if (n_ > 1) at::set_num_threads(1);
    }
    int n_;
  } threads(budget.threads);
  auto net = build(family, d, in, budget.seed);
  const torch::Tensor x_all = images(train), y_all = labels(train);
  {
    torch::NoGradGuard no_grad;
    net->normalise->mean.fill_(x_all.mean().item<double>());
    net->normalise->stddev.fill_(x_all.std().item<double>() + 1e-6);
  }
  const std::string opt = d.text("optimizer", "adamw");
  const double lr = d.number("lr", 1e-3);
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  if (opt == "sgd") {
    optimizer = std::make_unique<torch::optim::SGD>(
        net->parameters(), torch::optim::SGDOptions(lr).momentum(0.9).nesterov(true).weight_decay(5e-4));
  } else if (opt == "adamw") {
    optimizer = std::make_unique<torch::optim::AdamW>(net->parameters(), torch::optim::AdamWOptions(lr).weight_decay(0.01));
  } else {
    throw Error("unknown optimizer '" + opt + "' (adamw, sgd)");
  }

  const std::size_t per_epoch = budget.samples ? std::min(budget.samples, train.count) : train.count;
  const int64_t planned = std::max<int64_t>(1, std::llround(budget.epochs * per_epoch / budget.batch));
  const int64_t warmup = std::max<int64_t>(1, planned / 30);
  Rng rng(budget.seed, 0x7a1);
  std::vector<int64_t> order(train.count);
  std::size_t cursor = train.count;  // reshuffle on first use
  int64_t step = 0;
  net->train();
  const double setup = elapsed();
  int64_t steps = planned;
  for (; step < steps; ++step) {
    // A wall-clock cap shortens the whole schedule (measured on the first steps) rather than cutting
    // it off with the learning rate still high.
    if (budget.seconds > 0 && step == std::min<int64_t>(20, planned / 10) && step > 0) {
      const double per_step = (elapsed() - setup) / step;
      const auto fit = static_cast<int64_t>(0.95 * (budget.seconds - setup) / per_step);
      if (fit < steps) steps = std::max(step + 1, fit);
    }
    if (budget.seconds > 0 && elapsed() > budget.seconds) break;
    // Cosine schedule with linear warm-up.
    const double rate = step < warmup ? lr * (step + 1) / warmup
                                      : 0.5 * lr * (1 + std::cos(M_PI * (step - warmup) / std::max<int64_t>(1, steps - warmup)));
    for (auto& g : optimizer->param_groups()) g.options().set_lr(rate);
    if (cursor + budget.batch > order.size()) {
      std::iota(order.begin(), order.end(), 0);
      for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
      cursor = 0;
    }
    const auto idx = torch::from_blob(order.data() + cursor, {budget.batch}, torch::kInt64);
    cursor += budget.batch;
    auto xb = x_all.index_select(0, idx);
    if (budget.augment) xb = augment(xb, rng);
    const auto yb = y_all.index_select(0, idx);
    optimizer->zero_grad();
    const auto loss = F::cross_entropy(net->forward(xb), yb);
    if (!std::isfinite(loss.item<double>())) break;  // diverged: evaluate what there is
    loss.backward();
    optimizer->step();
  }
  Metrics m = design_cost(family, d, in);
  m["train_s"] = elapsed();
  m["epochs"] = static_cast<double>(step) * budget.batch / per_epoch;

  const Dataset* vd = &val;
  Dataset capped;
  if (eval.max_eval && eval.max_eval < val.count) {
    std::vector<std::size_t> first(eval.max_eval);
    std::iota(first.begin(), first.end(), 0);
    capped = subset(val, first);
    vd = &capped;
  }
  const auto xv = images(*vd), yv = labels(*vd);
  const Quality q = evaluate(*net, xv, yv);
  m["accuracy"] = q.accuracy;
  m["loss"] = std::isfinite(q.loss) ? q.loss : 1e9;
  {
    auto gen = at::detail::createCPUGenerator(budget.seed ^ 0x9e3779b97f4a7c15ULL);
    const auto noisy = (xv + torch::randn(xv.sizes(), gen) * eval.noise_sigma).clamp(0, 1);
    m["robustness"] = evaluate(*net, noisy, yv).accuracy;
  }
  {
    torch::NoGradGuard no_grad;
    net->eval();
    const auto one = xv.slice(0, 0, 1).clone();
    const auto batch = xv.slice(0, 0, std::min<int64_t>(256, xv.size(0))).clone();
    m["latency_ms"] = median_ms([&] { net->forward(one); }, 5, 31);
    m["batch_latency_ms"] = median_ms([&] { net->forward(batch); }, 1, 5) / batch.size(0);
  }
  m["energy_mj"] = m["latency_ms"] * eval.watts;  // ms × W = mJ
  if (!save_path.empty()) save(*net, family, d, in, save_path);
  return m;
}

namespace {

// A model saved by train_and_evaluate, rebuilt from its description and filled with its weights.
struct Loaded {
  std::shared_ptr<Net> net;
  std::string family;
  InputShape in;
};

Loaded load_saved(const std::string& path) {
  std::ifstream jf(path + ".json");
  if (!jf) throw Error(path + ".json: cannot open the model description");
  Loaded m;
  try {
    const auto j = nlohmann::json::parse(jf);
    const auto& s = j.at("input");
    m.in = InputShape{s.at("channels"), s.at("height"), s.at("width"), s.at("classes")};
    m.family = j.at("family");
    m.net = build(m.family, Design::from_json(j.at("design").dump()), m.in, 1);
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ".json: not a gng model description (" + e.what() + ")");
  }
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(path + ": cannot open");
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  c10::impl::GenericDict dict(c10::StringType::get(), c10::TensorType::get());
  try {
    dict = torch::pickle_load(bytes).toGenericDict();
  } catch (const std::exception& e) {
    throw Error(path + ": not a gng model state dict (" + std::string(e.what()).substr(0, 200) + ")");
  }
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : state(*m.net)) {
    const auto it = dict.find(name);
    if (it == dict.end()) throw Error(path + ": missing tensor '" + name + "'");
    const auto v = it->value().toTensor();
    if (v.sizes() != t.sizes()) throw Error(path + ": tensor '" + name + "' has the wrong shape");
    t.copy_(v);
  }
  m.net->eval();
  return m;
}

}  // namespace

double saved_accuracy(const std::string& path, const Dataset& data) {
  const Loaded m = load_saved(path);
  return evaluate(*m.net, images(data), labels(data)).accuracy;
}

// The module is only read after loading (eval mode, inference mode per call: no autograd state, no
// buffer updates), which libtorch allows from several threads at once.
struct Predictor::Impl {
  Loaded m;
  int64_t features;
};

Predictor::Predictor(const std::string& path) : impl_(new Impl{load_saved(path), 0}) {
  const InputShape& in = impl_->m.in;
  impl_->features = static_cast<int64_t>(in.channels) * in.height * in.width;
}
Predictor::~Predictor() = default;
Predictor::Predictor(Predictor&&) noexcept = default;
Predictor& Predictor::operator=(Predictor&&) noexcept = default;

const InputShape& Predictor::shape() const { return impl_->m.in; }
const std::string& Predictor::family() const { return impl_->m.family; }

Predictor::Prediction Predictor::predict(std::span<const float> pixels) const {
  const InputShape& in = impl_->m.in;
  const auto f = static_cast<std::size_t>(impl_->features);
  if (pixels.size() % f != 0)
    throw Error("predict: " + std::to_string(pixels.size()) + " values are not a whole number of " +
                std::to_string(in.channels) + "x" + std::to_string(in.height) + "x" + std::to_string(in.width) + " images");
  const auto n = static_cast<int64_t>(pixels.size() / f);
  Prediction p;
  if (n == 0) return p;
  c10::InferenceMode inference;
  const auto x = torch::from_blob(const_cast<float*>(pixels.data()), {n, in.channels, in.height, in.width}, torch::kFloat32);
  const auto logits = impl_->m.net->forward(x).contiguous();
  const auto classes = logits.argmax(1).to(torch::kInt32).contiguous();
  p.logits.assign(logits.data_ptr<float>(), logits.data_ptr<float>() + logits.numel());
  p.classes.assign(classes.data_ptr<int32_t>(), classes.data_ptr<int32_t>() + n);
  return p;
}

}  // namespace gng
