// gng node — one site: holds its data shard, trains for the orchestrator over PQ-TLS.
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/address.h"
#include "core/args.h"
#include "core/error.h"
#include "core/yaml.h"
#include "net/enrol.h"
#include "node/node.h"
#include "secure/pki.h"
#include "qkd/kme.h"

namespace gng::cli {

int node(const std::vector<std::string>& argv) {
  Args args("gng node");
  args.option("config", "the node's YAML settings (see below)")
      .option("id", "the site's name (init)")
      .option("hosts", "comma-separated DNS names / IP addresses for its certificate (init; default: the id)")
      .option("enrol", "HOST:PORT of the operator's enrolment service (init, with --token and --ca)")
      .option("token", "the one-time enrolment token the operator gave (init)")
      .option("ca", "the CA certificate the operator gave with the token (init)")
      .flag("once", "serve one run: leave (exit 0) when the orchestrator says its run is over, as a batch job's site does")
      .flag("help", "show this help");
  args.parse(argv);
  const auto& pos = args.positional();
  if (!args.has("help") && pos.size() == 2 && pos[0] == "init") {
    if (!args.has("id")) throw Error("node init needs --id NAME");
    const std::vector<std::string> hosts = split_list(args.str("hosts"));
    const bool enrolling = args.has("enrol") || args.has("token") || args.has("ca");
    if (enrolling && !(args.has("enrol") && args.has("token") && args.has("ca")))  // before any key is made
      throw Error("node init: enrolling with a token needs --enrol HOST:PORT, --token TOKEN and --ca CA.pem");
    const std::string request = secure::request_path(pos[1], args.str("id"));
    // An enrolment tried before (its key and request here, no certificate yet) goes on with that key.
    const bool again = enrolling && std::filesystem::exists(request) &&
                       !std::filesystem::exists(pos[1] + "/issued/" + args.str("id") + ".pem");
    if (!again) secure::pki_request(pos[1], args.str("id"), hosts);
    if (enrolling) {
      net::enrol(pos[1], args.str("id"), parse_address(args.str("enrol"), "--enrol"), args.str("token"), args.str("ca"));
      std::printf("key made in %s/issued/%s.key.pem (0600; it never left this site)\n"
                  "enrolled with %s: certificate %s/issued/%s.pem, ca.pem and crl.pem in %s; name %s as pki: in node.yaml\n",
                  pos[1].c_str(), args.str("id").c_str(), args.str("enrol").c_str(), pos[1].c_str(), args.str("id").c_str(),
                  pos[1].c_str(), pos[1].c_str());
      return 0;
    }
    std::printf("key made in %s/issued/%s.key.pem (0600; it never leaves this site)\n"
                "certificate request: %s\n"
                "send it to the operator, who runs: gng pki sign CA_DIR %s --role node\n"
                "then put the certificate they send back in %s/issued/%s.pem and their ca.pem and crl.pem in %s,\n"
                "and name %s as pki: in node.yaml\n",
                pos[1].c_str(), args.str("id").c_str(), request.c_str(), request.c_str(), pos[1].c_str(), args.str("id").c_str(),
                pos[1].c_str(), pos[1].c_str());
    return 0;
  }
  if (args.has("help") || !args.has("config") || !pos.empty()) {
    std::printf(
        "usage: gng node --config node.yaml [--once]\n"
        "       gng node init DIR --id NAME [--hosts H1,H2] [--enrol HOST:PORT --token TOKEN --ca CA.pem]\n\n"
        "init: enrols a site without its key leaving it: makes the node's ML-DSA-65 key in\n"
        "DIR/issued/NAME.key.pem and a certificate request (PKCS#10) DIR/NAME.csr.pem for the\n"
        "operator to sign (gng pki sign); or, with a one-time token from the operator (gng pki\n"
        "token), sends it to their enrolment service (gng pki serve) and stores the certificate.\n\n"
        "Dials in to the orchestrator (TLS 1.3 with X25519MLKEM768 and mutual ML-DSA certificates)\n"
        "and does the work it collects there: Train, FederatedRound, Deploy, Telemetry. Nothing\n"
        "connects in to it: a site behind a firewall needs no open port. It trains on its own data,\n"
        "which never leaves it, and exchanges models only as sealed envelopes, keyed also by QKD keys\n"
        "from its ETSI GS QKD 014 KME when it has one. An orchestrator that is down or restarting is\n"
        "dialled again until it answers. Stops on SIGINT or SIGTERM; with --once, also when the\n"
        "orchestrator's run ends (a site that a batch job starts for one run).\n\n"
        "node.yaml:\n"
        "  id: n1                     # its certificate (gng pki issue DIR --role node --id n1)\n"
        "  pki: DIR                   # ca.pem, crl.pem, issued/n1.{pem,key.pem}\n"
        "  dir: DIR                   # the node's folder: models, audit.db\n"
        "  orchestrator: HOST:PORT    # where it dials in (the run's nodes.listen)\n"
        "  source: ADDR               # the address it dials from (default: the system's choice)\n"
        "  data: /usr/share/datasets/fashion-mnist   # IDX files, or a table:\n"
        "  # data: {csv: FILE, label: label, shape: [1, 28, 28], classes: 10}\n"
        "  shard: {index: 0, of: 3, partition: iid, alpha: 0.5, seed: 1}   # or partition: dirichlet\n"
        "  validation: 2000\n"
        "  workers: 1\n"
        "  kme: 127.0.0.1:8443         # its KME (gng kme); none: pqc-only envelopes\n"
        "  # a vendor's KME: kme: {address: HOST:PORT, ca: FILE, cert: FILE, key: FILE, sae_ids: {n2: SAE_B}}\n"
        "  qkd: required               # required | optional | off (default: required with a kme)\n\n%s",
        args.help().c_str());
    return args.has("help") ? 0 : 2;
  }
  const std::string path = args.str("config");
  node::NodeConfig config = node::NodeConfig::from_yaml(yaml::slurp(path), path);
  init_training_runtime();
  // A peer that vanishes mid-write (the orchestrator killed while an answer goes out) must be an
  // error on that write, not the end of the site: this process has no server to ignore it for it.
  std::signal(SIGPIPE, SIG_IGN);
  const sigset_t stop = block_stop_signals({SIGUSR1});  // SIGUSR1: the run is over (--once)
  qkd::Keys qkd;
  if (config.qkd != "off") {
    net::Limits quick;
    quick.nodelay = true;  // key requests are small: no waiting on Nagle and delayed ACKs
    auto kme = config.kme_tls ? std::make_unique<net::Client>(*config.kme_tls, config.kme.host, config.kme.port, quick)
                              : std::make_unique<net::Client>(secure::load_identity(config.pki, config.id),
                                                              secure::TrustStore::load(config.pki), config.kme.host, config.kme.port, quick);
    qkd = qkd::kme_access(std::move(kme), config.qkd == "required", config.sae_ids);
  }
  node::Node node(config, std::move(qkd));
  if (args.has("once")) node.on_end([](const std::string&) { kill(getpid(), SIGUSR1); });
  node.start();
  std::printf("gng node '%s' dialling in to %s (shard %d of %d, %zu training images; QKD %s%s)\n", config.id.c_str(),
              config.orchestrator.text().c_str(), config.shard, config.shards,
              node.train_samples(), config.qkd.c_str(),
              config.kme.port ? (" via KME " + config.kme.text()).c_str() : "");
  std::fflush(stdout);
  const int sig = wait_for_stop(stop);
  node.stop();
  std::printf("gng node '%s': %s\n", config.id.c_str(),
              sig == SIGUSR1 ? "left: the run it served is over" : sig == SIGINT ? "stopped (SIGINT)" : "stopped (SIGTERM)");
  return 0;
}

}  // namespace gng::cli
