#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <httplib.h>
#include <poll.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "core/file.h"
#include "data/dataset.h"
#include "nn/nn.h"
#include "secure/crypto.h"
#include "serve/serve.h"
#include "support/error_of.h"

namespace gng {
namespace {

using json = nlohmann::json;
using test::error_of;

std::vector<std::size_t> range(std::size_t from, std::size_t to) {
  std::vector<std::size_t> v(to - from);
  std::iota(v.begin(), v.end(), from);
  return v;
}

// A tiny CNN trained for half an epoch on 1000 Fashion-MNIST images, the drift reference (2000
// other training images) and held-out test images.
struct Fixture {
  std::string model;
  Dataset reference, held_out;
};
const Fixture& fixture() {
  static const Fixture f = [] {
    init_training_runtime();
    const Dataset tr = read_mnist_dir(kFashionMnistDir, true), te = read_mnist_dir(kFashionMnistDir, false);
    Fixture x;
    x.reference = subset(tr, range(1000, 3000));
    x.held_out = subset(te, range(0, 1000));
    x.model = testing::TempDir() + "gng-serve-model-" + std::to_string(getpid()) + ".pt";
    TrainBudget budget;
    budget.epochs = 2;
    budget.batch = 32;
    EvalSettings eval;
    eval.max_eval = 100;
    train_and_evaluate("cnn", Design{{{"width", "4"}, {"depth", "1"}}}, subset(tr, range(0, 1000)), x.held_out, budget, eval,
                       x.model);
    return x;
  }();
  return f;
}

std::span<const float> images(const Dataset& d, std::size_t first, std::size_t n) {
  return {d.pixels.data() + first * d.features(), n * d.features()};
}

std::string json_body(std::span<const float> x, std::size_t features) {
  json inputs = json::array();
  for (std::size_t i = 0; i < x.size() / features; ++i)
    inputs.push_back(std::vector<float>(x.begin() + i * features, x.begin() + (i + 1) * features));
  return json{{"inputs", inputs}}.dump();
}
std::string raw_body(std::span<const float> x) { return std::string(reinterpret_cast<const char*>(x.data()), x.size_bytes()); }

// A server on a free loopback port and a keep-alive client to it.
struct Running {
  serve::Server server;
  int port;
  httplib::Client client;
  explicit Running(serve::Options o = {})
      : server(fixture().model, fixture().reference, (o.port = 0, o)), port(server.start()), client("127.0.0.1", port) {
    client.set_keep_alive(true);
    client.set_tcp_nodelay(true);  // headers and body go out in two writes: no Nagle delay between them
    client.set_read_timeout(60);
  }
  httplib::Result post(const std::string& path, const std::string& body, const char* type = "application/json") {
    return client.Post(path.c_str(), body, type);
  }
  json get_json(const std::string& path) {
    auto r = client.Get(path.c_str());
    EXPECT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    return json::parse(r->body);
  }
};

std::vector<double> softmax(const float* z, std::size_t k) {
  std::vector<double> p(k);
  const double top = *std::max_element(z, z + k);
  double sum = 0;
  for (std::size_t c = 0; c < k; ++c) sum += p[c] = std::exp(static_cast<double>(z[c]) - top);
  for (double& v : p) v /= sum;
  return p;
}

// --- Predictor ------------------------------------------------------------------------------------

TEST(Predictor, LoadsTheSavedModel) {
  const Fixture& f = fixture();
  const Predictor p(f.model);
  EXPECT_EQ(p.family(), "cnn");
  EXPECT_EQ(p.shape().channels, 1);
  EXPECT_EQ(p.shape().height, 28);
  EXPECT_EQ(p.shape().width, 28);
  EXPECT_EQ(p.shape().classes, 10);
  const auto out = p.predict(images(f.held_out, 0, 500));
  ASSERT_EQ(out.classes.size(), 500u);
  ASSERT_EQ(out.logits.size(), 5000u);
  std::size_t correct = 0;
  for (std::size_t i = 0; i < 500; ++i) {
    const float* z = out.logits.data() + i * 10;
    EXPECT_EQ(out.classes[i], std::max_element(z, z + 10) - z);
    correct += out.classes[i] == f.held_out.labels[i];
  }
  // saved_accuracy evaluates in batches of 500 too: the same forward passes.
  EXPECT_DOUBLE_EQ(static_cast<double>(correct) / 500, saved_accuracy(f.model, subset(f.held_out, range(0, 500))));
  EXPECT_GT(correct, 250u);  // it learnt something
  EXPECT_TRUE(p.predict({}).classes.empty());
}

TEST(Predictor, RejectsMissingModelsAndPartialImages) {
  EXPECT_EQ(error_of([] { Predictor("/nonexistent/model.pt"); }), "/nonexistent/model.pt.json: cannot open the model description");
  const Predictor p(fixture().model);
  const std::vector<float> x(783, 0.5f);
  EXPECT_EQ(error_of([&] { p.predict(x); }), "predict: 783 values are not a whole number of 1x28x28 images");
}

TEST(Predictor, RefusesWeightsThatAreNotTheSavedOnes) {
  const std::string model = fixture().model, copy = testing::TempDir() + "gng-tampered-" + std::to_string(getpid()) + ".pt";
  std::string weights = read_file(model);
  const json description = json::parse(read_file(model + ".json"));
  const std::string saved = description["sha256"];
  EXPECT_EQ(saved, secure::hex(secure::sha256(secure::view(weights))));
  // A flipped byte inside the weights (the zip's CRC then fails too): refused before parsing, with
  // both digests named.
  weights[weights.size() / 2] ^= 0x40;
  write_file_atomic(copy, weights);
  write_file_atomic(copy + ".json", description.dump());
  const std::string flipped = secure::hex(secure::sha256(secure::view(weights)));
  EXPECT_EQ(error_of([&] { Predictor p(copy); }), copy + ": its SHA-256 is " + flipped + " but " + copy + ".json names " +
                                                       saved + ": the weights changed since they were saved; refusing to load them");
  // With a description naming its new digest, the flipped file loads (libtorch checks no CRC: the
  // digest is what notices); the file cut short fails in libtorch, whose error comes without its
  // backtrace.
  json renamed = description;
  renamed["sha256"] = flipped;
  write_file_atomic(copy + ".json", renamed.dump());
  EXPECT_NO_THROW(Predictor p(copy));
  const std::string half = weights.substr(0, weights.size() / 2);
  write_file_atomic(copy, half);
  renamed["sha256"] = secure::hex(secure::sha256(secure::view(half)));
  write_file_atomic(copy + ".json", renamed.dump());
  const std::string broken = error_of([&] { Predictor p(copy); });
  EXPECT_EQ(broken.rfind(copy + ": not a gng model state dict (", 0), 0u) << broken;
  EXPECT_EQ(broken.find("Exception raised from"), std::string::npos) << broken;
  EXPECT_EQ(broken.find("frame #"), std::string::npos) << broken;
  // A description that names no digest: refused, not loaded unchecked.
  json unnamed = description;
  unnamed.erase("sha256");
  write_file_atomic(copy, read_file(model));
  write_file_atomic(copy + ".json", unnamed.dump());
  EXPECT_NE(error_of([&] { Predictor p(copy); }).find("names no \"sha256\" of its weights"), std::string::npos);
  // And gng serve says the same and exits 1.
  write_file_atomic(copy, weights);
  write_file_atomic(copy + ".json", description.dump());
  const std::string out = testing::TempDir() + "gng-tampered-serve.txt";
  const int rc = std::system((std::string(GNG_BINARY) + " serve " + copy + " --listen 127.0.0.1:0 > " + out + " 2>&1").c_str());
  EXPECT_EQ(WEXITSTATUS(rc), 1);
  const std::string said = read_file(out);
  EXPECT_NE(said.find("its SHA-256 is " + flipped + " but"), std::string::npos) << said;
  EXPECT_EQ(said.find("frame #"), std::string::npos) << said;
}

TEST(Predictor, ConcurrentCallsGiveTheSequentialAnswers) {
  const Fixture& f = fixture();
  const Predictor p(f.model);
  std::vector<std::vector<float>> expected;
  for (std::size_t t = 0; t < 4; ++t) expected.push_back(p.predict(images(f.held_out, t * 50, 50)).logits);
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int k = 0; k < 30; ++k) mismatches[t] += p.predict(images(f.held_out, t * 50, 50)).logits != expected[t];
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

// --- predict --------------------------------------------------------------------------------------

TEST(Serve, JsonPredictionsAreThePredictors) {
  const Fixture& f = fixture();
  Running s;
  const auto x = images(f.held_out, 0, 20);
  const auto r = s.post("/v1/predict", json_body(x, 784));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/json");
  const json j = json::parse(r->body);
  const auto direct = Predictor(f.model).predict(x);
  EXPECT_EQ(j["classes"].get<std::vector<int>>(), direct.classes);
  ASSERT_EQ(j["probabilities"].size(), 20u);
  for (std::size_t i = 0; i < 20; ++i) {
    const auto p = j["probabilities"][i].get<std::vector<double>>();
    const auto q = softmax(direct.logits.data() + i * 10, 10);
    ASSERT_EQ(p.size(), 10u);
    for (std::size_t c = 0; c < 10; ++c) EXPECT_NEAR(p[c], q[c], 1e-12);
    EXPECT_NEAR(std::accumulate(p.begin(), p.end(), 0.0), 1.0, 1e-9);
  }
  const std::string sha = secure::hex(secure::sha256(secure::view(read_file(f.model))));
  EXPECT_EQ(j["model"], sha);
  EXPECT_EQ(s.server.model_sha256(), sha);
}

TEST(Serve, RawAndNestedBodiesGiveTheSameAnswer) {
  const Fixture& f = fixture();
  Running s;
  const auto x = images(f.held_out, 100, 7);
  const auto flat = s.post("/v1/predict", json_body(x, 784));
  const auto raw = s.post("/v1/predict", raw_body(x), "application/octet-stream");
  ASSERT_TRUE(flat && raw);
  EXPECT_EQ(flat->status, 200);
  EXPECT_EQ(raw->status, 200);
  EXPECT_EQ(raw->body, flat->body);
  // Nested C×H×W, and H×W for a one-channel model; a charset parameter on the type is fine.
  json chw = json::array(), hw = json::array();
  for (std::size_t i = 0; i < 7; ++i) {
    json rows = json::array();
    for (std::size_t y = 0; y < 28; ++y) rows.push_back(std::vector<float>(x.begin() + i * 784 + y * 28, x.begin() + i * 784 + y * 28 + 28));
    chw.push_back(json::array({rows}));
    hw.push_back(rows);
  }
  const auto a = s.post("/v1/predict", json{{"inputs", chw}}.dump(), "application/json; charset=utf-8");
  const auto b = s.post("/v1/predict", json{{"inputs", hw}}.dump());
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->body, flat->body);
  EXPECT_EQ(b->body, flat->body);
}

TEST(Serve, BadRequestsGetClearErrors) {
  const Fixture& f = fixture();
  serve::Options o;
  o.max_batch = 8;
  Running s(o);
  const auto one = images(f.held_out, 0, 1);
  auto error = [&](const std::string& path, const std::string& body, const char* type, int status) {
    const auto r = s.post(path, body, type);
    if (!r) return std::string("no answer");
    EXPECT_EQ(r->status, status) << r->body;
    EXPECT_EQ(r->get_header_value("Content-Type"), "application/json");
    return json::parse(r->body).at("error").get<std::string>();
  };
  const char* js = "application/json";
  EXPECT_EQ(error("/v1/predict", "{\"inputs\": [[0.5, ", js, 400),
            "malformed JSON: parse error at line 1, column 19: syntax error while parsing value - unexpected end of input; "
            "expected '[', '{', or a literal");
  EXPECT_EQ(error("/v1/predict", "{\"images\": []}", js, 400), "expected a JSON object with \"inputs\": [image, ...]");
  EXPECT_EQ(error("/v1/predict", "{\"inputs\": []}", js, 400), "no images: send at least one");
  std::vector<float> short_image(one.begin(), one.end() - 1);
  EXPECT_EQ(error("/v1/predict", json{{"inputs", {short_image}}}.dump(), js, 400),
            "inputs[0]: expected an image of 1x28x28 = 784 numbers, flat or nested (CxHxW, or HxW for one channel)");
  std::vector<float> bright(one.begin(), one.end());
  bright[17] = 1.5f;
  EXPECT_EQ(error("/v1/predict", json_body(bright, 784), js, 400), "inputs[0], pixel 17: 1.5 is outside [0, 1]");
  json text = json::parse(json_body(one, 784));
  text["inputs"][0][3] = "0.5";
  EXPECT_EQ(error("/v1/predict", text.dump(), js, 400), "inputs[0], pixel 3: not a number");
  // A number beyond double's range is the client's error (it was a 500).
  std::string huge = "{\"inputs\": [[1e400";
  for (int i = 1; i < 784; ++i) huge += ", 0";
  huge += "]]}";
  EXPECT_EQ(error("/v1/predict", huge, js, 400).rfind("malformed JSON: ", 0), 0u);
  std::vector<float> nan(one.begin(), one.end());
  nan[5] = std::nanf("");
  EXPECT_EQ(error("/v1/predict", raw_body(nan), "application/octet-stream", 400), "image 0, pixel 5: not a finite number");
  EXPECT_EQ(error("/v1/predict", raw_body(one).substr(4), "application/octet-stream", 400),
            "a raw body of 3132 bytes is not a whole number of 1x28x28 float32 images (3136 bytes each)");
  EXPECT_EQ(error("/v1/predict", raw_body(images(f.held_out, 0, 9)), "application/octet-stream", 413),
            "9 images in one request; the limit is 8");
  EXPECT_EQ(error("/v1/predict", json_body(images(f.held_out, 0, 9), 784), js, 413), "9 images in one request; the limit is 8");
  EXPECT_EQ(error("/v1/predict", "0.5", "text/plain", 415),
            "Content-Type must be application/json or application/octet-stream, got 'text/plain'");
  EXPECT_EQ(error("/v1/feedback", raw_body(one), "application/octet-stream", 415),
            "Content-Type must be application/json, got 'application/octet-stream'");
  json fb = json::parse(json_body(images(f.held_out, 0, 2), 784));
  fb["labels"] = {3};
  EXPECT_EQ(error("/v1/feedback", fb.dump(), js, 400), "expected \"labels\": an array of 2 class indices, one per input");
  fb["labels"] = {3, 10};
  EXPECT_EQ(error("/v1/feedback", fb.dump(), js, 400), "labels[1]: expected an integer class in [0, 10)");
  fb["labels"] = {3, 1.5};
  EXPECT_EQ(error("/v1/feedback", fb.dump(), js, 400), "labels[1]: expected an integer class in [0, 10)");
  // Routes that do not exist, and a body above the transport limit.
  const auto r = s.client.Get("/v1/nope");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(json::parse(r->body)["error"],
            "no route GET /v1/nope (POST /v1/predict, POST /v1/feedback, GET /v1/telemetry, GET /metrics, GET /healthz)");
  httplib::Client fresh("127.0.0.1", s.port);
  const auto big = fresh.Post("/v1/predict", std::string(8 * 784 * 24 + (64 << 10) + 1, ' '), "application/json");
  ASSERT_TRUE(big);
  EXPECT_EQ(big->status, 413);
  EXPECT_EQ(json::parse(big->body)["error"], "request body larger than 216064 bytes");
  // Still serving.
  const auto ok = s.post("/v1/predict", json_body(one, 784));
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
}

// --- /metrics -------------------------------------------------------------------------------------

// Parses Prometheus text format 0.0.4: every line a HELP, a TYPE or a sample `name{labels} value`,
// every sample of a family whose TYPE came first. Returns "name{labels}" → value.
std::map<std::string, double> parse_prometheus(const std::string& text) {
  static const std::regex help(R"(# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .*)");
  static const std::regex type(R"(# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped))");
  static const std::regex sample(
      R"(([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*")*\})? (\S+))");
  std::map<std::string, double> out;
  std::map<std::string, std::string> types;
  std::set<std::string> helped;
  std::istringstream in(text);
  std::string line;
  EXPECT_EQ(text.back(), '\n');
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_match(line, m, help)) {
      EXPECT_TRUE(helped.insert(m[1]).second) << "second HELP for " << m[1];
    } else if (std::regex_match(line, m, type)) {
      EXPECT_TRUE(types.emplace(m[1], m[2]).second) << "second TYPE for " << m[1];
    } else if (std::regex_match(line, m, sample)) {
      std::string family = m[1];
      for (const char* suffix : {"_bucket", "_sum", "_count"})
        if (family.ends_with(suffix) && types.count(family.substr(0, family.size() - std::strlen(suffix))) &&
            types[family.substr(0, family.size() - std::strlen(suffix))] == "histogram")
          family = family.substr(0, family.size() - std::strlen(suffix));
      EXPECT_TRUE(types.count(family)) << "sample before its TYPE: " << line;
      EXPECT_TRUE(helped.count(family)) << "sample without HELP: " << line;
      const std::string v = m[3];
      double value = 0;
      if (v == "NaN")
        value = std::nan("");
      else if (v == "+Inf")
        value = INFINITY;
      else {
        std::size_t used = 0;
        value = std::stod(v, &used);
        EXPECT_EQ(used, v.size()) << line;
      }
      EXPECT_TRUE(out.emplace(std::string(m[1]) + std::string(m[2]), value).second) << "duplicate sample " << line;
    } else {
      ADD_FAILURE() << "not Prometheus text: '" << line << "'";
    }
  }
  return out;
}

