// The inference endpoint: cpp-httplib's thread-per-connection server around a gng::Predictor, with
// admission control, Prometheus metrics, a telemetry snapshot and input drift.
#include "serve/serve.h"

#include <httplib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <semaphore>
#include <thread>

#include "core/address.h"
#include "core/error.h"
#include "net/http.h"
#include "nn/nn.h"

namespace gng::serve {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr double kEpsilon = 1e-4;  // floor of a bin's fraction in the PSI

// An answer with an HTTP error status and a message ({"error": message}).
struct Reject : std::runtime_error {
  Reject(int status, const std::string& message) : std::runtime_error(message), status(status) {}
  int status;
};

std::string error_body(const std::string& message) { return json{{"error", message}}.dump(); }

// Shortest text that reads back as the same double, in positional notation where that is short;
// Prometheus spells the specials NaN, +Inf, -Inf.
std::string number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  const double a = std::abs(v);
  const auto r = a == 0 || (a >= 1e-6 && a < 1e15) ? std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed)
                                                    : std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string shape_text(const InputShape& s) {
  return std::to_string(s.channels) + "x" + std::to_string(s.height) + "x" + std::to_string(s.width);
}

std::size_t resident_bytes() {
  std::ifstream f("/proc/self/statm");
  std::size_t size = 0, resident = 0;
  f >> size >> resident;
  return resident * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

// --- drift ----------------------------------------------------------------------------------------

struct Stats {
  double mean, std;
};

Stats stats_of(const float* p, std::size_t n) {
  double s = 0, s2 = 0;
  for (std::size_t i = 0; i < n; ++i) s += p[i], s2 += static_cast<double>(p[i]) * p[i];
  const double mean = s / static_cast<double>(n);
  return {mean, std::sqrt(std::max(0.0, s2 / static_cast<double>(n) - mean * mean))};
}

// Bins with the reference's quantiles as edges, and the reference's fraction in each.
struct Histogram {
  std::vector<double> edges;  // interior edges, strictly ascending: edges.size() + 1 bins
  std::vector<double> reference;

  std::size_t bin(double v) const { return std::upper_bound(edges.begin(), edges.end(), v) - edges.begin(); }

  Histogram(std::vector<double> values, std::size_t bins) {
    std::sort(values.begin(), values.end());
    const std::size_t n = values.size();
    for (std::size_t b = 1; b < bins; ++b) {
      const double q = values[b * n / bins];
      if (edges.empty() || q > edges.back()) edges.push_back(q);
    }
    reference = fractions(values);
  }
  std::vector<double> fractions(const std::vector<double>& values) const {
    std::vector<double> f(edges.size() + 1, 0.0);
    for (double v : values) f[bin(v)] += 1;
    for (double& x : f) x /= static_cast<double>(std::max<std::size_t>(values.size(), 1));
    return f;
  }
};

}  // namespace

double psi(std::span<const double> expected, std::span<const double> observed) {
  if (expected.size() != observed.size()) throw Error("psi: the two distributions have different numbers of bins");
  double sum = 0;
  for (std::size_t b = 0; b < expected.size(); ++b) {
    const double e = std::max(expected[b], kEpsilon), a = std::max(observed[b], kEpsilon);
    sum += (a - e) * std::log(a / e);
  }
  return sum;
}

double Drift::Psi::worst() const { return std::max(mean, std); }

struct Drift::Impl {
  std::size_t features, window;
  Histogram mean, std;
  mutable std::mutex m;
  std::vector<Stats> recent;  // ring of the last `window` inputs
  std::size_t next = 0;
};

