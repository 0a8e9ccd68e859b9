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

struct Receiver {
  const secure::TrustStore* trust = nullptr;
  std::string me;
  bool allow_pqc_only = false;  // the policy: may updates arrive without a QKD key?
  // The recipient's KME: the key `key_id` that `sender` (the master SAE) obtained; throws when unknown.
  std::function<secure::Bytes(const std::string& sender, const std::string& key_id)> qkd_key;
  audit::AuditLog* audit = nullptr;  // required: every accepted and rejected envelope is recorded
  std::function<void(const secure::Opened&)> on_update;  // called once per accepted update
};

// Mounts PushUpdate on `server`. A rejected envelope answers 400 with the reason.
void serve_updates(Server& server, Receiver receiver);

struct Pushed {
  std::string mode;
  uint64_t audit_seq;  // the receiver's audit entry
};

// Seals `update` for header.recipient over `peer`'s session and pushes it. `qkd` (may be empty:
// pqc-only) returns a fresh key for the recipient from the sender's KME. If the TLS session changed
// between sealing and sending (a reconnect), seals again once for the new session.
Pushed push_update(Client& peer, const secure::Identity& me, secure::EnvelopeHeader header, secure::View update,
                   const std::function<QkdKeyForSend(const std::string& recipient)>& qkd);

}  // namespace gng::net