TEST(Serve, MetricsAreValidPrometheusTextAndCountExactly) {
  const Fixture& f = fixture();
  Running s;
  for (std::size_t k = 0; k < 3; ++k) ASSERT_EQ(s.post("/v1/predict", json_body(images(f.held_out, k, 2), 784))->status, 200);
  ASSERT_EQ(s.post("/v1/predict", raw_body(images(f.held_out, 10, 5)), "application/octet-stream")->status, 200);
  ASSERT_EQ(s.post("/v1/predict", "{", "application/json")->status, 400);
  ASSERT_EQ(s.post("/v1/predict", "{}", "application/json")->status, 400);
  ASSERT_EQ(s.post("/v1/predict", "x", "text/csv")->status, 415);
  ASSERT_EQ(s.client.Get("/nope")->status, 404);
  ASSERT_EQ(s.client.Get("/healthz")->status, 200);

  // From other connections too: every answer is counted before it is written.
  httplib::Client other("127.0.0.1", s.port);
  const auto r = other.Get("/metrics");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  auto m = parse_prometheus(r->body);
  EXPECT_EQ(m["gng_requests_total{route=\"/v1/predict\",code=\"200\"}"], 4);
  EXPECT_EQ(m["gng_requests_total{route=\"/v1/predict\",code=\"400\"}"], 2);
  EXPECT_EQ(m["gng_requests_total{route=\"/v1/predict\",code=\"415\"}"], 1);
  EXPECT_EQ(m["gng_requests_total{route=\"other\",code=\"404\"}"], 1);
  EXPECT_EQ(m["gng_requests_total{route=\"/healthz\",code=\"200\"}"], 1);
  EXPECT_EQ(m.count("gng_requests_total{route=\"/metrics\",code=\"200\"}"), 0u);  // this scrape is not over yet
  EXPECT_EQ(m["gng_predictions_total"], 11);
  EXPECT_EQ(m["gng_request_duration_seconds_count"], 4);
  EXPECT_EQ(m["gng_request_duration_seconds_bucket{le=\"+Inf\"}"], 4);
  EXPECT_GT(m["gng_request_duration_seconds_sum"], 0);
  double previous = 0;
  int buckets = 0;
  for (const auto& [k, v] : m)
    if (k.starts_with("gng_request_duration_seconds_bucket{le=\"0") || k.starts_with("gng_request_duration_seconds_bucket{le=\"1") ||
        k.starts_with("gng_request_duration_seconds_bucket{le=\"2") || k.starts_with("gng_request_duration_seconds_bucket{le=\"5"))
      ++buckets;
  EXPECT_EQ(buckets, 13);
  for (const char* le : {"0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf"}) {
    const double v = m.at(std::string("gng_request_duration_seconds_bucket{le=\"") + le + "\"}");
    EXPECT_GE(v, previous) << le;  // cumulative
    previous = v;
  }
  EXPECT_EQ(m["gng_model_info{sha256=\"" + s.server.model_sha256() + "\",family=\"cnn\",input=\"1x28x28\"}"], 1);
  EXPECT_TRUE(std::isnan(m["gng_feedback_accuracy"]));
  EXPECT_EQ(m["gng_feedback_total"], 0);
  EXPECT_EQ(m["gng_input_drift_window"], 11);
  EXPECT_TRUE(std::isnan(m["gng_input_drift_psi{statistic=\"mean_intensity\"}"]));  // fewer than drift_min inputs
  EXPECT_EQ(m["gng_requests_in_flight"], 0);
  EXPECT_GT(m["process_resident_memory_bytes"], 10e6);
  // The first scrape is counted in the second.
  m = parse_prometheus(other.Get("/metrics")->body);
  EXPECT_EQ(m["gng_requests_total{route=\"/metrics\",code=\"200\"}"], 1);
  EXPECT_EQ(m["gng_requests_total{route=\"/v1/predict\",code=\"200\"}"], 4);
}