Drift::Drift(const Dataset& ref, std::size_t window, std::size_t bins) {
  if (ref.count == 0 || ref.features() == 0) throw Error("drift reference: the dataset is empty");
  if (window == 0) throw Error("drift window must hold at least one image");
  if (bins < 2) throw Error("drift needs at least 2 bins");
  std::vector<double> means(ref.count), stds(ref.count);
  for (std::size_t i = 0; i < ref.count; ++i) {
    const Stats s = stats_of(ref.pixels.data() + i * ref.features(), ref.features());
    means[i] = s.mean, stds[i] = s.std;
  }
  impl_.reset(new Impl{ref.features(), window, Histogram(std::move(means), bins), Histogram(std::move(stds), bins), {}, {}, 0});
}
Drift::~Drift() = default;

void Drift::add(std::span<const float> images) {
  const std::size_t f = impl_->features, n = images.size() / f;
  std::vector<Stats> s(n);
  for (std::size_t i = 0; i < n; ++i) s[i] = stats_of(images.data() + i * f, f);
  std::lock_guard lock(impl_->m);
  for (const Stats& x : s) {
    if (impl_->recent.size() < impl_->window) {
      impl_->recent.push_back(x);
    } else {
      impl_->recent[impl_->next] = x;
      impl_->next = (impl_->next + 1) % impl_->window;
    }
  }
}

Drift::Psi Drift::psi() const {
  std::vector<double> means, stds;
  {
    std::lock_guard lock(impl_->m);
    for (const Stats& x : impl_->recent) means.push_back(x.mean), stds.push_back(x.std);
  }
  Psi p;
  p.window = means.size();
  if (means.empty()) {
    p.mean = p.std = std::nan("");
    return p;
  }
  p.mean = serve::psi(impl_->mean.reference, impl_->mean.fractions(means));
  p.std = serve::psi(impl_->std.reference, impl_->std.fractions(stds));
  return p;
}

// --- the server -----------------------------------------------------------------------------------

namespace {

constexpr std::array<double, 13> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                             0.1,    0.25,  0.5,    1,     2.5,   5};
constexpr std::size_t kRecent = 4096;   // latencies kept for the percentiles
constexpr int64_t kRateWindow = 60;     // seconds of throughput history

constexpr std::array<const char*, 5> kRoutes = {"/v1/predict", "/v1/feedback", "/v1/telemetry", "/metrics", "/healthz"};

std::string route_of(const std::string& path) {
  for (const char* r : kRoutes)
    if (path == r) return r;
  return "other";
}

// When the current request started (before its body was read): set by the pre-routing handler, read
// by the post-routing handler on the same worker thread.
thread_local Clock::time_point request_start;

std::string media_type(const httplib::Request& req) {
  std::string t = req.get_header_value("Content-Type");
  t = t.substr(0, t.find(';'));
  t.erase(0, t.find_first_not_of(" \t"));
  t.erase(t.find_last_not_of(" \t") + 1);
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
  return t;
}

std::string value_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

}  // namespace

struct Server::Impl {
  Options opt;
  Predictor model;
  InputShape in;
  std::size_t features;
  std::string sha256;
  Drift drift;
  httplib::Server http;
  std::thread thread;
  bool started = false;
  const Clock::time_point born = Clock::now();

  std::atomic<int> inflight{0};
  std::counting_semaphore<1024> compute;

  mutable std::mutex m;  // guards everything below
  std::map<std::pair<std::string, int>, uint64_t> responses;  // (route, status) → count
  std::array<uint64_t, kBuckets.size()> buckets{};             // predict 200s, not cumulative
  uint64_t duration_count = 0;
  double duration_sum = 0;
  std::vector<double> recent;  // ring of the last kRecent predict latencies (s)
  std::size_t recent_next = 0;
  std::array<std::pair<int64_t, uint64_t>, kRateWindow> per_second{};  // (second since born, predict 200s)
  uint64_t predictions = 0, feedback_total = 0, feedback_correct = 0;

  Impl(const std::string& path, const Dataset& reference, const Options& o)
      : opt(o),
        model(path),
        in(model.shape()),
        features(static_cast<std::size_t>(in.channels) * in.height * in.width),
        sha256(model.sha256()),
        drift(checked_reference(reference), o.drift_window),
        compute(std::clamp<int>(o.compute_slots > 0 ? o.compute_slots : static_cast<int>(std::thread::hardware_concurrency()), 1, 1024)) {}

