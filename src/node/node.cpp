#include "node/node.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <regex>
#include <set>
#include <thread>
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
             {"id", "pki", "orchestrator", "source", "dir", "data", "shard", "validation", "train_limit", "holdout", "workers", "kme", "qkd"});
  NodeConfig c;
  for (const char* required : {"id", "pki", "dir", "orchestrator"})
    if (!root[required]) throw Error(source + ": '" + required + "' is required");
  c.id = get<std::string>(root["id"], source, "id");
  c.pki = get<std::string>(root["pki"], source, "pki");
  c.dir = get<std::string>(root["dir"], source, "dir");
  c.data = kFashionMnistDir;
  if (const auto d = root["data"]; d && d.IsMap()) {
    check_keys(d, source, "data", {"dir", "csv", "label", "shape", "classes"});
    if (!d["dir"] == !d["csv"]) throw Error(where(source, d) + ": data names either an IDX dir or a csv file");
    if (d["dir"]) c.data = get<std::string>(d["dir"], source, "data.dir");
    if (d["csv"]) {
      c.data.clear();
      c.csv = get<std::string>(d["csv"], source, "data.csv");
    }
    if (d["label"]) c.label = get<std::string>(d["label"], source, "data.label");
    if (const auto sh = d["shape"]) {
      if (!sh.IsSequence() || sh.size() != 3) throw Error(where(source, sh) + ": data.shape must be [channels, height, width]");
      for (const auto& n : sh) c.shape.push_back(static_cast<std::size_t>(number(n, source, "data.shape", 1, 1e6)));
    }
    if (d["classes"]) c.classes = static_cast<int>(number(d["classes"], source, "data.classes", 2, 1e6));
    if (c.csv.empty() && (d["label"] || d["shape"]))
      throw Error(where(source, d) + ": data.label and data.shape are for a csv table (IDX files carry their shape)");
  } else if (d) {
    c.data = get<std::string>(d, source, "data");
  }
  c.orchestrator = parse_address(get<std::string>(root["orchestrator"], source, "orchestrator"),
                                 where(source, root["orchestrator"]) + ": orchestrator");
  if (c.orchestrator.port == 0) throw Error(where(source, root["orchestrator"]) + ": orchestrator: port 0 names no server");
  if (root["source"]) c.source = get<std::string>(root["source"], source, "source");
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
  std::mutex mu, deploy_mu;
  std::condition_variable free_slot;
  int busy = 0;

  void load_shard() {
    Dataset all = c.csv.empty() ? read_mnist_dir(c.data, true) : read_csv(c.csv, c.label);
    if (!c.shape.empty()) {
      if (c.shape[0] * c.shape[1] * c.shape[2] != all.features())
        throw Error(c.csv + ": data.shape " + std::to_string(c.shape[0]) + "×" + std::to_string(c.shape[1]) + "×" +
                    std::to_string(c.shape[2]) + " holds " + std::to_string(c.shape[0] * c.shape[1] * c.shape[2]) +
                    " values; the table has " + std::to_string(all.features()) + " feature columns");
      all.channels = c.shape[0], all.height = c.shape[1], all.width = c.shape[2];
    }
    if (c.classes) {
      if (all.classes > c.classes)
        throw Error("node '" + c.id + "': its data holds label " + std::to_string(all.classes - 1) + ", outside data.classes " +
                    std::to_string(c.classes));
      all.classes = c.classes;
    }
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

  // What a job answers: its reply message, built for the session `to` that carries it back (an
  // envelope inside is sealed for that session, which is known only when the answer is sent).
  using Reply = std::function<std::string(const net::Peer& to)>;

  static Reply plain(std::string message) {
    return [message = std::move(message)](const net::Peer&) { return message; };
  }

  // `payload` sealed inside the reply that `message` builds around the envelope. A second sealing
  // (the answering connection was replaced before the answer went) takes a QKD key of its own.
  Reply sealed(std::string payload, std::string run, uint64_t seq, nlohmann::json detail, SendKey key,
               std::function<std::string(const secure::Bytes& envelope)> message) {
    return [this, payload = std::move(payload), run = std::move(run), seq, detail = std::move(detail), key = std::move(key),
            message = std::move(message), first = true](const net::Peer& to) mutable {
      if (!first) key = send_key(to);
      first = false;
      return message(send(to, payload, run, seq, detail, key));
    };
  }

  Reply federated_round(const net::Peer& peer, const std::string& body) {
    const RoundRequest req = receive_round(peer, body, inbox());
    TrainBudget b;
    b.epochs = req.epochs;
    b.samples = req.samples;
    b.batch = req.batch > 0 ? req.batch : 128;
    b.seed = req.seed;
    b.augment = req.augment;
    SendKey key = send_key(peer);
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
    return sealed(fed::encode(r.state), req.run, req.seq, {{"round", req.round}, {"samples", r.state.samples}}, std::move(key),
                  [metrics = r.metrics](const secure::Bytes& wire) {
                    rpc::FederatedRoundReply reply;
                    reply.set_update_envelope(wire.data(), wire.size());
                    for (const auto& [k, v] : metrics) (*reply.mutable_metrics())[k] = v;
                    return reply.SerializeAsString();
                  });
  }

  std::unique_ptr<serve::Server> serving;  // the deployed model, when there is one

  Reply deploy(const net::Peer& peer, const std::string& body) {
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
    return plain(reply.SerializeAsString());
  }

  Reply telemetry() {
    rpc::TelemetryReply reply;
    std::lock_guard lock(deploy_mu);
    if (serving) reply.set_json(serving->telemetry());
    return plain(reply.SerializeAsString());
  }

  rpc::HealthReply health() {
    rpc::HealthReply h;
    h.set_id(c.id);
    h.set_train_samples(train.count);
    h.set_validation_samples(val.count);
    for (auto n : label_counts) h.add_label_counts(n);
    for (auto n : {train.channels, train.height, train.width}) h.add_input_shape(static_cast<uint32_t>(n));
    h.set_classes(static_cast<uint32_t>(std::max(train.classes, 0)));
    h.set_qkd(c.qkd);
    std::lock_guard lock(mu);
    h.set_busy(static_cast<uint32_t>(busy));
    return h;
  }

  Reply train_rpc(const net::Peer& peer, const std::string& body) {
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
    SendKey key = req.return_model() ? send_key(peer) : SendKey{};
    Metrics m;
    {
      const Slot slot(*this);
      m = train_and_evaluate(req.family(), d, train, val, b, es, model);
    }
    rpc::TrainReply reply;
    for (const auto& [k, v] : m) (*reply.mutable_metrics())[k] = v;
    if (!req.return_model()) return plain(reply.SerializeAsString());
    return sealed(pack_model(read_file(model + ".json"), read_file(model)), req.run(), req.seq(), {{"candidate", req.candidate()}},
                  std::move(key), [reply](const secure::Bytes& wire) mutable {
                    reply.set_model_envelope(wire.data(), wire.size());
                    return reply.SerializeAsString();
                  });
  }

  Reply handle(const std::string& name, const net::Peer& from, const std::string& body) {
    if (name == "Train") return train_rpc(from, body);
    if (name == "FederatedRound") return federated_round(from, body);
    if (name == "Deploy") return deploy(from, body);
    if (name == "Telemetry") return telemetry();
    throw net::Failure(400, "no such job '" + name.substr(0, 64) + "'");
  }

  // --- dialling in (hub.h): one connection polls for work, another carries the answers -----------

  std::string incarnation = secure::hex(secure::random_bytes(8));
  std::unique_ptr<net::Client> poller, answerer;
  std::thread polling;
  std::atomic<bool> running{false}, poll_ended{false};
  std::function<void(const std::string&)> on_end;
  std::chrono::steady_clock::time_point started;  // start(): time to first work is measured from it
  bool first_work = false;
  std::string ended;      // what the orchestrator last said of its run's end (poll thread only)
  std::string witnessed;  // SHA-256 (hex) of the orchestrator's audit head last kept in our trail (poll thread only)
  std::mutex jobs_mu, answer_mu;
  std::condition_variable wake;  // ends a back-off early when stopping
  std::set<uint64_t> in_hand;
  bool joined = false;  // the poll thread's: said "joined" once
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::vector<Worker> workers_running;

  void say(const std::string& line) {
    std::printf("gng node '%s': %s\n", c.id.c_str(), line.c_str());
    std::fflush(stdout);
  }

  void poll_loop() {
    auto backoff = std::chrono::milliseconds(200);
    std::string last_trouble;
    while (running) {
      rpc::SiteReport report;
      report.set_incarnation(incarnation);
      report.set_audit_head_kept(witnessed);
      *report.mutable_health() = health();
      {
        std::lock_guard lock(jobs_mu);
        for (uint64_t id : in_hand) report.add_in_hand(id);
        std::erase_if(workers_running, [](Worker& w) {
          if (!*w.done) return false;
          w.thread.join();
          return true;
        });
      }
      rpc::PollReply reply;
      net::Peer from;
      std::string trouble;
      try {
        // Our report goes only to an orchestrator; work is taken only from one.
        from = poller->session();
        if (from.role == "orchestrator") {
          const std::string answer = poller->rpc("Poll", report.SerializeAsString());
          from = poller->last_session();
          if (from.role == "orchestrator" && !reply.ParseFromString(answer))
            trouble = c.orchestrator.text() + " answered Poll with something that is not a PollReply";
        }
        if (from.role != "orchestrator")
          trouble = c.orchestrator.text() + " is '" + from.id + "' (" + from.role + "), not an orchestrator: no work taken";
      } catch (const Error& e) {
        trouble = e.what();
      }
      if (!running) break;
      if (!trouble.empty()) {
        if (trouble != last_trouble) say("cannot take work: " + trouble + " (trying again)");
        last_trouble = trouble;
        std::unique_lock lock(jobs_mu);
        wake.wait_for(lock, backoff, [&] { return !running; });
        backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
        continue;
      }
      if (!joined)
        say("joined '" + from.id + "' at " + c.orchestrator.text() + " (TLS 1.3, " + from.tls_group + ")");
      else if (!last_trouble.empty())
        say("back in touch with " + c.orchestrator.text());
      joined = true;
      last_trouble.clear();
      backoff = std::chrono::milliseconds(200);
      if (!reply.audit_head().empty()) {  // sent because our report showed we lack it
        try {
          log->append("witness", from.id, nlohmann::json::parse(reply.audit_head()));
        } catch (const std::exception& e) {
          say("the orchestrator's audit head is not kept: " + std::string(e.what()));
        }
        witnessed = secure::hex(secure::sha256(secure::view(reply.audit_head())));  // not asked for again
      }
      if (!reply.ended().empty()) {  // no more work from this run: ask again now and then, for the next one
        if (reply.ended() != ended) {
          say("the orchestrator's run ended (" + reply.ended() + ")");
          if (on_end) on_end(reply.ended());
        }
        ended = reply.ended();
        std::unique_lock lock(jobs_mu);
        wake.wait_for(lock, std::chrono::seconds(5), [&] { return !running; });
        continue;
      }
      ended.clear();
      for (const rpc::Work& w : reply.work()) {
        if (!first_work) {
          first_work = true;
          say("first work (" + w.rpc() + ") " +
              std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count()) +
              " ms after start");
        }
        std::lock_guard lock(jobs_mu);
        if (!in_hand.insert(w.id()).second) continue;  // already working on it
        auto done = std::make_shared<std::atomic<bool>>(false);
        workers_running.push_back({std::thread([this, w, from, done] {
                                     work(w, from);
                                     *done = true;
                                   }),
                                   done});
      }
    }
    poll_ended = true;
  }

  void work(const rpc::Work& w, const net::Peer& from) {
    rpc::Result r;
    r.set_id(w.id());
    r.set_incarnation(incarnation);
    Reply reply;
    try {
      reply = handle(w.rpc(), from, w.body());
      r.set_status(200);
    } catch (const net::Failure& f) {
      r.set_status(static_cast<uint32_t>(f.status));
      r.set_message(f.what());
    } catch (const Error& e) {
      r.set_status(400);
      r.set_message(e.what());
    } catch (const std::exception& e) {
      r.set_status(500);
      r.set_message(std::string("internal error: ") + e.what());
    }
    answer(r, reply);
    std::lock_guard lock(jobs_mu);
    in_hand.erase(w.id());
  }

  // The answer goes over the answering connection, an envelope in it sealed for that connection's
  // session; if the connection was replaced between sealing and sending, sealed once more.
  void answer(rpc::Result r, const Reply& reply) {
    std::lock_guard lock(answer_mu);
    for (int attempt = 0; attempt < 2; ++attempt) {
      net::Peer to;
      try {
        if (r.status() == 200) {
          to = answerer->session();
          if (to.role != "orchestrator") throw Error("'" + to.id + "' is not an orchestrator");
          // A reply that cannot be built (no QKD key for a second sealing, its model file gone) is
          // answered as a refusal: left unanswered, the job would be handed out and trained again.
          try {
            r.set_body(reply(to));
          } catch (const net::Failure& f) {
            r.set_status(static_cast<uint32_t>(f.status));
            r.set_message(f.what());
          } catch (const Error& e) {
            r.set_status(500);
            r.set_message(e.what());
          }
        }
        answerer->rpc("Result", r.SerializeAsString());
        return;
      } catch (const Error& e) {
        bool replaced = false;
        try {
          replaced = r.status() == 200 && attempt == 0 && !to.exporter.empty() && answerer->last_session().exporter != to.exporter;
        } catch (const Error&) {
        }
        if (!replaced) {
          say("the answer to job " + std::to_string(r.id()) + " is lost: " + e.what());
          return;
        }
      }
    }
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
}