// --- feedback and telemetry ------------------------------------------------------------------------

TEST(Serve, FeedbackAccuracyIsTheModelsAccuracy) {
  const Fixture& f = fixture();
  Running s;
  const Predictor p(f.model);
  std::size_t correct = 0, total = 0;
  for (std::size_t first : {0, 100, 250}) {
    const std::size_t n = first == 250 ? 50 : 100;  // uneven batches
    json body = json::parse(json_body(images(f.held_out, first, n), 784));
    body["labels"] = std::vector<int>(f.held_out.labels.begin() + first, f.held_out.labels.begin() + first + n);
    const auto r = s.post("/v1/feedback", body.dump());
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    const json j = json::parse(r->body);
    const auto classes = p.predict(images(f.held_out, first, n)).classes;
    std::size_t c = 0;
    for (std::size_t i = 0; i < n; ++i) c += classes[i] == f.held_out.labels[first + i];
    correct += c, total += n;
    EXPECT_EQ(j["count"], n);
    EXPECT_EQ(j["correct"], c);
    EXPECT_DOUBLE_EQ(j["accuracy"].get<double>(), static_cast<double>(c) / n);
    EXPECT_EQ(j["total"], total);
    EXPECT_DOUBLE_EQ(j["total_accuracy"].get<double>(), static_cast<double>(correct) / total);
  }
  const double expected = static_cast<double>(correct) / total;
  EXPECT_DOUBLE_EQ(s.get_json("/v1/telemetry")["feedback_accuracy"].get<double>(), expected);
  EXPECT_EQ(s.get_json("/v1/telemetry")["feedback_count"], 250);
  const auto m = parse_prometheus(s.client.Get("/metrics")->body);
  EXPECT_DOUBLE_EQ(m.at("gng_feedback_accuracy"), expected);
  EXPECT_EQ(m.at("gng_feedback_total"), 250);
  EXPECT_EQ(m.at("gng_predictions_total"), 0);  // feedback is not traffic
}

