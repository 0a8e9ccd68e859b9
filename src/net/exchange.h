#pragma once
// Moving a model update from one party to another: sealed (secure/envelope.h) for the recipient
// over the current PQ-TLS session, keyed also by a QKD key when both ends have a KME, pushed as the
// PushUpdate RPC, and audited on arrival — accepted or rejected, with the reason.
#include <functional>
#include <string>

#include "audit/log.h"
#include "net/rpc.h"
#include "secure/envelope.h"

namespace gng::net {

struct QkdKeyForSend {
  std::string key_id;
  secure::Bytes key;
};

// A party's keys from its KME (ETSI GS QKD 014), for the envelopes it seals and opens. With no
// functions set the party has no KME: it seals pqc-only, and opens pqc-only envelopes only when QKD
// is not required.
struct Qkd {
  // A fresh key shared with `recipient` (enc_keys: this party is the master SAE); throws when the
  // KME has none (e.g. its link aborts on a high QBER).
  std::function<QkdKeyForSend(const std::string& recipient)> for_sending;
  // The key `key_id` that `sender` (the master SAE) obtained (dec_keys); throws when unknown.
  std::function<secure::Bytes(const std::string& sender, const std::string& key_id)> for_opening;
  // The policy: refuse envelopes without a QKD key, and never send without one. When false, a
  // sender whose KME cannot deliver falls back to pqc-only, and says so in the header.
  bool required = false;

  // The key to seal with for `recipient`: none (pqc-only) when there is no KME, or when the KME
  // fails and QKD is optional, in which case `fallback` (if given) learns why. Throws when QKD is
  // required and no key can be had.
  QkdKeyForSend key_for(const std::string& recipient, std::string* fallback = nullptr) const;
  // Options to open an envelope addressed to `me` over a session with `exporter`.
  secure::OpenOptions opening(const secure::TrustStore& trust, const std::string& me, secure::View exporter,
                              secure::ReplayGuard& replay) const;
};

struct Receiver {
  const secure::TrustStore* trust = nullptr;
  std::string me;
  Qkd qkd;                           // the recipient's KME and the policy's word on pqc-only envelopes
  audit::AuditLog* audit = nullptr;  // required: every accepted and rejected envelope is recorded
  std::function<void(const secure::Opened&)> on_update;  // called once per accepted update
};

// Mounts PushUpdate on `server`. A rejected envelope answers 400 with the reason.
void serve_updates(Server& server, Receiver receiver);

struct Pushed {
  std::string mode;
  uint64_t audit_seq;  // the receiver's audit entry
};

// Seals `update` for header.recipient over `peer`'s session, with a fresh key from the sender's KME
// (qkd.key_for), and pushes it. If the TLS session changed between sealing and sending (a
// reconnect), seals again once for the new session.
Pushed push_update(Client& peer, const secure::Identity& me, secure::EnvelopeHeader header, secure::View update,
                   const Qkd& qkd);

}  // namespace gng::net
