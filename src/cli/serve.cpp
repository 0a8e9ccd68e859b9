// gng serve — the HTTP inference endpoint for a trained model, with metrics, telemetry and drift.
#include <malloc.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/address.h"
#include "core/args.h"
#include "core/error.h"
#include "data/dataset.h"
#include "nn/nn.h"
#include "serve/serve.h"

namespace gng::cli {

int serve(const std::vector<std::string>& argv) {
  Args args("gng serve");
  args.option("listen", "HOST:PORT or [IPV6]:PORT to serve on (default 127.0.0.1:8080; port 0: any free one)")
      .option("data", std::string("training data for the drift reference: a Fashion-MNIST/MNIST directory (default ") +
                          kFashionMnistDir + ")")
      .option("max-inflight", "predict/feedback requests handled at once; beyond: 503 (default 64)")
      .option("max-batch", "images per request; beyond: 413 (default 256)")
      .option("connections", "open connections served at once, each on its own thread; beyond, new ones wait\n"
                             "                         to be accepted (default 512; an idle or slow one never holds up a request)")
      .option("drift-window", "recent inputs compared with the training data (default 1000)")
      .flag("help", "show this help");
  args.parse(argv);
  if (args.has("help")) {
    std::printf(
        "usage: gng serve MODEL [--listen HOST:PORT] [--data DIR] [--max-inflight N] [--max-batch N]\n\n"
        "Serves MODEL (saved by training: MODEL and MODEL.json) over plain HTTP for its consumers:\n"
        "  POST /v1/predict    {\"inputs\": [[...pixels in [0,1]...], ...]} or raw little-endian float32 N×C×H×W\n"
        "  POST /v1/feedback   {\"inputs\": [...], \"labels\": [...]}: accuracy on labelled feedback\n"
        "  GET  /metrics       Prometheus text format; GET /v1/telemetry: JSON snapshot; GET /healthz\n"
        "Drift: population stability index of per-image mean and deviation of the pixels, the last\n"
        "--drift-window inputs against the training data (< 0.1 stable, 0.1-0.25 moderate, > 0.25 shift).\n"
        "Put a TLS-terminating proxy in front for consumers on other hosts. Stops on SIGINT or SIGTERM.\n\n%s",
        args.help().c_str());
    return 0;
  }
  if (args.positional().size() != 1) throw Error("gng serve needs one MODEL file (see --help)");
  const std::string model = args.positional()[0];
  serve::Options opt;
  const std::string listen = args.str("listen", "127.0.0.1:8080");
  const Address address = parse_address(listen, "--listen");
  opt.host = address.host;
  opt.port = address.port;
  opt.max_inflight = static_cast<int>(args.integer("max-inflight", opt.max_inflight, 1, 4096));
  opt.max_batch = static_cast<std::size_t>(args.integer("max-batch", static_cast<int64_t>(opt.max_batch), 1, 65536));
  opt.connections = static_cast<int>(args.integer("connections", opt.connections, 1, 65536));
  opt.drift_window = static_cast<std::size_t>(args.integer("drift-window", 1000, 1, 10'000'000));

  const std::string blas = init_training_runtime();  // one intra-op thread, malloc thresholds
  std::unique_ptr<serve::Server> server;
  {
    // The reference is only needed to build the drift histograms: let it go before serving.
    const Dataset reference = read_mnist_dir(args.str("data", kFashionMnistDir), true);
    server = std::make_unique<serve::Server>(model, reference, opt);
  }
  malloc_trim(0);  // give the reference's pages back (init_training_runtime stops glibc trimming on its own)

  // Block the stop signals before any thread starts, then wait for one.
  const sigset_t stop = block_stop_signals();
  const int bound = server->start();
  std::printf("gng serve: model %s (sha256 %s) on http://%s/v1/predict (max %d in flight; BLAS: %s)\n", model.c_str(),
              server->model_sha256().c_str(), Address{opt.host, bound}.text().c_str(), opt.max_inflight, blas.c_str());
  std::fflush(stdout);
  const int sig = wait_for_stop(stop);
  server->stop();
  std::printf("gng serve: stopped (%s)\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
  return 0;
}

}  // namespace gng::cli