  const Dataset& checked_reference(const Dataset& r) const {
    if (r.channels != static_cast<std::size_t>(in.channels) || r.height != static_cast<std::size_t>(in.height) ||
        r.width != static_cast<std::size_t>(in.width))
      throw Error("drift reference: images of " + std::to_string(r.channels) + "x" + std::to_string(r.height) + "x" +
                  std::to_string(r.width) + ", but the model takes " + shape_text(in));
    return r;
  }

  double seconds_up() const { return std::chrono::duration<double>(Clock::now() - born).count(); }

  // --- bodies → images ---------------------------------------------------------------------------

  void check_batch(std::size_t n) const {
    if (n == 0) throw Reject(400, "no images: send at least one");
    if (n > opt.max_batch)
      throw Reject(413, std::to_string(n) + " images in one request; the limit is " + std::to_string(opt.max_batch));
  }

  static void check_pixel(float v, const std::string& where, std::size_t k) {
    if (!std::isfinite(v)) throw Reject(400, where + ", pixel " + std::to_string(k) + ": not a finite number");
    if (v < 0 || v > 1) throw Reject(400, where + ", pixel " + std::to_string(k) + ": " + value_text(v) + " is outside [0, 1]");
  }

  // Whether `j` is nested arrays of exactly these sizes (leaves: anything but an array).
  static bool fits(const json& j, std::span<const int> dims) {
    if (dims.empty()) return !j.is_array();
    if (!j.is_array() || j.size() != static_cast<std::size_t>(dims[0])) return false;
    for (const auto& e : j)
      if (!fits(e, dims.subspan(1))) return false;
    return true;
  }

  static void leaves(const json& j, std::vector<float>& out, const std::string& where, std::size_t first) {
    if (j.is_array()) {
      for (const auto& e : j) leaves(e, out, where, first);
      return;
    }
    const std::size_t k = out.size() - first;
    if (!j.is_number()) throw Reject(400, where + ", pixel " + std::to_string(k) + ": not a number");
    const auto v = static_cast<float>(j.get<double>());
    check_pixel(v, where, k);
    out.push_back(v);
  }