Node::~Node() { stop(); }

void Node::start() {
  auto& s = *impl_;
  if (s.running) return;
  net::Limits limits;
  limits.retries = 0;                          // the poll loop tries again itself
  limits.timeout = std::chrono::seconds(60);  // above the hub's hold on a poll
  limits.nodelay = true;
  limits.source = s.c.source;
  s.poller = std::make_unique<net::Client>(s.me, s.trust, s.c.orchestrator.host, s.c.orchestrator.port, limits);
  s.answerer = std::make_unique<net::Client>(s.me, s.trust, s.c.orchestrator.host, s.c.orchestrator.port, limits);
  s.started = std::chrono::steady_clock::now();
  s.running = true;
  s.poll_ended = false;
  s.polling = std::thread([this] { impl_->poll_loop(); });
}

void Node::stop() {
  if (!impl_ || !impl_->running) return;
  auto& s = *impl_;
  s.running = false;
  s.wake.notify_all();
  while (!s.poll_ended) {  // a poll the hub holds: cut it short
    s.poller->interrupt();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  s.polling.join();
  // Says goodbye, so that the orchestrator need not wait to miss its polls (best effort).
  rpc::SiteReport bye;
  bye.set_incarnation(s.incarnation);
  *bye.mutable_health() = s.health();
  bye.set_leaving(true);
  try {
    net::Limits quick;
    quick.retries = 0;
    quick.timeout = std::chrono::seconds(2);
    quick.source = s.c.source;
    net::Client(s.me, s.trust, s.c.orchestrator.host, s.c.orchestrator.port, quick).rpc("Poll", bye.SerializeAsString());
  } catch (const Error&) {
  }
  std::vector<Impl::Worker> left;
  {
    std::lock_guard lock(s.jobs_mu);
    left.swap(s.workers_running);
  }
  for (auto& w : left) w.thread.join();
}

std::size_t Node::train_samples() const { return impl_->train.count; }

void Node::on_end(std::function<void(const std::string&)> f) { impl_->on_end = std::move(f); }

// --- the client ----------------------------------------------------------------------------------------

NodeClient::NodeClient(Hub& hub, std::string site, const secure::Identity& me, const secure::TrustStore& trust,
                       qkd::Keys qkd, audit::AuditLog* audit)
    : hub_(hub), site_(std::move(site)), identity_(me), trust_(trust), qkd_(std::move(qkd)), audit_(audit),
      // Microseconds since the epoch: a restarted orchestrator (or a new client of the same site)
      // goes on above every seq the site's replay guard has seen from this orchestrator before.
      seq_(static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count())) {}

