#include "node/exchange.h"

#include "core/bytes.h"
#include "core/error.h"
#include "gng.pb.h"

namespace gng::node {

std::string pack_model(const std::string& json, const std::string& weights) {
  std::string out;
  out.reserve(4 + json.size() + weights.size());
  bytes::Writer<std::string>(out).field(json, 4, UINT32_MAX, "model description").raw(weights.data(), weights.size());
  return out;
}

std::pair<std::string, std::string> unpack_model(secure::View payload) {
  bytes::Reader r(payload, "model payload");
  std::string json = r.field(4, "description");
  const auto weights = r.take(r.left(), "weights");
  return {std::move(json), std::string(weights.begin(), weights.end())};
}

nlohmann::json exchange_detail(nlohmann::json detail, const secure::EnvelopeHeader& h, std::size_t bytes,
                               const std::string& tls_group, const std::string& qkd_fallback) {
  detail.update({{"from", h.sender}, {"to", h.recipient}, {"run", h.run}, {"seq", h.seq}, {"model_digest", h.model_digest},
                 {"mode", h.qkd_key_id.empty() ? "pqc-only" : "qkd+pqc"}, {"qkd_key_id", h.qkd_key_id}, {"bytes", bytes},
                 {"tls_group", tls_group}});
  if (!qkd_fallback.empty()) detail["qkd_fallback"] = qkd_fallback;
  return detail;
}

Sealed seal_for(const secure::Identity& me, const net::Peer& session, const std::string& run, uint64_t seq,
                const std::string& payload, const qkd::KeyForSend& key) {
  Sealed s;
  s.header.sender = me.id();
  s.header.recipient = session.id;
  s.header.run = run;
  s.header.seq = seq;
  s.header.model_digest = secure::model_digest(secure::view(payload));
  s.header.qkd_key_id = key.key_id;
  s.wire = secure::seal(s.header, secure::view(payload), session.exporter, key.key, me);
  return s;
}

secure::Opened open_from_peer(const std::string& envelope, const Inbox& in, const net::Peer& session,
                              const std::string& what, const nlohmann::json& detail) {
  if (!in.trust || !in.keys || !in.replay) throw std::logic_error("open_from_peer: an inbox needs trust, keys and a replay guard");
  const secure::View wire(reinterpret_cast<const uint8_t*>(envelope.data()), envelope.size());
  try {
    secure::Opened opened = secure::open(wire, in.keys->opening(*in.trust, in.me, session.exporter, *in.replay));
    if (opened.header.sender != session.id)
      throw Error("the " + what + " is signed by '" + opened.header.sender + "', not by the peer '" + session.id + "'");
    if (in.log) in.log->append("exchange", session.id, exchange_detail(detail, opened.header, envelope.size(), session.tls_group));
    return opened;
  } catch (const Error& e) {
    if (in.log) {
      std::string claimed = session.id;  // whom the refused envelope names, when it parses that far
      try {
        claimed = secure::parse_envelope(wire).header.sender;
      } catch (const Error&) {
      }
      in.log->append("rejection", session.id,
                     {{"from", session.id}, {"claimed_sender", claimed}, {"reason", e.what()}, {"bytes", envelope.size()}});
    }
    throw;
  }
}

namespace {

// An envelope the orchestrator sealed for this node: opened, or a 400 naming what was refused.
secure::Opened receive(const net::Peer& peer, const std::string& envelope, const std::string& what, const nlohmann::json& detail,
                       const Inbox& in) {
  try {
    return open_from_peer(envelope, in, peer, what, detail);
  } catch (const Error& e) {
    throw net::Failure(400, what + " rejected: " + e.what());
  }
}

// A payload that arrived sealed and intact but is not what the request needs: audited, then 400.
[[noreturn]] void refuse_payload(const net::Peer& peer, const std::string& what, const Error& e, const Inbox& in) {
  const std::string reason = what + " rejected: " + e.what();
  if (in.log) in.log->append("rejection", peer.id, {{"from", peer.id}, {"reason", reason}});
  throw net::Failure(400, reason);
}

void only_the_orchestrator(const net::Peer& peer, const std::string& action) {
  if (peer.role != "orchestrator") throw net::Failure(401, "'" + peer.id + "' (" + peer.role + ") may not " + action);
}

}  // namespace

RoundRequest receive_round(const net::Peer& peer, const std::string& body, const Inbox& in) {
  only_the_orchestrator(peer, "start a federated round");
  rpc::FederatedRoundRequest req;
  if (!req.ParseFromString(body)) throw net::Failure(400, "FederatedRound: not a FederatedRoundRequest message");
  if (req.rounds() > 0 && (req.round() < 1 || req.round() > req.rounds()))
    throw net::Failure(400, "FederatedRound: round " + std::to_string(req.round()) + " of " + std::to_string(req.rounds()) +
                                " is not a round");
  RoundRequest r;
  r.design = Design::from_json(req.design_json());  // a design it cannot read is refused before the envelope is opened
  r.run = req.run();
  r.family = req.family();
  r.round = req.round();
  r.rounds = req.rounds();
  r.candidate = req.candidate();
  r.epochs = req.epochs();
  r.mu = req.mu();
  r.samples = req.samples();
  r.seed = req.seed();
  r.seq = req.seq();
  r.batch = req.batch();
  r.augment = req.augment();
  const secure::Opened opened =
      receive(peer, req.global_envelope(), "global state", {{"run", req.run()}, {"round", req.round()}, {"seq", req.seq()}}, in);
  try {
    r.global = fed::decode(std::string_view(reinterpret_cast<const char*>(opened.update.data()), opened.update.size()));
  } catch (const Error& e) {
    refuse_payload(peer, "global state", e, in);
  }
  return r;
}

DeployRequest receive_deploy(const net::Peer& peer, const std::string& body, const Inbox& in) {
  only_the_orchestrator(peer, "deploy models");
  rpc::DeployRequest req;
  if (!req.ParseFromString(body)) throw net::Failure(400, "Deploy: not a DeployRequest message");
  DeployRequest d;
  d.run = req.run();
  d.seq = req.seq();
  const secure::Opened opened =
      receive(peer, req.model_envelope(), "model", {{"run", req.run()}, {"seq", req.seq()}, {"deploy", true}}, in);
  try {
    std::tie(d.model_json, d.weights) = unpack_model(opened.update);
  } catch (const Error& e) {
    refuse_payload(peer, "model", e, in);
  }
  return d;
}

}  // namespace gng::node