  std::vector<float> json_images(const json& body) const {
    if (!body.is_object() || !body.contains("inputs") || !body["inputs"].is_array())
      throw Reject(400, "expected a JSON object with \"inputs\": [image, ...]");
    const json& inputs = body["inputs"];
    check_batch(inputs.size());
    const int flat[] = {static_cast<int>(features)};
    const int chw[] = {in.channels, in.height, in.width};
    const int hw[] = {in.height, in.width};
    std::vector<float> x;
    x.reserve(inputs.size() * features);
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      const json& img = inputs[i];
      const std::string where = "inputs[" + std::to_string(i) + "]";
      if (!fits(img, flat) && !fits(img, chw) && !(in.channels == 1 && fits(img, hw)))
        throw Reject(400, where + ": expected an image of " + shape_text(in) + " = " + std::to_string(features) +
                              " numbers, flat or nested (CxHxW, or HxW for one channel)");
      leaves(img, x, where, x.size());
    }
    return x;
  }

  std::vector<float> raw_images(const std::string& body) const {
    static_assert(std::endian::native == std::endian::little, "raw bodies are read as little-endian float32");
    const std::size_t per = features * sizeof(float);
    if (body.size() % per != 0)
      throw Reject(400, "a raw body of " + std::to_string(body.size()) + " bytes is not a whole number of " +
                            shape_text(in) + " float32 images (" + std::to_string(per) + " bytes each)");
    check_batch(body.size() / per);
    std::vector<float> x(body.size() / sizeof(float));
    std::memcpy(x.data(), body.data(), body.size());
    for (std::size_t i = 0; i < x.size(); ++i) check_pixel(x[i], "image " + std::to_string(i / features), i % features);
    return x;
  }

  static json parse(const std::string& body) {
    try {
      return json::parse(body);
    } catch (const json::exception& e) {  // parse_error, and out_of_range for a number such as 1e400
      std::string why = e.what();
      const auto at = why.find("] ");
      throw Reject(400, "malformed JSON: " + (at == std::string::npos ? why : why.substr(at + 2)));
    }
  }

  Predictor::Prediction infer(const std::vector<float>& x) {
    compute.acquire();
    struct Release {
      std::counting_semaphore<1024>& s;
      ~Release() { s.release(); }
    } release{compute};
    return model.predict(x);
  }

  // --- handlers ----------------------------------------------------------------------------------

  void predict(const httplib::Request& req, httplib::Response& res) {
    const std::string type = media_type(req);
    std::vector<float> x;
    if (type == "application/json")
      x = json_images(parse(req.body));
    else if (type == "application/octet-stream")
      x = raw_images(req.body);
    else
      throw Reject(415, "Content-Type must be application/json or application/octet-stream, got '" +
                            req.get_header_value("Content-Type") + "'");
    const Predictor::Prediction p = infer(x);
    drift.add(x);
    const std::size_t n = p.classes.size(), k = static_cast<std::size_t>(in.classes);
    json probabilities = json::array();
    for (std::size_t i = 0; i < n; ++i) {
      const float* z = p.logits.data() + i * k;
      const double top = *std::max_element(z, z + k);
      std::vector<double> e(k);
      double sum = 0;
      for (std::size_t c = 0; c < k; ++c) sum += e[c] = std::exp(static_cast<double>(z[c]) - top);
      for (double& v : e) v /= sum;
      probabilities.push_back(std::move(e));
    }
    {
      std::lock_guard lock(m);
      predictions += n;
    }
    res.set_content(json{{"classes", p.classes}, {"probabilities", std::move(probabilities)}, {"model", sha256}}.dump(),
                    "application/json");
  }

  void feedback(const httplib::Request& req, httplib::Response& res) {
    if (media_type(req) != "application/json")
      throw Reject(415, "Content-Type must be application/json, got '" + req.get_header_value("Content-Type") + "'");
    const json body = parse(req.body);
    const std::vector<float> x = json_images(body);
    const std::size_t n = x.size() / features;
    if (!body.contains("labels") || !body["labels"].is_array() || body["labels"].size() != n)
      throw Reject(400, "expected \"labels\": an array of " + std::to_string(n) + " class indices, one per input");
    std::vector<int> labels(n);
    for (std::size_t i = 0; i < n; ++i) {
      const json& l = body["labels"][i];
      if (!l.is_number_integer() || l.get<int64_t>() < 0 || l.get<int64_t>() >= in.classes)
        throw Reject(400, "labels[" + std::to_string(i) + "]: expected an integer class in [0, " + std::to_string(in.classes) + ")");
      labels[i] = l.get<int>();
    }
    const Predictor::Prediction p = infer(x);
    uint64_t correct = 0;
    for (std::size_t i = 0; i < n; ++i) correct += p.classes[i] == labels[i];
    uint64_t total, total_correct;
    {
      std::lock_guard lock(m);
      total = feedback_total += n;
      total_correct = feedback_correct += correct;
    }
    res.set_content(json{{"count", n},
                         {"correct", correct},
                         {"accuracy", static_cast<double>(correct) / static_cast<double>(n)},
                         {"total", total},
                         {"total_accuracy", static_cast<double>(total_correct) / static_cast<double>(total)},
                         {"model", sha256}}
                        .dump(),
                    "application/json");
  }

  // A route's handler with the error answers; `admit`: counts against max_inflight.
  httplib::Server::Handler handler(void (Impl::*f)(const httplib::Request&, httplib::Response&), bool admit) {
    return [this, f, admit](const httplib::Request& req, httplib::Response& res) {
      try {
        if (admit) {
          if (inflight.fetch_add(1) >= opt.max_inflight) {
            inflight.fetch_sub(1);
            res.set_header("Retry-After", "1");
            throw Reject(503, "busy: " + std::to_string(opt.max_inflight) + " requests in flight; retry after 1 s");
          }
        }
        struct Leave {
          std::atomic<int>* n;
          ~Leave() {
            if (n) n->fetch_sub(1);
          }
        } leave{admit ? &inflight : nullptr};
        (this->*f)(req, res);
      } catch (const Reject& r) {
        res.status = r.status;
        res.set_content(error_body(r.what()), "application/json");
      } catch (const Error& e) {
        res.status = 400;
        res.set_content(error_body(e.what()), "application/json");
      } catch (const std::exception& e) {
        res.status = 500;
        res.set_content(error_body(std::string("internal error: ") + e.what()), "application/json");
      }
    };
  }

  // Every response passes here just before it is written: the counters are exact once a client has
  // its answer.
  void record(const httplib::Request& req, const httplib::Response& res) {
    const std::string route = route_of(req.path);
    const bool timed = route == "/v1/predict" && res.status == 200;
    const double seconds = std::chrono::duration<double>(Clock::now() - request_start).count();
    const int64_t second = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - born).count();
    std::lock_guard lock(m);
    ++responses[{route, res.status}];
    if (!timed) return;
    const auto b = std::lower_bound(kBuckets.begin(), kBuckets.end(), seconds) - kBuckets.begin();
    if (b < static_cast<std::ptrdiff_t>(kBuckets.size())) ++buckets[b];
    ++duration_count;
    duration_sum += seconds;
    if (recent.size() < kRecent) {
      recent.push_back(seconds);
    } else {
      recent[recent_next] = seconds;
      recent_next = (recent_next + 1) % kRecent;
    }
    auto& slot = per_second[second % kRateWindow];
    if (slot.first != second) slot = {second, 0};
    ++slot.second;
  }

  // Bodies for errors that no handler answered (unknown route, malformed HTTP, body too large,
  // a request that stalled).
  void describe(const httplib::Request& req, httplib::Response& res, const std::string& why) const {
    std::string message;
    if (!why.empty())
      message = why;
    else if (res.status == 404)
      message = "no route " + req.method + " " + req.path +
                " (POST /v1/predict, POST /v1/feedback, GET /v1/telemetry, GET /metrics, GET /healthz)";
    else if (res.status == 413)
      message = "request body larger than " + std::to_string(payload_limit()) + " bytes";
    else if (res.status == 400)
      message = "malformed HTTP request";
    else
      message = "HTTP status " + std::to_string(res.status);
    res.set_content(error_body(message), "application/json");
  }

  // Room for max_batch images as JSON text (about 20 characters a number, at most).
  std::size_t payload_limit() const { return opt.max_batch * features * 24 + (64u << 10); }

  struct Snapshot {
    std::map<std::pair<std::string, int>, uint64_t> responses;
    std::array<uint64_t, kBuckets.size()> buckets;
    uint64_t duration_count, predictions, feedback_total, feedback_correct, last_minute;
    double duration_sum;
    std::vector<double> recent;
  };
  Snapshot snapshot() const {
    const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - born).count();
    std::lock_guard lock(m);
    Snapshot s{responses, buckets, duration_count, predictions, feedback_total, feedback_correct, 0, duration_sum, recent};
    for (const auto& [sec, count] : per_second)
      if (sec > now - kRateWindow && count > 0) s.last_minute += count;
    return s;
  }
};

