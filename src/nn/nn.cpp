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
#include "core/file.h"
#include "core/rng.h"
#include "nn/arch.h"
#include "nn/nn.h"
#include "secure/crypto.h"

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

// A module's state or a model file's tensors, by name, in order.
using Named = std::vector<std::pair<std::string, torch::Tensor>>;

// Every parameter, then every buffer, in the module's registration order: the one order of the
// model file's dict and of every fed::Update that src/nn produces.
Named state(Net& net) {
  Named out;
  for (const auto& p : net.named_parameters())
    if (p.value().defined()) out.emplace_back(p.key(), p.value());
  for (const auto& b : net.named_buffers())
    if (b.value().defined()) out.emplace_back(b.key(), b.value());
  return out;
}

std::string shape_text(c10::IntArrayRef shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Copies `from` into the module's state by name. Every tensor of the module must be there with its
// shape, and nothing else may be; integer buffers take the rounded values. gng::Error naming the
// tensor, after `where`, otherwise.
void assign(Net& net, const Named& from, const std::string& where) {
  std::map<std::string, const torch::Tensor*> by_name;
  for (const auto& [name, t] : from)
    if (!by_name.emplace(name, &t).second) throw Error(where + ": tensor '" + name + "' appears twice");
  const Named to = state(net);
  torch::NoGradGuard no_grad;
  for (const auto& [name, t] : to) {
    const auto it = by_name.find(name);
    if (it == by_name.end()) throw Error(where + ": missing tensor '" + name + "'");
    const torch::Tensor& v = *it->second;
    if (v.sizes() != t.sizes())
      throw Error(where + ": tensor '" + name + "' has shape " + shape_text(v.sizes()) + ", the design's is " +
                  shape_text(t.sizes()));
    t.copy_(v.is_floating_point() && !t.is_floating_point() ? v.round() : v);
  }
  if (from.size() != to.size())
    for (const auto& [name, t] : from)
      if (std::none_of(to.begin(), to.end(), [&](const auto& m) { return m.first == name; }))
        throw Error(where + ": tensor '" + name + "' is not part of the design");
}

// The module's state as plain float32 tensors (integer buffers converted), in state() order.
fed::Update to_update(Net& net) {
  fed::Update u;
  for (const auto& [name, t] : state(net)) {
    const auto f = t.detach().to(torch::kFloat32).contiguous();
    u.tensors.push_back({name, f.sizes().vec(), std::vector<float>(f.data_ptr<float>(), f.data_ptr<float>() + f.numel())});
  }
  return u;
}

// Views (no copy) of an update's tensors; gng::Error when a tensor's values do not fill its shape.
Named tensors_of(const fed::Update& u, const std::string& where) {
  Named out;
  for (const fed::Tensor& t : u.tensors) {
    int64_t size = 1;
    for (int64_t d : t.shape) size = d < 0 ? -1 : size * d;
    if (size < 0 || static_cast<std::size_t>(size) != t.values.size())
      throw Error(where + ": tensor '" + t.name + "' has " + std::to_string(t.values.size()) +
                  " values for shape " + shape_text(t.shape));
    out.emplace_back(t.name, torch::from_blob(const_cast<float*>(t.values.data()), t.shape, torch::kFloat32));
  }
  return out;
}

// The weights file: a pickled {name: tensor} dict in state() order, which torch.load reads. Returns
// the file's SHA-256 (hex): the model's identity.
std::string save_weights(Net& net, const std::string& path) {
  c10::Dict<std::string, at::Tensor> dict;
  for (const auto& [k, v] : state(net)) dict.insert(k, v.detach().contiguous());
  const std::vector<char> bytes = torch::pickle_save(c10::IValue(dict));
  const std::string text(bytes.begin(), bytes.end());
  write_file_atomic(path, text);
  return secure::hex(secure::sha256(secure::view(text)));
}

// The description `path`.json names the weights' digest, which every load checks.
void write_description(nlohmann::ordered_json j, const std::string& sha256, const std::string& path) {
  j["sha256"] = sha256;
  write_file_atomic(path + ".json", j.dump(2) + "\n");
}

void save(Net& net, const std::string& family, const Design& d, const InputShape& in, const std::string& path) {
  const std::string digest = save_weights(net, path);
  nlohmann::ordered_json j;
  j["format"] = "gng model v1: torch.load(path) gives {name: tensor}";
  j["family"] = family;
  j["design"] = nlohmann::ordered_json::parse(d.to_json());
  j["input"] = {{"channels", in.channels}, {"height", in.height}, {"width", in.width}, {"classes", in.classes}};
  write_description(std::move(j), digest, path);
}

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Intra-op threads for one training (see TrainBudget::threads).
class ThreadScope {
 public:
  explicit ThreadScope(int n) : n_(n) {
    if (n_ > 1) at::set_num_threads(n_);
  }
  ~ThreadScope() {
    if (n_ > 1) at::set_num_threads(1);
  }
  ThreadScope(const ThreadScope&) = delete;
  ThreadScope& operator=(const ThreadScope&) = delete;

 private:
  int n_;
};

void check_training_input(const std::string& who, const Dataset& train, const Dataset& val, const TrainBudget& budget,
                          bool need_val) {
  if (train.count == 0 || (need_val && val.count == 0))
    throw Error(who + (need_val ? ": empty training or validation set" : ": empty training set"));
  if (val.count && train.features() != val.features()) throw Error(who + ": training and validation shapes differ");
  if (budget.batch < 1 || !(budget.epochs > 0)) throw Error(who + ": batch and epochs must be positive");
}

InputShape training_shape(const Dataset& train, const Dataset& val) {
  InputShape in = shape_of(train);
  in.classes = std::max(train.classes, val.classes);
  return in;
}

// The design's optimizer over the module's parameters, at the design's learning rate.
std::unique_ptr<torch::optim::Optimizer> make_optimizer(Net& net, const Design& d) {
  const std::string opt = d.text("optimizer", "adamw");
  const double lr = d.number("lr", 1e-3);
  if (opt == "sgd")
    return std::make_unique<torch::optim::SGD>(net.parameters(),
                                               torch::optim::SGDOptions(lr).momentum(0.9).nesterov(true).weight_decay(5e-4));
  if (opt == "adamw")
    return std::make_unique<torch::optim::AdamW>(net.parameters(), torch::optim::AdamWOptions(lr).weight_decay(0.01));
  throw Error("unknown optimizer '" + opt + "' (adamw, sgd)");
}

struct Progress {
  double samples = 0;  // training samples seen (steps × batch)
  double epochs = 0;   // samples / the per-epoch sample count
};

// The learning rate of step `step` of `steps` (`planned` before a wall-clock cap shortened them).
using Schedule = std::function<double(int64_t step, int64_t planned, int64_t steps)>;

// Optimizer steps over reshuffled batches of `train` (a batch is at most the whole set) for
// budget.epochs passes of budget.samples (0: all), seeded by budget.seed. budget.seconds, counted
// from `start` (so that it includes the caller's set-up), caps the time: the steps that fit are
// estimated on the first ones, so that a schedule still ends, and training stops between batches.
// `penalty`, when set, is added to the cross-entropy. A non-finite loss stops training.
Progress run_steps(Net& net, torch::optim::Optimizer& optimizer, const Dataset& train, const TrainBudget& budget,
                   Clock::time_point start, const Schedule& rate, const std::function<torch::Tensor()>& penalty = {}) {
  const torch::Tensor x_all = images(train), y_all = labels(train);
  const int64_t batch = std::min<int64_t>(budget.batch, static_cast<int64_t>(train.count));
  const std::size_t per_epoch = budget.samples ? std::min(budget.samples, train.count) : train.count;
  const int64_t planned = std::max<int64_t>(1, std::llround(budget.epochs * per_epoch / batch));
  Rng rng(budget.seed, 0x7a1);
  std::vector<int64_t> order(train.count);
  std::size_t cursor = train.count;  // reshuffle on first use
  int64_t step = 0;
  net.train();
  const double setup = seconds_since(start);
  int64_t steps = planned;
  for (; step < steps; ++step) {
    if (budget.seconds > 0 && step == std::min<int64_t>(20, planned / 10) && step > 0) {
      const double per_step = (seconds_since(start) - setup) / step;
      const auto fit = static_cast<int64_t>(0.95 * (budget.seconds - setup) / per_step);
      if (fit < steps) steps = std::max(step + 1, fit);
    }
    if (budget.seconds > 0 && seconds_since(start) > budget.seconds) break;
    const double lr = rate(step, planned, steps);
    for (auto& g : optimizer.param_groups()) g.options().set_lr(lr);
    if (cursor + batch > order.size()) {
      std::iota(order.begin(), order.end(), 0);
      for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
      cursor = 0;
    }
    const auto idx = torch::from_blob(order.data() + cursor, {batch}, torch::kInt64);
    cursor += batch;
    auto xb = x_all.index_select(0, idx);
    if (budget.augment) xb = augment(xb, rng);
    const auto yb = y_all.index_select(0, idx);
    optimizer.zero_grad();
    auto loss = F::cross_entropy(net.forward(xb), yb);
    if (penalty) loss = loss + penalty();
    if (!std::isfinite(loss.item<double>())) break;  // diverged: evaluate what there is
    loss.backward();
    optimizer.step();
  }
  const double seen = static_cast<double>(step * batch);
  return {seen, seen / static_cast<double>(per_epoch)};
}

// The module's cost and its quality on `val` (at most eval.max_eval samples): accuracy, loss,
// robustness (noise seeded by `seed`), latencies and energy.
Metrics measure(Net& net, const std::string& family, const Design& d, const InputShape& in, const Dataset& val,
                const EvalSettings& eval, uint64_t seed) {
  Metrics m = design_cost(family, d, in);
  const Dataset* vd = &val;
  Dataset capped;
  if (eval.max_eval && eval.max_eval < val.count) {
    std::vector<std::size_t> first(eval.max_eval);
    std::iota(first.begin(), first.end(), 0);
    capped = subset(val, first);
    vd = &capped;
  }
  const auto xv = images(*vd), yv = labels(*vd);
  const Quality q = evaluate(net, xv, yv);
  m["accuracy"] = q.accuracy;
  m["loss"] = std::isfinite(q.loss) ? q.loss : 1e9;
  {
    auto gen = at::detail::createCPUGenerator(seed ^ 0x9e3779b97f4a7c15ULL);
    const auto noisy = (xv + torch::randn(xv.sizes(), gen) * eval.noise_sigma).clamp(0, 1);
    m["robustness"] = evaluate(net, noisy, yv).accuracy;
  }
  {
    torch::NoGradGuard no_grad;
    net.eval();
    const auto one = xv.slice(0, 0, 1).clone();
    const auto batch = xv.slice(0, 0, std::min<int64_t>(256, xv.size(0))).clone();
    m["latency_ms"] = median_ms([&] { net.forward(one); }, 5, 31);
    m["batch_latency_ms"] = median_ms([&] { net.forward(batch); }, 1, 5) / batch.size(0);
  }
  m["energy_mj"] = m["latency_ms"] * eval.watts;  // ms × W = mJ
  return m;
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
  check_training_input("train_and_evaluate", train, val, budget, true);
  const InputShape in = training_shape(train, val);
  const auto start = Clock::now();
  ThreadScope threads(budget.threads);
  auto net = build(family, d, in, budget.seed);
  {
    const torch::Tensor x_all = images(train);
    torch::NoGradGuard no_grad;
    net->normalise->mean.fill_(x_all.mean().item<double>());
    net->normalise->stddev.fill_(x_all.std().item<double>() + 1e-6);
  }
  auto optimizer = make_optimizer(*net, d);
  const double lr = optimizer->param_groups().front().options().get_lr();
  // Cosine schedule with linear warm-up; a wall-clock cap shortens the whole schedule (run_steps)
  // rather than cutting it off with the learning rate still high.
  const Progress p = run_steps(*net, *optimizer, train, budget, start, [lr](int64_t step, int64_t planned, int64_t steps) {
    const int64_t warmup = std::max<int64_t>(1, planned / 30);
    return step < warmup ? lr * (step + 1) / warmup
                         : 0.5 * lr * (1 + std::cos(M_PI * (step - warmup) / std::max<int64_t>(1, steps - warmup)));
  });
  const double train_s = seconds_since(start);
  Metrics m = measure(*net, family, d, in, val, eval, budget.seed);
  m["train_s"] = train_s;
  m["epochs"] = p.epochs;
  if (!save_path.empty()) save(*net, family, d, in, save_path);
  return m;
}

namespace {

// A model saved by train_and_evaluate, rebuilt from its description and filled with its weights.
struct Loaded {
  std::shared_ptr<Net> net;
  std::string family;
  InputShape in;
  std::string description;  // the text of `path`.json
  std::string sha256;       // the weights' digest it names
};

// The model described by `path`.json, built (seed 1) but not loaded.
Loaded describe(const std::string& path) {
  std::ifstream jf(path + ".json", std::ios::binary);
  if (!jf) throw Error(path + ".json: cannot open the model description");
  Loaded m;
  m.description.assign(std::istreambuf_iterator<char>(jf), std::istreambuf_iterator<char>());
  try {
    const auto j = nlohmann::json::parse(m.description);
    const auto& s = j.at("input");
    m.in = InputShape{s.at("channels"), s.at("height"), s.at("width"), s.at("classes")};
    m.family = j.at("family");
    m.net = build(m.family, Design::from_json(j.at("design").dump()), m.in, 1);
    if (!j.contains("sha256") || !j["sha256"].is_string())
      throw Error(path + ".json names no \"sha256\" of its weights (saved by a gng before models were attested): "
                  "refusing a model whose identity cannot be checked; train or promote it again");
    m.sha256 = j["sha256"];
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ".json: not a gng model description (" + e.what() + ")");
  }
  return m;
}

Loaded load_saved(const std::string& path) {
  Loaded m = describe(path);
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(path + ": cannot open");
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  // The model's identity before a byte of it is parsed: what was saved (and promoted, and audited)
  // is what is loaded.
  const std::string digest = secure::hex(secure::sha256(secure::View(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size())));
  if (digest != m.sha256)
    throw Error(path + ": its SHA-256 is " + digest + " but " + path + ".json names " + m.sha256 +
                ": the weights changed since they were saved; refusing to load them");
  Named tensors;
  try {
    for (const auto& e : torch::pickle_load(bytes).toGenericDict())
      tensors.emplace_back(e.key().toStringRef(), e.value().toTensor());
  } catch (const c10::Error& e) {
    throw Error(path + ": not a gng model state dict (" + std::string(e.what_without_backtrace()).substr(0, 200) + ")");
  } catch (const std::exception& e) {
    throw Error(path + ": not a gng model state dict (" + std::string(e.what()).substr(0, 200) + ")");
  }
  assign(*m.net, tensors, path);
  m.net->eval();
  return m;
}

// A fresh module of the design with `state` in it; gng::Error naming a tensor that does not fit.
std::shared_ptr<Net> build_with(const std::string& family, const Design& d, const InputShape& in, uint64_t seed,
                                const fed::Update& state, const std::string& where) {
  auto net = build(family, d, in, seed);
  assign(*net, tensors_of(state, where), where);
  return net;
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
const std::string& Predictor::sha256() const { return impl_->m.sha256; }

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

fed::Update load_state(const std::string& path) { return to_update(*load_saved(path).net); }

void save_state(const fed::Update& state, const std::string& like, const std::string& path) {
  const Loaded m = describe(like);
  assign(*m.net, tensors_of(state, "save_state " + path), "save_state " + path);
  write_description(nlohmann::ordered_json::parse(m.description), save_weights(*m.net, path), path);
}

fed::Update initial_state(const std::string& family, const Design& d, const InputShape& in, uint64_t seed) {
  return to_update(*build(family, d, in, seed));
}

LocalResult train_from(const std::string& family, const Design& d, const fed::Update& start, const Dataset& train,
                       const Dataset& val, const TrainBudget& budget, const EvalSettings& eval, double mu, int round,
                       int rounds) {
  check_training_input("train_from", train, val, budget, false);
  if (!std::isfinite(mu) || mu < 0) throw Error("train_from: mu must be a finite number >= 0");
  if (rounds < 0 || (rounds > 0 && (round < 1 || round > rounds)))
    throw Error("train_from: round " + std::to_string(round) + " of " + std::to_string(rounds) + " is not a round");
  const InputShape in = training_shape(train, val);
  const auto clock = Clock::now();
  ThreadScope threads(budget.threads);
  auto net = build_with(family, d, in, budget.seed, start, "train_from: start");
  auto optimizer = make_optimizer(*net, d);
  const double lr = optimizer->param_groups().front().options().get_lr();
  // FedProx: mu/2 · Σ ‖w − w_start‖² over the trainable parameters.
  std::vector<torch::Tensor> params, anchors;
  std::function<torch::Tensor()> prox;
  if (mu > 0) {
    for (const auto& p : net->parameters())
      if (p.requires_grad()) params.push_back(p), anchors.push_back(p.detach().clone());
    prox = [&] {
      auto sum = torch::zeros({});
      for (std::size_t i = 0; i < params.size(); ++i) sum = sum + (params[i] - anchors[i]).pow(2).sum();
      return 0.5 * mu * sum;
    };
  }
  const Progress p = run_steps(*net, *optimizer, train, budget, clock, [=](int64_t step, int64_t, int64_t steps) {
    if (rounds == 0) return lr;
    const double t = (round - 1 + static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, steps))) / rounds;
    return 0.5 * lr * (1 + std::cos(M_PI * t));
  }, prox);
  LocalResult r;
  const double train_s = seconds_since(clock);
  r.metrics = val.count ? measure(*net, family, d, in, val, eval, budget.seed) : design_cost(family, d, in);
  r.metrics["train_s"] = train_s;
  r.metrics["epochs"] = p.epochs;
  r.state = to_update(*net);
  r.state.samples = p.samples;
  return r;
}

Metrics evaluate_state(const std::string& family, const Design& d, const fed::Update& state, const Dataset& val,
                       const EvalSettings& eval) {
  if (val.count == 0) throw Error("evaluate_state: empty validation set");
  const InputShape in = shape_of(val);
  const uint64_t seed = TrainBudget{}.seed;
  auto net = build_with(family, d, in, seed, state, "evaluate_state");
  return measure(*net, family, d, in, val, eval, seed);
}

}  // namespace gng
