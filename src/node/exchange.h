#pragma once
// The one path a model travels between the orchestrator and a node, both ways: sealed
// (secure/envelope.h) for the peer of the current PQ-TLS session, keyed also by a QKD key when the
// sender has a KME, carried inside an RPC message (proto/gng.proto), opened and checked at the
// other end, and audited at both ends — accepted or rejected, with the reason. node.cpp's server
// and client use these functions and nothing else; bench/fuzz/node_receive.cpp fuzzes the
// receiving side (RPC body → envelope → QKD key reference → payload) through them.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "audit/log.h"
#include "fed/fed.h"
#include "net/rpc.h"
#include "qkd/keys.h"
#include "secure/envelope.h"
#include "space/space.h"

namespace gng::node {

// The model a node sends or receives: u32 n ‖ description (JSON, n bytes) ‖ weights, one payload
// under one digest. unpack_model throws gng::Error on a payload shorter than it says.
std::string pack_model(const std::string& json, const std::string& weights);
std::pair<std::string, std::string> unpack_model(secure::View payload);

// What an audit entry says of an envelope, on either side: `detail` (the request's context) with
// the header's parties, run, seq, model digest and keying, the envelope's size and the TLS group.
nlohmann::json exchange_detail(nlohmann::json detail, const secure::EnvelopeHeader& h, std::size_t bytes,
                               const std::string& tls_group, const std::string& qkd_fallback = "");

struct Sealed {
  secure::EnvelopeHeader header;  // for the audit entry
  secure::Bytes wire;
};
// `payload` sealed by `me` for the peer of `session` (header round 0, `seq`), keyed also by `key`
// (none: pqc-only).
Sealed seal_for(const secure::Identity& me, const net::Peer& session, const std::string& run, uint64_t seq,
                const std::string& payload, const qkd::KeyForSend& key);

// What a party needs to open what its peers send it.
struct Inbox {
  const secure::TrustStore* trust = nullptr;
  std::string me;
  const qkd::Keys* keys = nullptr;         // its KME and the policy's word on pqc-only envelopes
  secure::ReplayGuard* replay = nullptr;   // one per receiving party
  audit::AuditLog* log = nullptr;          // every accepted and refused envelope; null: none
};

// An envelope that the peer of `session` sealed for this party: opened (trust, signature, session,
// replay, QKD key, digest), its sender checked against the peer, and entered in the log either way.
// Throws gng::Error with the reason.
secure::Opened open_from_peer(const std::string& envelope, const Inbox& in, const net::Peer& session,
                              const std::string& what, const nlohmann::json& detail);

// --- what a node receives: the RPC body, read and its envelope opened before any work -------------
// Every refusal is a net::Failure(400) naming what was wrong (401 for a caller that is not the
// orchestrator); the refused envelope is audited.

struct RoundRequest {
  std::string run, family;
  Design design;
  uint32_t round = 0, rounds = 0;
  int32_t candidate = 0;
  double epochs = 0, mu = 0;
  uint64_t samples = 0, seed = 0, seq = 0;
  int32_t batch = 0;
  bool augment = false;
  fed::Update global;  // the opened global state
};
RoundRequest receive_round(const net::Peer& peer, const std::string& body, const Inbox& in);

struct DeployRequest {
  std::string run;
  uint64_t seq = 0;
  std::string model_json, weights;  // the opened model
};
DeployRequest receive_deploy(const net::Peer& peer, const std::string& body, const Inbox& in);

}  // namespace gng::node