Server::Server(const std::string& model_path, const Dataset& reference, const Options& options) {
  if (options.max_inflight < 1) throw Error("max_inflight must be at least 1");
  if (options.max_batch < 1) throw Error("max_batch must be at least 1");
  if (options.connections < 1 || options.connections > 65536) throw Error("connections must be in [1, 65536]");
  if (options.compute_slots < 0) throw Error("compute_slots must not be negative");
  impl_ = std::make_unique<Impl>(model_path, reference, options);
  Impl& s = *impl_;
  net::HttpLimits limits;
  limits.connections = static_cast<std::size_t>(options.connections);
  limits.max_body = s.payload_limit();
  net::HttpHooks hooks;
  hooks.before = [](const httplib::Request&) { request_start = Clock::now(); };
  hooks.after = [&s](const httplib::Request& req, const httplib::Response& res) { s.record(req, res); };
  hooks.describe = [&s](const httplib::Request& req, httplib::Response& res, const std::string& why) {
    s.describe(req, res, why);
  };
  net::guard(s.http, limits, hooks);
  s.http.set_tcp_nodelay(true);  // small answers: do not wait for the client's delayed ACK
  s.http.set_keep_alive_max_count(1000);
  s.http.Post("/v1/predict", s.handler(&Impl::predict, true));
  s.http.Post("/v1/feedback", s.handler(&Impl::feedback, true));
  s.http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics(), "text/plain; version=0.0.4; charset=utf-8");
  });
  s.http.Get("/v1/telemetry", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(telemetry(), "application/json");
  });
  s.http.Get("/healthz", [&s](const httplib::Request&, httplib::Response& res) {
    res.set_content(json{{"status", "ok"}, {"model", s.sha256}}.dump(), "application/json");
  });
}

