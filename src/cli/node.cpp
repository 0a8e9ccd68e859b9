// gng node — one site: holds its data shard, trains for the orchestrator over PQ-TLS.
#include <csignal>
#include <cstdio>
#include <string>

#include "cli/commands.h"
#include "core/args.h"
#include "core/error.h"
#include "core/yaml.h"
#include "net/node.h"

namespace gng::cli {

int node(const std::vector<std::string>& argv) {
  Args args("gng node");
  args.option("config", "the node's YAML settings (see below)").flag("help", "show this help");
  args.parse(argv);
  if (args.has("help") || !args.has("config")) {
    std::printf(
        "usage: gng node --config node.yaml\n\n"
        "Serves the Node RPCs (Health, Train) over TLS 1.3 with X25519MLKEM768 and mutual ML-DSA\n"
        "certificates; trains on its own shard of the data, which never leaves it, and sends trained\n"
        "weights only as sealed envelopes. Stops on SIGINT or SIGTERM.\n\n"
        "node.yaml:\n"
        "  id: n1                     # its certificate (gng pki issue DIR --role node --id n1)\n"
        "  pki: DIR                   # ca.pem, crl.pem, issued/n1.{pem,key.pem}\n"
        "  dir: DIR                   # the node's folder: models, audit.db\n"
        "  listen: 127.0.0.1:0        # port 0: any free one\n"
        "  data: /usr/share/datasets/fashion-mnist\n"
        "  shard: {index: 0, of: 3, partition: iid, alpha: 0.5, seed: 1}   # or partition: dirichlet\n"
        "  validation: 2000\n"
        "  workers: 1\n\n%s",
        args.help().c_str());
    return args.has("help") ? 0 : 2;
  }
  const std::string path = args.str("config");
  net::NodeConfig config = net::NodeConfig::from_yaml(yaml::slurp(path), path);
  init_training_runtime();
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  net::Node node(config);
  const int port = node.listen();
  std::printf("gng node '%s' serving on %s:%d (shard %d of %d, %zu training images)\n", config.id.c_str(),
              config.listen.substr(0, config.listen.rfind(':')).c_str(), port, config.shard, config.shards,
              node.train_samples());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&stop, &sig);
  node.stop();
  std::printf("gng node '%s': stopped (%s)\n", config.id.c_str(), sig == SIGINT ? "SIGINT" : "SIGTERM");
  return 0;
}

}  // namespace gng::cli