TEST(Serve, TelemetrySnapshot) {
  const Fixture& f = fixture();
  Running s;
  json t = s.get_json("/v1/telemetry");
  EXPECT_EQ(t["requests"], 0);
  EXPECT_TRUE(t["latency_p50_ms"].is_null());
  EXPECT_TRUE(t["feedback_accuracy"].is_null());
  EXPECT_TRUE(t["drift_psi"].is_null());
  EXPECT_EQ(t["drift"], "insufficient data");
  for (std::size_t k = 0; k < 30; ++k) ASSERT_EQ(s.post("/v1/predict", json_body(images(f.held_out, k, 4), 784))->status, 200);
  ASSERT_EQ(s.post("/v1/predict", "[", "application/json")->status, 400);
  t = s.get_json("/v1/telemetry");
  EXPECT_EQ(t["model"], s.server.model_sha256());
  EXPECT_EQ(t["family"], "cnn");
  EXPECT_EQ(t["requests"], 31);
  EXPECT_EQ(t["errors"], 1);
  EXPECT_EQ(t["rejected_busy"], 0);
  EXPECT_EQ(t["predictions"], 120);
  const double p50 = t["latency_p50_ms"], p90 = t["latency_p90_ms"], p99 = t["latency_p99_ms"];
  EXPECT_GT(p50, 0);
  EXPECT_LE(p50, p90);
  EXPECT_LE(p90, p99);
  EXPECT_LT(p99, 1000);
  EXPECT_GT(t["throughput_rps"].get<double>(), 0);
  EXPECT_EQ(t["drift_window"], 120);
  EXPECT_TRUE(t["drift_psi"].is_number());
  EXPECT_GT(t["rss_bytes"].get<double>(), 10e6);
  EXPECT_GT(t["uptime_s"].get<double>(), 0);
  json again = s.get_json("/v1/telemetry");
  again.update({{"uptime_s", t["uptime_s"]}, {"rss_bytes", t["rss_bytes"]}, {"throughput_rps", t["throughput_rps"]}});
  EXPECT_EQ(again, t) << "a telemetry pull changes nothing it reports";
  EXPECT_EQ(json::parse(s.server.telemetry())["requests"], 31);
  EXPECT_EQ(s.get_json("/healthz"), (json{{"status", "ok"}, {"model", s.server.model_sha256()}}));
}