Server::~Server() { stop(); }

int Server::start() {
  Impl& s = *impl_;
  if (s.started) throw Error("the server is already started");
  const int bound = net::bind_port(s.http, s.opt.host, s.opt.port, net::HttpLimits{}.backlog);
  auto ended = std::make_shared<std::atomic<bool>>(false);
  s.thread = std::thread([&s, ended] {
    s.http.listen_after_bind();
    *ended = true;
  });
  s.started = true;
  // Serving before returning, so that stop() cannot come before the loop it must end.
  while (!s.http.is_running() && !*ended) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (*ended) throw Error("the server on " + Address{s.opt.host, bound}.text() + " stopped as it started");
  return bound;
}

void Server::stop() {
  if (!impl_) return;
  impl_->http.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

const std::string& Server::model_sha256() const { return impl_->sha256; }

std::string Server::metrics() const {
  const Impl& s = *impl_;
  const Impl::Snapshot snap = s.snapshot();
  const Drift::Psi d = s.drift.psi();
  std::string out;
  auto family = [&](const char* name, const char* type, const char* help) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  };
  family("gng_requests_total", "counter", "HTTP responses, by route and status code.");
  for (const auto& [key, count] : snap.responses)
    out += "gng_requests_total{route=\"" + key.first + "\",code=\"" + std::to_string(key.second) + "\"} " +
           std::to_string(count) + "\n";
  family("gng_request_duration_seconds", "histogram",
         "Time to answer POST /v1/predict with 200: reading the body, checking, inference, the reply.");
  uint64_t cumulative = 0;
  for (std::size_t b = 0; b < kBuckets.size(); ++b) {
    cumulative += snap.buckets[b];
    out += "gng_request_duration_seconds_bucket{le=\"" + number(kBuckets[b]) + "\"} " + std::to_string(cumulative) + "\n";
  }
  out += "gng_request_duration_seconds_bucket{le=\"+Inf\"} " + std::to_string(snap.duration_count) + "\n";
  out += "gng_request_duration_seconds_sum " + number(snap.duration_sum) + "\n";
  out += "gng_request_duration_seconds_count " + std::to_string(snap.duration_count) + "\n";
  family("gng_requests_in_flight", "gauge", "Predict and feedback requests being handled.");
  out += "gng_requests_in_flight " + std::to_string(s.inflight.load()) + "\n";
  family("gng_predictions_total", "counter", "Images classified by POST /v1/predict.");
  out += "gng_predictions_total " + std::to_string(snap.predictions) + "\n";
  family("gng_feedback_total", "counter", "Labelled images received by POST /v1/feedback.");
  out += "gng_feedback_total " + std::to_string(snap.feedback_total) + "\n";
  family("gng_feedback_accuracy", "gauge", "Accuracy of the model on all labelled feedback (NaN before any).");
  out += "gng_feedback_accuracy " +
         number(snap.feedback_total ? static_cast<double>(snap.feedback_correct) / static_cast<double>(snap.feedback_total)
                                    : std::nan("")) +
         "\n";
  family("gng_input_drift_psi", "gauge",
         "Population stability index of a per-image input statistic, recent inputs against the training data "
         "(< 0.1 stable, 0.1-0.25 moderate, > 0.25 shift; NaN until the window holds drift_min inputs).");
  const bool enough = d.window >= s.opt.drift_min;
  out += "gng_input_drift_psi{statistic=\"mean_intensity\"} " + number(enough ? d.mean : std::nan("")) + "\n";
  out += "gng_input_drift_psi{statistic=\"std_intensity\"} " + number(enough ? d.std : std::nan("")) + "\n";
  family("gng_input_drift_window", "gauge", "Recent inputs in the drift window.");
  out += "gng_input_drift_window " + std::to_string(d.window) + "\n";
  family("gng_model_info", "gauge", "The model being served.");
  out += "gng_model_info{sha256=\"" + s.sha256 + "\",family=\"" + s.model.family() + "\",input=\"" + shape_text(s.in) +
         "\"} 1\n";
  family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
  out += "process_resident_memory_bytes " + std::to_string(resident_bytes()) + "\n";
  return out;
}