Hub::Answer NodeClient::send_sealed(const std::string& name, const std::string& run, const std::string& payload,
                                    const nlohmann::json& detail,
                                    const std::function<std::string(const secure::Bytes&, uint64_t)>& request) {
  // Built when the site collects the job, for the session it collects it over (again if the first
  // collection never reached it). The header's round stays 0 and seq counts every request this
  // client sends (trainings and rounds of every cycle alike), so the replay guards see one
  // increasing sequence per sender.
  Sealed s;
  std::string fallback, group;
  Hub::Answer answer = hub_.call(site_, name, [&](const net::Peer& session) {
    fallback.clear();
    const qkd::KeyForSend key = qkd_.key_for(session.id, &fallback);
    s = seal_for(identity_, session, run, ++seq_, payload, key);
    group = session.tls_group;
    return request(s.wire, s.header.seq);
  });
  if (audit_)  // the node accepted it (it audits a refusal itself)
    audit_->append("exchange", identity_.id(), exchange_detail(detail, s.header, s.wire.size(), group, fallback));
  return answer;
}

secure::Opened NodeClient::open_from(const net::Peer& session, const std::string& envelope, const std::string& what,
                                     const nlohmann::json& detail) {
  try {
    return open_from_peer(envelope, {&trust_, identity_.id(), &qkd_, &replay_, audit_}, session, what, detail);
  } catch (const Error& e) {
    throw Error(site_ + ": the " + what + " is rejected: " + e.what());
  }
}