// --- drift ----------------------------------------------------------------------------------------

TEST(Drift, PopulationStabilityIndex) {
  const std::vector<double> e = {0.25, 0.25, 0.25, 0.25};
  EXPECT_EQ(serve::psi(e, e), 0);
  const std::vector<double> a = {0.1, 0.2, 0.3, 0.4};
  const double want = (0.1 - 0.25) * std::log(0.1 / 0.25) + (0.2 - 0.25) * std::log(0.2 / 0.25) +
                      (0.3 - 0.25) * std::log(0.3 / 0.25) + (0.4 - 0.25) * std::log(0.4 / 0.25);
  EXPECT_DOUBLE_EQ(serve::psi(e, a), want);
  // An empty bin counts as a fraction of 1e-4, not as impossible.
  const std::vector<double> z = {0, 0.5, 0.25, 0.25};
  EXPECT_DOUBLE_EQ(serve::psi(e, z), (1e-4 - 0.25) * std::log(1e-4 / 0.25) + 0.25 * std::log(2.0));
  EXPECT_EQ(error_of([&] { serve::psi(e, std::vector<double>{1}); }), "psi: the two distributions have different numbers of bins");
}

std::vector<float> shifted(std::span<const float> x, float brightness, float noise, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0, noise > 0 ? noise : 1);
  std::vector<float> out(x.begin(), x.end());
  for (float& v : out) v = std::clamp(v + brightness + (noise > 0 ? n(rng) : 0.0f), 0.0f, 1.0f);
  return out;
}

