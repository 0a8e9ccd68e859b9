#pragma once
// A KME of a QKD network: one per site, serving ETSI GS QKD 014 to its own site's SAEs only, linked
// to the KMEs of other sites (qkd/topology.h). What travels between KMEs and what never does:
//
//  - Per link, its Alice (the KME whose id sorts first) runs BB84 with its Bob one block at a time:
//    the photons are SIMULATED (the link model, bb84.h; they reach Bob as a message standing in for
//    the fibre), the classical post-processing (sifting, estimation, Cascade, verification, privacy
//    amplification) is real and runs between the two KMEs over mutual PQ-TLS with kme
//    certificates (proto/gng.proto's Qkd* messages). Both ends pool the same final key; no key is
//    sent. Half of each block's key is Alice's to hand out, half Bob's, so neither waits on the other.
//  - A master SAE's enc_keys for a slave at another site: its KME takes the key from the first link
//    of the shortest route with the link up and names the bytes it used to the next KME (QkdHop);
//    a trusted relay on the way forwards it one-time-padded with its next link's key; the slave's
//    KME holds it for dec_keys. A link that fails (peer down, QBER above the threshold: an
//    eavesdropper) is routed around; with no route left the answer is 503. A key reaches the master
//    only after the slave's KME holds it: a relay that dies mid-way delivers nothing, and the bytes
//    either end took are gone at both ends of that link alike.
//  - Link sessions: Alice opens one (QkdHello) on start and after any failure; both ends then drop
//    their pools, so a restarted KME never mistakes old key for new. Every message names the session
//    and block, and arrives in the protocol's order or is refused (409): a replayed or out-of-order
//    message changes nothing.
//
// Each link's QBER, key rate and pool are in links() (GET /api/v1/gng/links) and as Prometheus
// metrics (GET /metrics); each relay, delivery and link session goes into the KME's audit log.
#include <atomic>
#include <chrono>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "qkd/kme.h"
#include "qkd/topology.h"

namespace gng::audit {
class AuditLog;
}
namespace gng::rpc {
class QkdHop;
class QkdHopReply;
}

namespace gng::qkd {

struct SiteKmeConfig {
  std::string pki;  // the network's CA (ca.pem, crl.pem): peers are its kme certificates, SAEs node/orchestrator
  Topology topology;
  std::optional<uint64_t> seed;              // reproducible links (tests); none: the DRBG
  KeyLimits limits;
  std::size_t pool_bytes = 64u << 10;        // Alice fills each half of each link's pool to this, from
                                             // when one falls below half of it
  std::chrono::milliseconds key_wait{10000}; // how long a key request waits for a link's pool
  std::string audit_dir;                     // the KME's audit log (audit.db) here; "" for none
};

// What a server of a network KME accepts: ETSI requests up to 64 KiB (checked per route), peer
// messages up to 4 MiB (a block's photons and amplification seed).
net::Limits site_kme_limits();

class SiteKme final : public KeyManager {
 public:
  SiteKme(const secure::Identity& me, SiteKmeConfig config);
  ~SiteKme() override;
  void mount(net::Server& server);  // ETSI routes, the peer RPCs, /api/v1/gng/links, /metrics
  void start();                     // the links' block loops (after the server listens)
  void stop();

  std::string status(const std::string& master, const std::string& slave) override;
  std::vector<QkdKey> enc_keys(const std::string& master, const std::string& slave, int number, int size_bits) override;
  std::vector<QkdKey> dec_keys(const std::string& slave, const std::string& master, const std::vector<std::string>& ids) override;
  int default_key_size() const override { return config_.limits.key_size; }

  nlohmann::json links() const;
  std::string metrics() const;
  const std::string& id() const { return id_; }

 private:
  struct Link;
  Link& link_to(const std::string& peer) const;
  Link& link_from(const net::Peer& p, const std::string& session) const;  // a peer RPC's link, checked
  void run_link(Link& l);
  void run_block(Link& l);
  // Link key for the next hop over `l`: this end's share, waited for until `deadline`, its session
  // and byte ranges written into `hop`; nullopt, with `why`, when none came.
  std::optional<Bytes> take_link_key(Link& l, std::size_t bytes, std::chrono::steady_clock::time_point deadline, rpc::QkdHop& hop,
                                     std::string& why);
  rpc::QkdHopReply forward(Link& l, const rpc::QkdHop& hop);  // no answer: a reply that this link failed
  // One key from here to the slave's KME, over the first route that delivers it.
  QkdKey send_key(const std::string& master, const std::string& slave, const std::string& to_kme, std::size_t bytes);
  std::string hop(const net::Peer& p, const std::string& body);  // QkdHop handler
  void audit(const std::string& kind, const nlohmann::json& detail);

  std::string id_;
  secure::Identity me_;
  SiteKmeConfig config_;
  secure::TrustStore trust_;
  HeldKeys held_;
  std::vector<std::unique_ptr<Link>> links_;
  std::unique_ptr<audit::AuditLog> audit_;
  std::atomic<bool> stopping_{false};
  std::vector<std::thread> threads_;
};

}  // namespace gng::qkd