SiteInfo NodeClient::health() const { return hub_.site(site_); }

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
  const std::string body = req.SerializeAsString();
  const Hub::Answer answer = hub_.call(site_, "Train", [&](const net::Peer&) { return body; });
  rpc::TrainReply reply;
  if (!reply.ParseFromString(answer.body)) throw Error(site_ + ": the answer to Train is not a TrainReply");
  Trained out;
  for (const auto& [k, v] : reply.metrics()) out.metrics[k] = v;
  if (job.return_model) {
    if (reply.model_envelope().empty()) throw Error(site_ + ": asked for the model, got none");
    const secure::Opened opened = open_from(answer.session, reply.model_envelope(), "model", {{"candidate", job.candidate}});
    std::tie(out.model_json, out.weights) = unpack_model(opened.update);
    out.model_digest = opened.header.model_digest;
  }
  return out;
}

int NodeClient::deploy(const std::string& run, const std::string& model_path) {
  const std::string payload = pack_model(read_file(model_path + ".json"), read_file(model_path));
  const Hub::Answer answer = send_sealed("Deploy", run, payload, {{"deploy", true}}, [&](const secure::Bytes& wire, uint64_t seq) {
    rpc::DeployRequest req;
    req.set_model_envelope(wire.data(), wire.size());
    req.set_run(run);
    req.set_seq(seq);
    return req.SerializeAsString();
  });
  rpc::DeployReply reply;
  if (!reply.ParseFromString(answer.body)) throw Error(site_ + ": the answer to Deploy is not a DeployReply");
  return static_cast<int>(reply.port());
}

std::string NodeClient::telemetry() {
  const std::string body = rpc::TelemetryRequest().SerializeAsString();
  rpc::TelemetryReply reply;
  if (!reply.ParseFromString(hub_.call(site_, "Telemetry", [&](const net::Peer&) { return body; }).body))
    throw Error(site_ + ": the answer to Telemetry is not a TelemetryReply");
  return reply.json();
}

RoundResult NodeClient::federated_round(const RoundJob& job) {
  const Hub::Answer answer =
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
  if (!reply.ParseFromString(answer.body)) throw Error(site_ + ": the answer to FederatedRound is not a FederatedRoundReply");
  const secure::Opened opened = open_from(answer.session, reply.update_envelope(), "update", {{"round", job.round}});
  RoundResult out;
  out.state = fed::decode(std::string_view(reinterpret_cast<const char*>(opened.update.data()), opened.update.size()));
  if (out.state.from != answer.session.id) throw Error(site_ + ": the update claims to come from '" + out.state.from + "'");
  for (const auto& [k, v] : reply.metrics()) out.metrics[k] = v;
  return out;
}

}  // namespace gng::node