TEST(Drift, HeldOutImagesAreStableShiftedOrNoisyOnesAreNot) {
  const Fixture& f = fixture();
  serve::Options o;
  o.drift_window = 500;
  Running s(o);
  auto psi_after = [&](const std::vector<float>& x) {
    for (std::size_t k = 0; k < 5; ++k)
      EXPECT_EQ(s.post("/v1/predict", raw_body(std::span(x).subspan(k * 100 * 784, 100 * 784)), "application/octet-stream")->status, 200);
    return s.get_json("/v1/telemetry");
  };
  const auto held = images(f.held_out, 500, 500);
  json t = psi_after(std::vector<float>(held.begin(), held.end()));
  EXPECT_EQ(t["drift_window"], 500);
  EXPECT_LT(t["drift_psi"].get<double>(), 0.1) << t;
  EXPECT_EQ(t["drift"], "stable");
  t = psi_after(shifted(held, 0.15f, 0, 1));  // brighter: the window now holds only shifted inputs
  EXPECT_GT(t["drift_psi_mean_intensity"].get<double>(), 0.25) << t;
  EXPECT_EQ(t["drift"], "shift");
  t = psi_after(shifted(held, 0, 0.3f, 2));  // noisy
  EXPECT_GT(t["drift_psi"].get<double>(), 0.25) << t;
  EXPECT_EQ(t["drift"], "shift");
  t = psi_after(std::vector<float>(held.begin(), held.end()));  // back to normal
  EXPECT_LT(t["drift_psi"].get<double>(), 0.1) << t;
  const auto m = parse_prometheus(s.client.Get("/metrics")->body);
  EXPECT_DOUBLE_EQ(m.at("gng_input_drift_psi{statistic=\"mean_intensity\"}"), t["drift_psi_mean_intensity"].get<double>());
  EXPECT_DOUBLE_EQ(m.at("gng_input_drift_psi{statistic=\"std_intensity\"}"), t["drift_psi_std_intensity"].get<double>());
}

