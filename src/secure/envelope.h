#pragma once
// Sealed model updates. An envelope is for one recipient over one TLS session:
//
//   key ‖ iv = HKDF-SHA-384(ikm = TLS exporter ‖ k_QKD, salt = SHA-384(header), info = "gng envelope v1")
//   body     = AES-256-GCM(key, iv, aad = header, update)
//   sig      = ML-DSA(sender, "gng envelope v1" ‖ header ‖ GCM tag)
//
// so breaking the TLS key exchange is not enough without the QKD key, a leaked QKD key is not enough
// without the TLS secret, and the signature binds the sender's certificate to the header — which
// names recipient, run, round, seq and the model digest (the update's SHA-256, its attested
// identity, checked again after decryption). Without QKD the header says "pqc-only".
//
// Wire format (all integers big-endian, every length checked against the bytes present):
//   "GNGE" 01 ‖ u32 n ‖ header ‖ u32 n ‖ sender certificate (DER) ‖ u64 n ‖ body ‖ u32 n ‖ sig
//   header = "GNGH" 01 ‖ str sender ‖ str recipient ‖ str run ‖ u64 round ‖ u64 seq
//            ‖ str model_digest ‖ str qkd_key_id ‖ str mode          (str = u16 n ‖ n bytes)
#include <functional>
#include <map>
#include <mutex>
#include <string>

#include "secure/pki.h"

namespace gng::secure {

struct EnvelopeHeader {
  std::string sender, recipient, run;
  uint64_t round = 0, seq = 0;
  std::string model_digest;  // hex SHA-256 of the update (model_digest())
  std::string qkd_key_id;    // ETSI GS QKD 014 key_ID (a UUID); empty in pqc-only mode
  std::string mode;          // "qkd+pqc" or "pqc-only" (set by seal)
};

std::string model_digest(View update);  // hex SHA-256

// Seals `update` (whose model_digest the header already carries) for header.recipient. An empty
// `qkd_key` seals in pqc-only mode. The sender must be the identity named in header.sender.
Bytes seal(EnvelopeHeader header, View update, View tls_exporter, View qkd_key, const Identity& sender);

// Only what the wire says, checked for shape; nothing is trusted yet. Throws gng::Error on any
// malformed or truncated input. The views point into `wire`.
struct ParsedEnvelope {
  EnvelopeHeader header;
  View header_bytes, sender_cert_der, body, signature;
};
ParsedEnvelope parse_envelope(View wire);

// Refuses (round, seq) pairs at or below the last accepted one per (sender, run). Thread-safe.
class ReplayGuard {
 public:
  void check(const EnvelopeHeader& h);             // throws when h would be a replay
  void check_and_record(const EnvelopeHeader& h);  // the same, and remembers h atomically
 private:
  void refuse_replay(const EnvelopeHeader& h) const;
  std::mutex mu_;
  std::map<std::pair<std::string, std::string>, std::pair<uint64_t, uint64_t>> last_;
};

struct OpenOptions {
  const TrustStore* trust = nullptr;   // the sender's certificate must chain to it, unexpired, not denied
  std::string me;                      // the recipient's id: the header must name it
  View tls_exporter;                   // this session's exporter (net::Peer::exporter)
  // The recipient's KME: the key `key_id` that `sender` (the master SAE; verified by the signature
  // before this is asked) obtained. Throws when it is unknown.
  std::function<Bytes(const std::string& sender, const std::string& key_id)> qkd_key;
  bool allow_pqc_only = false;         // the policy's word on envelopes without a QKD key
  ReplayGuard* replay = nullptr;
};

struct Opened {
  EnvelopeHeader header;
  Bytes update;
};

// Verifies and decrypts, or throws gng::Error with the precise reason: malformed, wrong recipient,
// sender certificate untrusted/expired/denied or not the header's sender, bad signature, pqc-only
// refused by policy, unknown QKD key, authentication failure, model digest mismatch, replay.
Opened open(View wire, const OpenOptions& options);

}  // namespace gng::secure
