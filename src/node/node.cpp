#include "node/node.h"

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <regex>
#include <nlohmann/json.hpp>

#include "audit/log.h"
#include "core/error.h"
#include "core/file.h"
#include "core/yaml.h"
#include "data/dataset.h"
#include "gng.pb.h"
#include "secure/envelope.h"
#include "serve/serve.h"

namespace fs = std::filesystem;

namespace gng::node {

NodeConfig NodeConfig::from_yaml(const std::string& text, const std::string& source) {
  using namespace yaml;
  const YAML::Node root = load(text, source);
  check_keys(root, source, "the node config",
             {"id", "pki", "listen", "dir", "data", "shard", "validation", "train_limit", "holdout", "workers", "kme", "qkd"});
  NodeConfig c;
  for (const char* required : {"id", "pki", "dir"})
    if (!root[required]) throw Error(source + ": '" + required + "' is required");
  c.id = get<std::string>(root["id"], source, "id");
  c.pki = get<std::string>(root["pki"], source, "pki");
  c.dir = get<std::string>(root["dir"], source, "dir");
  c.data = root["data"] ? get<std::string>(root["data"], source, "data") : kFashionMnistDir;
  if (root["listen"]) c.listen = parse_address(get<std::string>(root["listen"], source, "listen"), where(source, root["listen"]) + ": listen");
  if (const auto s = root["shard"]) {
    check_keys(s, source, "shard", {"index", "of", "partition", "alpha", "seed"});
    c.shards = s["of"] ? static_cast<int>(number(s["of"], source, "shard.of", 1, 1000)) : 1;
    c.shard = s["index"] ? static_cast<int>(number(s["index"], source, "shard.index", 0, c.shards - 1)) : 0;
    if (s["partition"]) {
      c.partition = get<std::string>(s["partition"], source, "shard.partition");
      if (c.partition != "iid" && c.partition != "dirichlet")
        throw Error(where(source, s["partition"]) + ": shard.partition must be iid or dirichlet, got '" + c.partition + "'");
    }
    if (s["alpha"]) c.alpha = number(s["alpha"], source, "shard.alpha", 1e-3, 1e6);
    if (s["seed"]) c.seed = static_cast<uint64_t>(number(s["seed"], source, "shard.seed", 0, 1e15));
  }
  if (root["validation"]) c.validation = static_cast<std::size_t>(number(root["validation"], source, "validation", 1, 1e7));
  if (root["train_limit"]) c.train_limit = static_cast<std::size_t>(number(root["train_limit"], source, "train_limit", 0, 1e9));
  if (root["holdout"]) c.holdout = static_cast<std::size_t>(number(root["holdout"], source, "holdout", 0, 1e9));
  if (root["workers"]) c.workers = static_cast<int>(number(root["workers"], source, "workers", 1, 64));
  if (const auto k = root["kme"]) {
    const std::string what = where(source, k) + ": kme";
    std::string address;
    if (k.IsMap()) {
      check_keys(k, source, "kme", {"address", "ca", "cert", "key", "groups", "sae_ids"});
      for (const char* required : {"address", "ca", "cert", "key"})
        if (!k[required]) throw Error(what + ": a vendor's KME needs '" + required + "' (address, ca, cert and key)");
      address = get<std::string>(k["address"], source, "kme.address");
      net::ExternalTls tls;
      tls.ca_file = get<std::string>(k["ca"], source, "kme.ca");
      tls.cert_file = get<std::string>(k["cert"], source, "kme.cert");
      tls.key_file = get<std::string>(k["key"], source, "kme.key");
      if (k["groups"]) tls.groups = get<std::string>(k["groups"], source, "kme.groups");
      c.kme_tls = tls;
      if (const auto ids = k["sae_ids"]) {
        if (!ids.IsMap()) throw Error(where(source, ids) + ": kme.sae_ids must map gng ids to SAE IDs");
        for (const auto& e : ids)
          c.sae_ids[get<std::string>(e.first, source, "kme.sae_ids")] = get<std::string>(e.second, source, "kme.sae_ids");
      }
    } else {
      address = get<std::string>(k, source, "kme");
    }
    c.kme = parse_address(address, what);
    if (c.kme.port == 0) throw Error(what + ": port 0 names no server");
  }
  c.qkd = c.kme.port ? "required" : "off";
  if (root["qkd"]) {
    c.qkd = get<std::string>(root["qkd"], source, "qkd");
    if (c.qkd != "required" && c.qkd != "optional" && c.qkd != "off")
      throw Error(where(source, root["qkd"]) + ": qkd must be required, optional or off, got '" + c.qkd + "'");
    if (c.qkd != "off" && !c.kme.port) throw Error(where(source, root["qkd"]) + ": qkd: " + c.qkd + " needs a kme: HOST:PORT");
  }
  return c;
}

// --- the node ------------------------------------------------------------------------------------------

struct Node::Impl {
  NodeConfig c;
  qkd::Keys qkd;
  secure::Identity me;
  secure::TrustStore trust;
  Dataset train, val;   // the shard split: candidates train on `train`, are measured on `val`
  Dataset whole;        // the whole shard: federated rounds train on all of it (the orchestrator's
                        // held-out images judge the aggregate; the node's own `val` has no use there)
  std::vector<std::size_t> label_counts;
  std::unique_ptr<audit::AuditLog> log;
  std::unique_ptr<net::Server> server;
  std::mutex mu, deploy_mu;
  std::condition_variable free_slot;
  int busy = 0;

