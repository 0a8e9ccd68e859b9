#pragma once
// A node: one per site, holding its own data (raw data never leaves it). It dials out to the
// orchestrator over PQ-TLS (node/hub.h: a long poll collects its work, each answer goes back as a
// Result) and does what it is asked: Train, FederatedRound, Deploy and Telemetry; nothing connects
// in to it. A deployed model is served on the node's plain-HTTP inference endpoint (src/serve).
// `gng node --config node.yaml` runs one; the orchestrator's side of a site is NodeClient. Trained
// weights travel back only as a sealed envelope for the orchestrator (secure/envelope.h), and every
// model a node sends is entered in the node's own audit log.
//
// node.yaml:
//   id: n1                      # its certificate's name (gng pki issue --role node --id n1)
//   pki: DIR                    # the PKI directory: ca.pem, crl.pem, issued/n1.{pem,key.pem}
//   orchestrator: HOST:PORT     # where it dials in ("[IPV6]:PORT" quoted: YAML reads [..] as a list)
//   source: 10.0.0.7            # the address it dials from (default: the system's choice)
//   dir: DIR                    # the node's own folder: models, audit.db
//   data: /usr/share/datasets/fashion-mnist   # MNIST-style IDX files (the node's copy), or a CSV table:
//   # data: {csv: site.csv, label: label, shape: [1, 28, 28], classes: 10}
//   #   label: its label column (default "label"); every other column a feature, read as written,
//   #   as C×H×W (default 1×1×features); classes: the task's (default 1 + the largest label here)
//   shard: {index: 0, of: 3, partition: iid, alpha: 0.5, seed: 1}   # partition: iid | dirichlet
//   validation: 2000            # held out of the shard for the node's evaluations
//   train_limit: 0              # use only the first N training images before sharding (0 = all)
//   holdout: 0                  # the orchestrator's validation images (split off with shard.seed as
//                               # it does), never part of any shard
//   workers: 1                  # trainings at once
//   kme: 127.0.0.1:8443         # its ETSI GS QKD 014 KME (HOST:PORT or "[IPV6]:PORT", a gng kme); none: no QKD keys
//   # or a vendor's KME, over TLS with the vendor's certificates (net/rpc.h: ExternalTls):
//   # kme: {address: kme-a.example:443, ca: vendor-ca.pem, cert: sae-n1.pem, key: sae-n1.key,
//   #       groups: X25519MLKEM768:X25519, sae_ids: {n2: SAE_B, n3: SAE_C}}   # gng id → the KME's SAE ID
//   qkd: required               # required | optional | off (default: required with a kme, else off)
//
// With a KME every envelope the node seals carries a fresh QKD key (the node is the master SAE) and
// every envelope it opens names one (dec_keys); `required` refuses pqc-only envelopes and never
// sends without a key, `optional` falls back to pqc-only (and audits it) when the KME cannot deliver.
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "audit/log.h"
#include "node/exchange.h"
#include "node/hub.h"
#include "net/rpc.h"
#include "nn/nn.h"
#include "secure/envelope.h"

namespace gng::node {

struct NodeConfig {
  std::string id, pki, dir;
  std::string data;              // an IDX directory, or
  std::string csv, label = "label";  // a CSV table and its label column,
  std::vector<std::size_t> shape;    // its features as C×H×W (empty: 1×1×features)
  int classes = 0;                   // the task's classes (0: 1 + the largest label the site holds)
  Address orchestrator;          // where it dials in
  std::string source;            // the address it dials from ("" = the system's choice)
  int shard = 0, shards = 1;
  std::string partition = "iid";
  double alpha = 0.5;
  uint64_t seed = 1;
  std::size_t validation = 2000, train_limit = 0, holdout = 0;
  int workers = 1;
  Address kme;                   // its KME (kme: HOST:PORT); port 0: none
  std::optional<net::ExternalTls> kme_tls;            // a vendor's KME: how to reach it
  std::map<std::string, std::string> sae_ids;    // gng id → the SAE ID the KME knows it by
  std::string qkd = "off";       // required | optional | off

