#pragma once
// Serving a trained model to its consumers: an HTTP inference endpoint with telemetry and input drift.
// Plain HTTP on a host:port (cpp-httplib): this is the consumer-facing endpoint, not model-to-model
// traffic, which goes over the PQ-TLS RPC layer (src/net). Put it behind a TLS-terminating proxy
// when consumers are not on the same host.
//
//   POST /v1/predict    {"inputs": [image, ...]} (each image C·H·W numbers, flat or nested C×H×W, or
//                       H×W when C = 1), or an application/octet-stream body of little-endian float32
//                       N×C×H×W (N from the length); values finite and in [0, 1]
//                       → {"classes": [...], "probabilities": [[...]], "model": "<sha256>"}
//   POST /v1/feedback   {"inputs": [...], "labels": [...]} → accuracy of the model on these, and on
//                       all feedback so far
//   GET  /metrics       Prometheus text exposition format 0.0.4
//   GET  /v1/telemetry  JSON snapshot: latency percentiles, throughput, requests, errors, feedback
//                       accuracy, drift PSI, resident memory (what the orchestrator pulls)
//   GET  /healthz       {"status": "ok", ...}
//
// Errors are JSON {"error": "..."}: 400 malformed body, wrong image size, values not finite or
// outside [0, 1]; 413 more images than max_batch; 415 a content type other than those above; 503
// (with Retry-After) when max_inflight predict/feedback requests are already being handled.
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace gng::serve {

// Population stability index between a reference distribution (fractions e_b per bin) and an observed
// one (a_b): PSI = Σ_b (a_b − e_b) · ln(a_b / e_b), each fraction floored at ε = 1e-4 so that an empty
// bin counts as rare rather than impossible. Rule of thumb: < 0.1 stable, 0.1–0.25 moderate shift,
// > 0.25 significant shift. The spans must have the same length.
double psi(std::span<const double> expected, std::span<const double> observed);

// Input drift: per-image statistics (mean pixel intensity; standard deviation of the pixels) of a
// sliding window of the most recent inputs, each against the reference set's (the training data)
// distribution over `bins` bins whose edges are the reference's quantiles (about 1/bins of the
// reference in each). Thread-safe.
class Drift {
 public:
  Drift(const Dataset& reference, std::size_t window = 1000, std::size_t bins = 10);
  ~Drift();
  // Adds n images (n × features floats), dropping the oldest beyond the window.
  void add(std::span<const float> images);
  struct Psi {
    double mean = 0, std = 0;  // PSI of each statistic (NaN while the window is empty)
    std::size_t window = 0;    // images in the window
    double worst() const;      // the larger of the two
  };
  Psi psi() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct Options {
  std::string host = "127.0.0.1";
  int port = 8080;                   // 0: any free port
  int max_inflight = 64;             // predict/feedback requests being handled at once; beyond: 503
  int connections = 512;             // open connections served at once, each on its own thread (net/http.h):
                                     // idle or slow ones never hold up requests that compute
  int compute_slots = 0;             // forward passes at once (bounds CPU and memory); 0: hardware threads
  std::size_t max_batch = 256;       // images per request; beyond: 413
  std::size_t drift_window = 1000;   // recent inputs compared with the reference
  std::size_t drift_min = 100;       // fewer inputs than this in the window: no drift figure yet
};

class Server {
 public:
  // Loads the model (gng::Predictor) and the drift reference (`reference`: the training data, of the
  // model's input shape). Throws gng::Error on a bad model, a reference of another shape, bad options.
  Server(const std::string& model_path, const Dataset& reference, const Options& options = {});
  ~Server();  // stops
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and serves on background threads; returns the bound port. Throws gng::Error when the
  // address cannot be bound.
  int start();
  // Stops accepting, lets the requests in progress finish, joins the threads. Idempotent. A client
  // holding an idle keep-alive connection delays it by at most the keep-alive timeout (5 s).
  void stop();

  const std::string& model_sha256() const;  // SHA-256 of the weights file
  std::string metrics() const;               // what GET /metrics answers
  std::string telemetry() const;             // what GET /v1/telemetry answers

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gng::serve