  void load_shard() {
    Dataset all = read_mnist_dir(c.data, true);
    if (c.train_limit && c.train_limit < all.count) {
      std::vector<std::size_t> first(c.train_limit);
      for (std::size_t i = 0; i < first.size(); ++i) first[i] = i;
      all = subset(all, first);
    }
    if (c.holdout > 0) {  // exactly the orchestrator's split (same function, fraction and seed): its validation images stay out
      if (c.holdout >= all.count) throw Error("node '" + c.id + "': holdout " + std::to_string(c.holdout) + " leaves no training images");
      all = split(all, static_cast<double>(c.holdout) / static_cast<double>(all.count), c.seed).first;
    }
    const auto parts = c.partition == "iid" ? partition_iid(all, c.shards, c.seed)
                                            : partition_dirichlet(all, c.shards, c.alpha, c.seed);
    const Dataset shard = subset(all, parts.at(static_cast<std::size_t>(c.shard)));
    if (c.validation >= shard.count)
      throw Error("node '" + c.id + "': validation (" + std::to_string(c.validation) + ") must be smaller than its shard (" +
                  std::to_string(shard.count) + " images)");
    Split s = split(shard, static_cast<double>(c.validation) / static_cast<double>(shard.count), c.seed);
    whole = shard;
    train = std::move(s.first);
    val = std::move(s.second);
    label_counts.assign(static_cast<std::size_t>(std::max(train.classes, 0)), 0);
    for (int32_t l : train.labels) ++label_counts.at(static_cast<std::size_t>(l));
  }

  secure::ReplayGuard replay;  // what arrives from the orchestrator

  // The QKD key for what this node will send the caller, taken before the work that produces it:
  // a node that must have one and cannot get it refuses (503) instead of training for nothing.
  struct SendKey {
    qkd::KeyForSend key;
    std::string fallback;  // why there is none, when QKD is optional and the KME failed
  };
  SendKey send_key(const net::Peer& peer) {
    SendKey k;
    try {
      k.key = qkd.key_for(peer.id, &k.fallback);
    } catch (const Error& e) {
      throw net::Failure(503, e.what());
    }
    return k;
  }

  // `payload` sealed for the caller over this session with `key`, and audited. The header's round
  // stays 0: the caller's seq orders everything it sends (see federated_round).
  secure::Bytes send(const net::Peer& peer, const std::string& payload, const std::string& run, uint64_t seq,
                     const nlohmann::json& detail, const SendKey& key) {
    Sealed s = seal_for(me, peer, run, seq, payload, key.key);
    log->append("exchange", c.id, exchange_detail(detail, s.header, s.wire.size(), peer.tls_group, key.fallback));
    return std::move(s.wire);
  }

  // What the orchestrator sends this node is opened through the one exchange path (exchange.h).
  Inbox inbox() { return {&trust, c.id, &qkd, &replay, log.get()}; }

  // One of the node's `workers` training slots, held for a scope (waits for a free one).
  struct Slot {
    Impl& n;
    explicit Slot(Impl& node) : n(node) {
      std::unique_lock lock(n.mu);
      n.free_slot.wait(lock, [&] { return n.busy < n.c.workers; });
      ++n.busy;
    }
    ~Slot() {
      std::lock_guard lock(n.mu);
      --n.busy;
      n.free_slot.notify_one();
    }
  };