  // Strict: unknown keys, wrong types, impossible values are gng::Errors naming source and line.
  static NodeConfig from_yaml(const std::string& text, const std::string& source);
};

class Node {
 public:
  // Loads the identity and the shard; gng::Error when it cannot. `qkd`: the node's KME (see
  // qkd/kme.h: kme_access), as config.kme and config.qkd describe it.
  Node(NodeConfig config, qkd::Keys qkd);
  ~Node();
  // Dials in and keeps dialling: a lost connection, a refusal or an orchestrator that is not up yet
  // is printed and tried again (back-off up to 5 s); work is done on threads of its own.
  void start();
  void stop();                       // stops asking for work; waits for the work in hand
  // Told (on the polling thread) when the orchestrator says its run is over, with how it ended.
  // Set before start().
  void on_end(std::function<void(const std::string& how)> f);
  std::size_t train_samples() const;  // the training split (rungs); federated rounds use the whole shard

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct TrainJob {
  std::string run;
  int candidate = 0;
  std::string family, design_json;
  TrainBudget budget;
  EvalSettings eval;
  bool return_model = false;
};

struct Trained {
  Metrics metrics;
  std::string model_json, weights;  // when asked for: the opened envelope's model (else empty)
  std::string model_digest;         // SHA-256 of the sealed payload, as the envelope's header names it
};

struct RoundJob {
  std::string run;
  int round = 0, candidate = 0;
  std::string family, design_json;
  fed::Update global;
  TrainBudget budget;  // epochs (E), samples, batch, seed, augment
  double mu = 0;       // FedProx
  int rounds = 0;      // R: the learning rate decays across rounds 1..R (nn.h: train_from); 0: constant
};

struct RoundResult {
  fed::Update state;  // the node's new state (from = node id, samples = samples it trained on)
  Metrics metrics;    // train_s, epochs, the design's cost, and compute_s: the node's time for the round.
                      // A round trains on the whole shard, the node's validation split included: the
                      // orchestrator's held-out images judge the aggregate (measured: 0.4 points of test
                      // accuracy on the main job's model, docs/benchmarks.md)
};

// The orchestrator's side of one site, through the hub it dialled in to. Every envelope it seals
// carries a key from `qkd` (its KME), and every envelope it opens is keyed through it; with
// `audit`, each accepted exchange (either way) and each refused envelope from the node is entered
// there too. Calls on one NodeClient come from one thread at a time.
class NodeClient {
 public:
  NodeClient(Hub& hub, std::string site, const secure::Identity& me, const secure::TrustStore& trust, qkd::Keys qkd = {},
             audit::AuditLog* audit = nullptr);
  SiteInfo health() const;  // the site's latest report (the hub's roster)
  // Trains on the node; a returned model is opened here (signature, session, digest) before use.
  Trained train(const TrainJob& job);
  // One federated round on the node: the global state goes sealed, the new state comes back sealed.
  RoundResult federated_round(const RoundJob& job);
  // Sends a saved model (weights file and its .json) sealed; the node serves it. Returns the port.
  int deploy(const std::string& run, const std::string& model_path);
  std::string telemetry();  // the serving endpoint's JSON snapshot ("" before a deploy)
  const std::string& where() const { return site_; }

 private:
  // `payload` sealed for the node over the session that collects the job (seq: the next of this
  // client's) and sent as job `name`, whose request `request(envelope, seq)` builds; returns the answer.
  Hub::Answer send_sealed(const std::string& name, const std::string& run, const std::string& payload,
                          const nlohmann::json& detail,
                          const std::function<std::string(const secure::Bytes& envelope, uint64_t seq)>& request);
  // An envelope the node sealed for this client over `session`: opened, its sender checked, audited.
  secure::Opened open_from(const net::Peer& session, const std::string& envelope, const std::string& what,
                           const nlohmann::json& detail);

  Hub& hub_;
  std::string site_;
  secure::Identity identity_;
  secure::TrustStore trust_;
  qkd::Keys qkd_;
  audit::AuditLog* audit_;
  secure::ReplayGuard replay_;
  uint64_t seq_;
};

}  // namespace gng::node
