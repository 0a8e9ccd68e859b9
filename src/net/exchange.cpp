#include "net/exchange.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "gng.pb.h"

namespace gng::net {

QkdKeyForSend Qkd::key_for(const std::string& recipient, std::string* fallback) const {
  if (!for_sending) {
    if (required) throw Error("QKD is required but this party has no KME");
    return {};
  }
  try {
    return for_sending(recipient);
  } catch (const Error& e) {
    if (required) throw Error(std::string("no QKD key for '") + recipient + "' and QKD is required: " + e.what());
    if (fallback) *fallback = e.what();
    return {};
  }
}

secure::OpenOptions Qkd::opening(const secure::TrustStore& trust, const std::string& me, secure::View exporter,
                                 secure::ReplayGuard& replay) const {
  secure::OpenOptions o;
  o.trust = &trust;
  o.me = me;
  o.tls_exporter = exporter;
  o.allow_pqc_only = !required;
  o.replay = &replay;
  o.qkd_key = for_opening;
  return o;
}

void serve_updates(Server& server, Receiver r) {
  if (!r.trust || !r.audit) throw std::logic_error("serve_updates: trust store and audit log are required");
  auto replay = std::make_shared<secure::ReplayGuard>();
  server.rpc("PushUpdate", [r, replay](const Peer& peer, const std::string& body) {
    rpc::PushUpdate msg;
    if (!msg.ParseFromString(body)) {
      r.audit->append("rejection", peer.id, {{"from", peer.id}, {"reason", "PushUpdate is not a valid protobuf message"}, {"bytes", body.size()}});
      throw Failure(400, "PushUpdate is not a valid protobuf message");
    }
    const secure::View wire(reinterpret_cast<const uint8_t*>(msg.envelope().data()), msg.envelope().size());
    const secure::OpenOptions o = r.qkd.opening(*r.trust, r.me, peer.exporter, *replay);
    secure::Opened opened;
    try {
      opened = secure::open(wire, o);
    } catch (const Error& e) {
      std::string claimed = peer.id;  // whom the refused envelope names, when it parses that far
      try {
        claimed = secure::parse_envelope(wire).header.sender;
      } catch (const Error&) {
      }
      r.audit->append("rejection", peer.id,
                      {{"from", peer.id}, {"claimed_sender", claimed}, {"reason", e.what()}, {"bytes", wire.size()}});
      throw Failure(400, std::string("envelope rejected: ") + e.what());
    }
    const auto& h = opened.header;
    const uint64_t seq = r.audit->append(
        "exchange", h.sender,
        {{"from", h.sender}, {"to", h.recipient}, {"run", h.run}, {"round", h.round}, {"seq", h.seq},
         {"model_digest", h.model_digest}, {"mode", h.mode}, {"qkd_key_id", h.qkd_key_id}, {"bytes", wire.size()},
         {"tls_group", peer.tls_group}});
    if (r.on_update) r.on_update(opened);
    rpc::PushAck ack;
    ack.set_model_digest(h.model_digest);
    ack.set_round(h.round);
    ack.set_seq(h.seq);
    ack.set_mode(h.mode);
    ack.set_audit_seq(seq);
    return ack.SerializeAsString();
  });
}

Pushed push_update(Client& peer, const secure::Identity& me, secure::EnvelopeHeader header, secure::View update,
                   const Qkd& qkd) {
  header.model_digest = secure::model_digest(update);
  for (int attempt = 0;; ++attempt) {
    const Peer session = peer.session();
    if (session.id != header.recipient)
      throw Error("the peer at this address is '" + session.id + "', not the recipient '" + header.recipient + "'");
    const QkdKeyForSend key = qkd.key_for(header.recipient);
    header.qkd_key_id = key.key_id;
    rpc::PushUpdate msg;
    const secure::Bytes wire = secure::seal(header, update, session.exporter, key.key, me);
    msg.set_envelope(wire.data(), wire.size());
    try {
      const std::string reply = peer.rpc("PushUpdate", msg.SerializeAsString());
      rpc::PushAck ack;
      if (!ack.ParseFromString(reply)) throw Error("the answer to PushUpdate is not a PushAck");
      if (ack.model_digest() != header.model_digest)
        throw Error("the receiver acknowledged model " + ack.model_digest() + ", not " + header.model_digest);
      return {ack.mode(), ack.audit_seq()};
    } catch (const Error&) {
      // Sealed for a session that is gone (the client reconnected): seal again for the new one.
      if (attempt == 0 && peer.session().exporter != session.exporter) continue;
      throw;
    }
  }
}

}  // namespace gng::net
