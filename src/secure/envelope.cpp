#include "secure/envelope.h"

#include <cstring>

#include "core/bytes.h"
#include "core/error.h"

namespace gng::secure {

namespace {

constexpr char kInfo[] = "gng envelope v1";
constexpr std::size_t kMaxField = 1024;  // ids, digests, key ids: short strings

using Writer = bytes::Writer<Bytes>;

void put_str(Bytes& b, const std::string& s) { Writer(b).field(s, 2, kMaxField, "envelope header field"); }
void put_blob32(Bytes& b, View v) { Writer(b).uint(v.size(), 4).raw(v.data(), v.size()); }

Bytes encode_header(const EnvelopeHeader& h) {
  Bytes b = {'G', 'N', 'G', 'H', 1};
  put_str(b, h.sender);
  put_str(b, h.recipient);
  put_str(b, h.run);
  Writer(b).uint(h.round, 8).uint(h.seq, 8);
  put_str(b, h.model_digest);
  put_str(b, h.qkd_key_id);
  put_str(b, h.mode);
  return b;
}

EnvelopeHeader decode_header(View bytes) {
  bytes::Reader r(bytes, "envelope");
  r.magic("GNGH", 1, "envelope header");
  EnvelopeHeader h;
  h.sender = r.field(2, "sender");
  h.recipient = r.field(2, "recipient");
  h.run = r.field(2, "run");
  h.round = r.uint(8, "round");
  h.seq = r.uint(8, "seq");
  h.model_digest = r.field(2, "model digest");
  h.qkd_key_id = r.field(2, "QKD key_ID");
  h.mode = r.field(2, "mode");
  r.done("envelope header");
  if (h.mode != "qkd+pqc" && h.mode != "pqc-only") throw Error("envelope mode '" + h.mode + "' is unknown");
  if ((h.mode == "qkd+pqc") == h.qkd_key_id.empty())
    throw Error("envelope mode " + h.mode + (h.qkd_key_id.empty() ? " without" : " with") + " a QKD key_ID");
  return h;
}

// AES key and IV for one envelope.
std::pair<Bytes, Bytes> derive(View exporter, View qkd_key, View header) {
  if (exporter.size() < 32) throw Error("the TLS exporter secret is missing or short (" + std::to_string(exporter.size()) + " bytes)");
  Bytes ikm(exporter.begin(), exporter.end());
  ikm.insert(ikm.end(), qkd_key.begin(), qkd_key.end());
  const Bytes okm = hkdf_sha384(ikm, sha384(header), view(kInfo), 44);
  return {Bytes(okm.begin(), okm.begin() + 32), Bytes(okm.begin() + 32, okm.end())};
}

// What the sender signs: context string, header, and the GCM tag (which authenticates the body).
Bytes signed_part(View header, View body) {
  Bytes m(kInfo, kInfo + sizeof kInfo - 1);
  put_blob32(m, header);
  const View tag = body.size() >= 16 ? body.last(16) : body;
  m.insert(m.end(), tag.begin(), tag.end());
  return m;
}

}  // namespace

std::string model_digest(View update) { return hex(sha256(update)); }

Bytes seal(EnvelopeHeader h, View update, View tls_exporter, View qkd_key, const Identity& sender) {
  if (h.sender != sender.id())
    throw Error("envelope sender '" + h.sender + "' is not the sealing identity '" + sender.id() + "'");
  if (h.model_digest.size() != 64) throw Error("envelope needs the update's model digest (hex SHA-256)");
  if (qkd_key.empty() != h.qkd_key_id.empty())
    throw Error(qkd_key.empty() ? "a QKD key_ID without its key" : "a QKD key without its key_ID");
  if (!qkd_key.empty() && qkd_key.size() < 32) throw Error("a QKD key shorter than 256 bits");
  h.mode = qkd_key.empty() ? "pqc-only" : "qkd+pqc";
  const Bytes header = encode_header(h);
  const auto [key, iv] = derive(tls_exporter, qkd_key, header);
  const Bytes cert = sender.cert.der();
  // One allocation: the body is encrypted in place, then the signature appended.
  Bytes out = {'G', 'N', 'G', 'E', 1};
  out.reserve(out.size() + 4 + header.size() + 4 + cert.size() + 8 + update.size() + 16 + 4 + 8192);  // ML-DSA signatures fit in 8 KiB
  put_blob32(out, header);
  put_blob32(out, cert);
  Writer(out).uint(update.size() + 16, 8);
  const std::size_t at = out.size();
  out.resize(at + update.size() + 16);  // within the reservation: no reallocation, no copy
  aes256gcm_seal_to(key, iv, header, update, out.data() + at);
  const Bytes sig = sender.key.sign(signed_part(header, View(out).subspan(at)));
  put_blob32(out, sig);
  return out;
}

ParsedEnvelope parse_envelope(View wire) {
  bytes::Reader r(wire, "envelope");
  r.magic("GNGE", 1, "envelope");
  ParsedEnvelope p;
  const View header = r.blob(4, "header");
  p.header = decode_header(header);
  p.header_bytes = header;
  p.sender_cert_der = r.blob(4, "sender certificate");
  p.body = r.blob(8, "body");
  if (p.body.size() < 16) throw Error("envelope body shorter than its 16-byte tag");
  p.signature = r.blob(4, "signature");
  r.done("envelope");
  return p;
}

// Throws when (round, seq) is not above the last accepted one for (sender, run); mu_ held.
void ReplayGuard::refuse_replay(const EnvelopeHeader& h) const {
  const auto it = last_.find(std::make_pair(h.sender, h.run));
  if (it != last_.end() && std::make_pair(h.round, h.seq) <= it->second)
    throw Error("replayed envelope from '" + h.sender + "' (run " + h.run + ", round " + std::to_string(h.round) +
                ", seq " + std::to_string(h.seq) + "; last accepted round " + std::to_string(it->second.first) +
                ", seq " + std::to_string(it->second.second) + ")");
}

void ReplayGuard::check(const EnvelopeHeader& h) {
  std::lock_guard lock(mu_);
  refuse_replay(h);
}

void ReplayGuard::check_and_record(const EnvelopeHeader& h) {
  std::lock_guard lock(mu_);
  refuse_replay(h);
  last_[std::make_pair(h.sender, h.run)] = std::make_pair(h.round, h.seq);
}

Opened open(View wire, const OpenOptions& o) {
  if (!o.trust) throw std::logic_error("open: no trust store");
  ParsedEnvelope p = parse_envelope(wire);
  const EnvelopeHeader& h = p.header;
  if (h.recipient != o.me) throw Error("envelope is for '" + h.recipient + "', not for '" + o.me + "'");
  Certificate cert;
  try {
    cert = Certificate::from_der(p.sender_cert_der);
  } catch (const Error& e) {
    throw Error(std::string("envelope sender certificate: ") + e.what());
  }
  o.trust->check(cert);  // names expired / denied / foreign certificates
  if (cert.subject_id() != h.sender)
    throw Error("envelope claims sender '" + h.sender + "' but carries the certificate of '" + cert.subject_id() + "'");
  if (!cert.public_key().verify(signed_part(p.header_bytes, p.body), p.signature))
    throw Error("envelope signature of '" + h.sender + "' does not verify");
  if (h.mode == "pqc-only" && !o.allow_pqc_only)
    throw Error("envelope from '" + h.sender + "' is pqc-only and the policy requires QKD keys");
  if (o.replay) o.replay->check(h);  // before a QKD key is spent on it
  Bytes qkd;
  if (h.mode == "qkd+pqc") {
    if (!o.qkd_key) throw Error("envelope needs QKD key " + h.qkd_key_id + " and this recipient has no KME");
    qkd = o.qkd_key(h.sender, h.qkd_key_id);
  }
  const auto [key, iv] = derive(o.tls_exporter, qkd, p.header_bytes);
  Opened out{h, {}};
  if (!aes256gcm_open(key, iv, p.header_bytes, p.body, out.update))
    throw Error("envelope from '" + h.sender + "' does not authenticate (wrong session, wrong QKD key or altered body)");
  if (model_digest(out.update) != h.model_digest)
    throw Error("envelope from '" + h.sender + "': the update does not match its model digest " + h.model_digest);
  if (o.replay) o.replay->check_and_record(h);
  return out;
}

}  // namespace gng::secure