std::string Server::telemetry() const {
  const Impl& s = *impl_;
  Impl::Snapshot snap = s.snapshot();
  const Drift::Psi d = s.drift.psi();
  const double up = s.seconds_up();
  auto percentile = [&](double p) -> json {
    if (snap.recent.empty()) return nullptr;
    const auto k = static_cast<std::size_t>(std::ceil(p / 100 * static_cast<double>(snap.recent.size()))) - 1;
    std::nth_element(snap.recent.begin(), snap.recent.begin() + k, snap.recent.end());
    return snap.recent[k] * 1000;
  };
  uint64_t requests = 0, errors = 0, busy = 0;
  for (const auto& [key, count] : snap.responses) {
    if (key.first != "/v1/predict") continue;
    requests += count;
    if (key.second >= 400) errors += count;
    if (key.second == 503) busy += count;
  }
  const bool enough = d.window >= s.opt.drift_min;
  const double worst = d.worst();
  json j = {{"model", s.sha256},
            {"family", s.model.family()},
            {"uptime_s", up},
            {"requests", requests},
            {"errors", errors},
            {"rejected_busy", busy},
            {"in_flight", s.inflight.load()},
            {"predictions", snap.predictions},
            {"latency_p50_ms", percentile(50)},
            {"latency_p90_ms", percentile(90)},
            {"latency_p99_ms", percentile(99)},
            {"throughput_rps", static_cast<double>(snap.last_minute) / std::clamp(up, 1e-3, static_cast<double>(kRateWindow))},
            {"feedback_count", snap.feedback_total},
            {"feedback_accuracy", snap.feedback_total ? json(static_cast<double>(snap.feedback_correct) /
                                                             static_cast<double>(snap.feedback_total))
                                                      : json(nullptr)},
            {"drift_psi", enough ? json(worst) : json(nullptr)},
            {"drift_psi_mean_intensity", enough ? json(d.mean) : json(nullptr)},
            {"drift_psi_std_intensity", enough ? json(d.std) : json(nullptr)},
            {"drift_window", d.window},
            {"drift", !enough ? "insufficient data" : worst < 0.1 ? "stable" : worst <= 0.25 ? "moderate" : "shift"},
            {"rss_bytes", resident_bytes()}};
  return j.dump();
}

}  // namespace gng::serve