TEST(Drift, RejectsAReferenceOfAnotherShape) {
  Dataset small;
  small.count = 1, small.channels = 1, small.height = 4, small.width = 4, small.classes = 1;
  small.pixels.assign(16, 0.5f);
  small.labels = {0};
  EXPECT_EQ(error_of([&] { serve::Server(fixture().model, small); }),
            "drift reference: images of 1x4x4, but the model takes 1x28x28");
  EXPECT_EQ(error_of([] { serve::Drift(Dataset{}); }), "drift reference: the dataset is empty");
}

// --- admission and stopping -------------------------------------------------------------------------

TEST(Serve, BusyBeyondMaxInflight) {
  const Fixture& f = fixture();
  serve::Options o;
  o.max_inflight = 1;
  o.max_batch = 1000;
  Running s(o);
  // Four clients sending the largest batches at once: with one request admitted at a time, the
  // others are turned away until it is done.
  const std::string body = raw_body(images(f.held_out, 0, 1000));
  std::atomic<int> ok{0}, busy{0}, other{0};
  std::atomic<bool> retry_after{true}, message{true};
  for (int round = 0; round < 20 && (busy == 0 || ok == 0); ++round) {
    std::vector<std::thread> clients;
    for (int c = 0; c < 4; ++c)
      clients.emplace_back([&] {
        httplib::Client client("127.0.0.1", s.port);
        client.set_keep_alive(true);
        client.set_read_timeout(60);
        for (int k = 0; k < 5; ++k) {
          const auto r = client.Post("/v1/predict", body, "application/octet-stream");
          if (!r) {
            ++other;
          } else if (r->status == 200) {
            ++ok;
          } else if (r->status == 503) {
            ++busy;
            if (r->get_header_value("Retry-After") != "1") retry_after = false;
            if (json::parse(r->body)["error"] != "busy: 1 requests in flight; retry after 1 s") message = false;
          } else {
            ++other;
          }
        }
      });
    for (auto& t : clients) t.join();
  }
  EXPECT_GT(ok, 0);
  EXPECT_GT(busy, 0);
  EXPECT_EQ(other, 0);
  EXPECT_TRUE(retry_after);
  EXPECT_TRUE(message);
  const auto m = parse_prometheus(s.client.Get("/metrics")->body);
  EXPECT_EQ(m.at("gng_requests_total{route=\"/v1/predict\",code=\"200\"}"), ok.load());
  EXPECT_EQ(m.at("gng_requests_total{route=\"/v1/predict\",code=\"503\"}"), busy.load());
  EXPECT_EQ(m.at("gng_predictions_total"), 1000.0 * ok);
  EXPECT_EQ(s.get_json("/v1/telemetry")["rejected_busy"], busy.load());
}

// A plain TCP connection to the server, for what an HTTP client library would not send.
struct Raw {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  explicit Raw(int port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) throw std::runtime_error("connect failed");
  }
  ~Raw() { close(fd); }
  void send(const std::string& s) { ::send(fd, s.data(), s.size(), MSG_NOSIGNAL); }
  // The answer's status code and body once the server has sent it (or closed), waiting at most
  // `limit`; {0, ""} when nothing came.
  std::pair<int, std::string> answer(std::chrono::seconds limit) {
    std::string in;
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      char buf[4096];
      const ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      in.append(buf, static_cast<std::size_t>(n));
      const auto head = in.find("\r\n\r\n");
      const auto length = in.find("Content-Length: ");
      if (head != std::string::npos && length != std::string::npos &&
          in.size() >= head + 4 + std::stoul(in.substr(length + 16)))
        break;
    }
    if (in.rfind("HTTP/1.1 ", 0) != 0) return {0, ""};
    const auto head = in.find("\r\n\r\n");
    return {std::stoi(in.substr(9, 3)), head == std::string::npos ? "" : in.substr(head + 4)};
  }
};