  std::string federated_round(const net::Peer& peer, const std::string& body) {
    const RoundRequest req = receive_round(peer, body, inbox());
    TrainBudget b;
    b.epochs = req.epochs;
    b.samples = req.samples;
    b.batch = req.batch > 0 ? req.batch : 128;
    b.seed = req.seed;
    b.augment = req.augment;
    const SendKey key = send_key(peer);
    LocalResult r;
    {
      const Slot slot(*this);
      const auto started = std::chrono::steady_clock::now();
      r = train_from(req.family, req.design, req.global, whole, Dataset{}, b, EvalSettings{}, req.mu, static_cast<int>(req.round),
                     static_cast<int>(req.rounds));
      // Training: what the caller subtracts from its wall time to see the cost of the exchange
      // itself (TLS, envelopes, QKD keys, encoding).
      r.metrics["compute_s"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    }
    r.state.from = c.id;
    const secure::Bytes wire = send(peer, fed::encode(r.state), req.run, req.seq,
                                    {{"round", req.round}, {"samples", r.state.samples}}, key);
    rpc::FederatedRoundReply reply;
    reply.set_update_envelope(wire.data(), wire.size());
    for (const auto& [k, v] : r.metrics) (*reply.mutable_metrics())[k] = v;
    return reply.SerializeAsString();
  }

  std::unique_ptr<serve::Server> serving;  // the deployed model, when there is one

  std::string deploy(const net::Peer& peer, const std::string& body) {
    const DeployRequest req = receive_deploy(peer, body, inbox());
    const std::string path = (fs::path(c.dir) / "deployed.pt").string();
    std::lock_guard lock(deploy_mu);
    if (serving) serving->stop();
    serving.reset();
    write_file_atomic(path + ".json", req.model_json);
    write_file_atomic(path, req.weights);
    serve::Options so;
    so.port = 0;
    so.max_inflight = 16;
    so.compute_slots = 1;
    serving = std::make_unique<serve::Server>(path, train, so);
    rpc::DeployReply reply;
    reply.set_port(static_cast<uint32_t>(serving->start()));
    reply.set_model_sha256(serving->model_sha256());
    log->append("deploy", c.id, {{"run", req.run}, {"model_sha256", serving->model_sha256()}, {"port", reply.port()}});
    return reply.SerializeAsString();
  }

  std::string telemetry() {
    rpc::TelemetryReply reply;
    std::lock_guard lock(deploy_mu);
    if (serving) reply.set_json(serving->telemetry());
    return reply.SerializeAsString();
  }

  std::string health() {
    rpc::HealthReply h;
    h.set_id(c.id);
    h.set_train_samples(train.count);
    h.set_validation_samples(val.count);
    for (auto n : label_counts) h.add_label_counts(n);
    std::lock_guard lock(mu);
    h.set_busy(static_cast<uint32_t>(busy));
    return h.SerializeAsString();
  }

  std::string train_rpc(const net::Peer& peer, const std::string& body) {
    if (peer.role != "orchestrator") throw net::Failure(401, "'" + peer.id + "' (" + peer.role + ") may not ask a node to train");
    rpc::TrainRequest req;
    if (!req.ParseFromString(body)) throw net::Failure(400, "Train: not a TrainRequest message");
    if (req.family() != "cnn" && req.family() != "vit") throw net::Failure(400, "Train: unknown family '" + req.family() + "'");
    static const std::regex kRun("[A-Za-z0-9][A-Za-z0-9._-]{0,127}");
    if (!std::regex_match(req.run(), kRun)) throw net::Failure(400, "Train: run name '" + req.run().substr(0, 64) + "' is not a plain name");
    const Design d = Design::from_json(req.design_json());
    TrainBudget b;
    b.epochs = req.epochs();
    b.samples = req.samples();
    b.seconds = req.seconds();
    b.batch = req.batch() > 0 ? req.batch() : 128;
    b.augment = req.augment();
    b.seed = req.seed();
    EvalSettings es;
    es.noise_sigma = req.noise_sigma();
    es.watts = req.watts();
    es.max_eval = req.max_eval();
    const std::string model =
        req.return_model() ? (fs::path(c.dir) / "models" / (req.run() + "-c" + std::to_string(req.candidate()) + ".pt")).string()
                           : std::string();
    const SendKey key = req.return_model() ? send_key(peer) : SendKey{};
    Metrics m;
    {
      const Slot slot(*this);
      m = train_and_evaluate(req.family(), d, train, val, b, es, model);
    }
    rpc::TrainReply reply;
    for (const auto& [k, v] : m) (*reply.mutable_metrics())[k] = v;
    if (req.return_model()) {
      const secure::Bytes wire = send(peer, pack_model(read_file(model + ".json"), read_file(model)),
                                      req.run(), req.seq(), {{"candidate", req.candidate()}}, key);
      reply.set_model_envelope(wire.data(), wire.size());
    }
    return reply.SerializeAsString();
  }
};

Node::Node(NodeConfig config, qkd::Keys qkd) : impl_(new Impl) {
  impl_->c = std::move(config);
  impl_->qkd = std::move(qkd);
  auto& s = *impl_;
  s.me = secure::load_identity(s.c.pki, s.c.id);
  if (s.me.role() != "node") throw Error("'" + s.c.id + "' has a " + s.me.role() + " certificate, not a node one");
  s.trust = secure::TrustStore::load(s.c.pki);
  fs::create_directories(fs::path(s.c.dir) / "models");
  s.log = std::make_unique<audit::AuditLog>((fs::path(s.c.dir) / audit::kLogFile).string(), true);
  s.load_shard();
  s.server = std::make_unique<net::Server>(s.me, s.trust);
  s.server->rpc("Health", [this](const net::Peer&, const std::string&) { return impl_->health(); });
  s.server->rpc("Train", [this](const net::Peer& p, const std::string& body) { return impl_->train_rpc(p, body); });
  s.server->rpc("Deploy", [this](const net::Peer& p, const std::string& body) { return impl_->deploy(p, body); });
  s.server->rpc("Telemetry", [this](const net::Peer&, const std::string&) { return impl_->telemetry(); });
  s.server->rpc("FederatedRound",
                [this](const net::Peer& p, const std::string& body) { return impl_->federated_round(p, body); });
}

Node::~Node() { stop(); }

int Node::listen() {
  return impl_->server->listen(impl_->c.listen.host, impl_->c.listen.port);
}

void Node::stop() {
  if (impl_ && impl_->server) impl_->server->stop();
}

std::size_t Node::train_samples() const { return impl_->train.count; }

// --- the client ----------------------------------------------------------------------------------------

NodeClient::NodeClient(const secure::Identity& me, const secure::TrustStore& trust, const std::string& host, int port,
                       net::Limits limits, qkd::Keys qkd, audit::AuditLog* audit)
    : identity_(me), trust_(trust), me_(me.id()), where_(Address{host, port}.text()),
      client_(me, trust, host, port, limits), qkd_(std::move(qkd)), audit_(audit) {}

std::string NodeClient::send_sealed(const std::string& name, const std::string& run, const std::string& payload,
                                    const nlohmann::json& detail,
                                    const std::function<std::string(const secure::Bytes&, uint64_t)>& request) {
  for (int attempt = 0;; ++attempt) {
    const net::Peer session = client_.session();
    std::string fallback;
    const qkd::KeyForSend key = qkd_.key_for(session.id, &fallback);
    // The header's round stays 0 and seq counts every request this client sends (trainings and
    // rounds of every cycle alike), so the replay guards see one increasing sequence per sender.
    const Sealed s = seal_for(identity_, session, run, ++seq_, payload, key);
    std::string reply;
    try {
      reply = client_.rpc(name, request(s.wire, s.header.seq));
    } catch (const Error&) {
      if (attempt == 0 && client_.last_session().exporter != session.exporter) continue;
      throw;
    }
    if (audit_)  // the node accepted it (it audits a refusal itself)
      audit_->append("exchange", me_, exchange_detail(detail, s.header, s.wire.size(), session.tls_group, fallback));
    return reply;
  }
}

secure::Opened NodeClient::open_from(const net::Peer& session, const std::string& envelope, const std::string& what,
                                     const nlohmann::json& detail) {
  try {
    return open_from_peer(envelope, {&trust_, me_, &qkd_, &replay_, audit_}, session, what, detail);
  } catch (const Error& e) {
    throw Error(where_ + ": the " + what + " is rejected: " + e.what());
  }
}

NodeHealth NodeClient::health() {
  rpc::HealthReply h;
  if (!h.ParseFromString(client_.rpc("Health", rpc::HealthRequest().SerializeAsString())))
    throw Error(where_ + ": the answer to Health is not a HealthReply");
  NodeHealth out{h.id(), h.train_samples(), h.validation_samples(), {}, static_cast<int>(h.busy())};
  for (auto n : h.label_counts()) out.label_counts.push_back(n);
  return out;
}

Trained NodeClient::train(const TrainJob& job) {
  rpc::TrainRequest req;
  req.set_run(job.run);
  req.set_candidate(job.candidate);
  req.set_family(job.family);
  req.set_design_json(job.design_json);
  req.set_epochs(job.budget.epochs);
  req.set_samples(job.budget.samples);
  req.set_seconds(job.budget.seconds);
  req.set_batch(job.budget.batch);
  req.set_augment(job.budget.augment);
  req.set_seed(job.budget.seed);
  req.set_noise_sigma(job.eval.noise_sigma);
  req.set_watts(job.eval.watts);
  req.set_max_eval(job.eval.max_eval);
  req.set_return_model(job.return_model);
  req.set_seq(++seq_);
  rpc::TrainReply reply;
  if (!reply.ParseFromString(client_.rpc("Train", req.SerializeAsString())))
    throw Error(where_ + ": the answer to Train is not a TrainReply");
  Trained out;
  for (const auto& [k, v] : reply.metrics()) out.metrics[k] = v;
  if (job.return_model) {
    if (reply.model_envelope().empty()) throw Error(where_ + ": asked for the model, got none");
    const secure::Opened opened =
        open_from(client_.last_session(), reply.model_envelope(), "model", {{"candidate", job.candidate}});
    std::tie(out.model_json, out.weights) = unpack_model(opened.update);
    out.model_digest = opened.header.model_digest;
  }
  return out;
}

int NodeClient::deploy(const std::string& run, const std::string& model_path) {
  const std::string payload = pack_model(read_file(model_path + ".json"), read_file(model_path));
  const std::string answer = send_sealed("Deploy", run, payload, {{"deploy", true}}, [&](const secure::Bytes& wire, uint64_t seq) {
    rpc::DeployRequest req;
    req.set_model_envelope(wire.data(), wire.size());
    req.set_run(run);
    req.set_seq(seq);
    return req.SerializeAsString();
  });
  rpc::DeployReply reply;
  if (!reply.ParseFromString(answer))
    throw Error(where_ + ": the answer to Deploy is not a DeployReply");
  return static_cast<int>(reply.port());
}

std::string NodeClient::telemetry() {
  rpc::TelemetryReply reply;
  if (!reply.ParseFromString(client_.rpc("Telemetry", rpc::TelemetryRequest().SerializeAsString())))
    throw Error(where_ + ": the answer to Telemetry is not a TelemetryReply");
  return reply.json();
}

RoundResult NodeClient::federated_round(const RoundJob& job) {
  const std::string answer =
      send_sealed("FederatedRound", job.run, fed::encode(job.global), {{"round", job.round}}, [&](const secure::Bytes& wire, uint64_t seq) {
        rpc::FederatedRoundRequest req;
        req.set_run(job.run);
        req.set_round(static_cast<uint32_t>(job.round));
        req.set_rounds(static_cast<uint32_t>(job.rounds));
        req.set_candidate(job.candidate);
        req.set_family(job.family);
        req.set_design_json(job.design_json);
        req.set_global_envelope(wire.data(), wire.size());
        req.set_epochs(job.budget.epochs);
        req.set_samples(job.budget.samples);
        req.set_batch(job.budget.batch);
        req.set_seed(job.budget.seed);
        req.set_mu(job.mu);
        req.set_augment(job.budget.augment);
        req.set_seq(seq);
        return req.SerializeAsString();
      });
  rpc::FederatedRoundReply reply;
  if (!reply.ParseFromString(answer))
    throw Error(where_ + ": the answer to FederatedRound is not a FederatedRoundReply");
  const net::Peer now = client_.last_session();
  const secure::Opened opened = open_from(now, reply.update_envelope(), "update", {{"round", job.round}});
  RoundResult out;
  out.state = fed::decode(std::string_view(reinterpret_cast<const char*>(opened.update.data()), opened.update.size()));
  if (out.state.from != now.id) throw Error(where_ + ": the update claims to come from '" + out.state.from + "'");
  for (const auto& [k, v] : reply.metrics()) out.metrics[k] = v;
  return out;
}

}  // namespace gng::node