TEST(Serve, IdleAndSlowConnectionsDoNotHoldUpRequests) {
  const Fixture& f = fixture();
  serve::Options o;
  o.max_inflight = 4;
  Running s(o);
  // 200 connections that send nothing and 20 that stop inside their request line: a server whose
  // fixed pool of workers each holds a connection answers nobody else until they time out (5 s).
  std::vector<std::unique_ptr<Raw>> idle;
  for (int i = 0; i < 220; ++i) {
    idle.push_back(std::make_unique<Raw>(s.port));
    if (i >= 200) idle.back()->send("POST /v1/pre");
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // all accepted
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = s.post("/v1/predict", json_body(images(f.held_out, 0, 1), f.held_out.features()));
  const auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_LT(took, std::chrono::seconds(3)) << "the request waited for idle connections to be dropped";
}

TEST(Serve, StalledRequestsGet408AndMalformedOnes400AtOnce) {
  Running s;
  const std::string head = "POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n";
  struct Case {
    std::string send;
    int status;
    std::string error;  // a part of the message
    bool prompt;        // answered within a second, not after the read timeout (10 s)
  };
  const std::vector<Case> cases = {
      {head + "Content-Length: 100\r\n\r\n{\"inputs\": [", 408, "request timed out: its bytes stopped coming for 10 s", false},
      {head + "Content-Len", 408, "request timed out", false},
      {head + "Content-Length: abc\r\n\r\n{}", 400, "Content-Length must be one decimal number of bytes, got 'abc'", true},
      {head + "Content-Length: -1\r\n\r\n{}", 400, "got '-1'", true},
      {head + "Content-Length: 99999999999999999999\r\n\r\n{}", 400, "got '99999999999999999999'", true},
      {head + "Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}", 400, "got '2' and 1 more", true},
      {"NONSENSE\r\n\r\n", 400, "malformed HTTP request", true},
      // Too large: the body is read and dropped before the answer, so that a client still sending
      // it reads the answer instead of a reset; this one stops sending, so the answer waits for it.
      {head + "Content-Length: 99999999\r\n\r\n{}", 413, "request body larger than", false},
  };
  std::vector<std::thread> clients;
  std::vector<std::string> failures(cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i)
    clients.emplace_back([&, i] {
      Raw c(s.port);
      c.send(cases[i].send);
      const auto t0 = std::chrono::steady_clock::now();
      auto [status, body] = c.answer(std::chrono::seconds(15));
      const auto took = std::chrono::steady_clock::now() - t0;
      std::string& why = failures[i];
      if (status != cases[i].status)
        why += "status " + std::to_string(status) + " after " + std::to_string(std::chrono::duration<double>(took).count()) + " s; ";
      if (body.find(cases[i].error) == std::string::npos) why += "body " + body + "; ";
      if (cases[i].prompt != (took < std::chrono::seconds(1)))
        why += "took " + std::to_string(std::chrono::duration<double>(took).count()) + " s; ";
    });
  for (auto& t : clients) t.join();
  for (std::size_t i = 0; i < cases.size(); ++i) EXPECT_EQ(failures[i], "") << cases[i].send;
  // And the server goes on serving.
  EXPECT_EQ(s.client.Get("/healthz")->status, 200);
}

TEST(Serve, StopsCleanly) {
  Running s;
  ASSERT_EQ(s.client.Get("/healthz")->status, 200);
  const auto t0 = std::chrono::steady_clock::now();
  s.client.stop();
  s.server.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  httplib::Client late("127.0.0.1", s.port);
  const auto r = late.Get("/healthz");
  EXPECT_FALSE(r);
  s.server.stop();  // idempotent
  EXPECT_EQ(error_of([&] { s.server.start(); }), "the server is already started");
  // The port is free again.
  serve::Options o;
  o.port = s.port;
  serve::Server again(fixture().model, fixture().reference, o);
  EXPECT_EQ(again.start(), s.port);
  serve::Server clash(fixture().model, fixture().reference, o);
  EXPECT_EQ(error_of([&] { clash.start(); }),
            "cannot listen on 127.0.0.1:" + std::to_string(s.port) + " (in use, or not an address here)");
}

TEST(ServeCli, ServesUntilSigterm) {
  const std::string log = testing::TempDir() + "gng-serve-cli-" + std::to_string(getpid()) + ".log";
  const std::string model = fixture().model;
  const pid_t pid = fork();
  if (pid == 0) {
    freopen(log.c_str(), "w", stdout);
    execl(GNG_BINARY, "gng", "serve", model.c_str(), "--listen", "127.0.0.1:0", "--max-inflight", "4",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  int port = 0;
  std::string out;
  for (int i = 0; i < 400 && port == 0; ++i) {
    usleep(50000);
    std::ifstream in(log);
    out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    std::smatch m;
    if (std::regex_search(out, m, std::regex("http://127\\.0\\.0\\.1:(\\d+)/v1/predict"))) port = std::stoi(m[1]);
  }
  ASSERT_GT(port, 0) << "gng serve did not start: " << out;
  EXPECT_NE(out.find("(max 4 in flight"), std::string::npos) << out;
  {
    httplib::Client c("127.0.0.1", port);
    const auto r = c.Post("/v1/predict", raw_body(images(fixture().held_out, 0, 3)), "application/octet-stream");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(json::parse(r->body)["classes"].get<std::vector<int>>(),
              Predictor(model).predict(images(fixture().held_out, 0, 3)).classes);
  }
  kill(pid, SIGTERM);
  int st = 0;
  waitpid(pid, &st, 0);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  std::ifstream in(log);
  out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  EXPECT_NE(out.find("gng serve: stopped (SIGTERM)"), std::string::npos) << out;
}

}  // namespace
}  // namespace gng
