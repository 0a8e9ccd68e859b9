#pragma once
// ETSI GS QKD 014 v1.1.1 key delivery: a KME that serves the REST API from simulated BB84 links
// (bb84.h), and a client (an SAE's side) of the same API.
//
//   GET  /api/v1/keys/{slave_SAE_ID}/status            → Status
//   POST /api/v1/keys/{slave_SAE_ID}/enc_keys          Key request → Key container   (master SAE)
//   GET  /api/v1/keys/{slave_SAE_ID}/enc_keys?number=&size=
//   POST /api/v1/keys/{master_SAE_ID}/dec_keys         Key IDs → Key container       (slave SAE)
//   GET  /api/v1/keys/{master_SAE_ID}/dec_keys?key_ID=
//
// SAE ids are the callers' certificate names (mutual PQ-TLS, net/rpc.h); a slave SAE must have a
// certificate of the KME's PKI (KmeConfig::pki), or no key is made for it; keys are base64, key_IDs
// UUIDs; errors are 400 (bad request), 401 (unauthorized) and 503 (the KME cannot serve: e.g. the
// link's QBER is above threshold) with {"message": …}. A key goes to the master once and to the
// named slave once, then it is erased.
//
// What is simulated: the keys are what a BB84 link model distils (see bb84.h). Kme below plays both
// KMEs of every link in one process; qkd/network.h's SiteKme is one site's KME of a linked network.
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "qkd/keys.h"
#include "net/rpc.h"
#include "qkd/bb84.h"

namespace gng::qkd {

// What a KME hands out per request and holds for slaves not yet fetched (the API's Status fields).
struct KeyLimits {
  int key_size = 256;  // bits, when a request names none
  int min_key_size = 64, max_key_size = 1024;
  int max_key_per_request = 128;
  int max_key_count = 100000;  // keys held for slaves not yet fetched
  // Failure(400) unless number and size (bits) are within these.
  void check(int number, int size) const;
};

struct KmeConfig {
  std::string pki;                    // the PKI directory: keys go only to SAEs with a certificate in its
                                      // issued/ (node or orchestrator, trusted: not denied, not expired)
  Params link;                        // every SAE pair gets its own simulated link with these parameters
  std::optional<uint64_t> seed;       // reproducible links (tests), each its own stream; none: the DRBG
  KeyLimits limits;
};

struct QkdKey {
  std::string id;  // key_ID
  Bytes key;
};

// The API's JSON bodies, parsed strictly (what reads bytes from the network; fuzzed). Server side:
// a Key request gives (number, size) with the KME's defaults where absent; Key IDs give the ids.
// Both throw net::Failure(400, reason). Client side: a Key container, or gng::Error.
struct KeyRequest {
  int number = 1, size = 0;
};
KeyRequest parse_key_request(const std::string& body, int default_size);
std::vector<std::string> parse_key_ids(const std::string& body);
std::vector<QkdKey> parse_key_container(const std::string& body);

// What a KME's server accepts: ETSI GS QKD 014 requests are small (bodies up to 64 KiB; 413 above),
// and answered at once (TCP_NODELAY).
constexpr std::size_t kMaxEtsiBody = 64u << 10;
net::Limits kme_limits();

// Failure(400) unless `id` is a valid SAE id ([A-Za-z0-9][A-Za-z0-9._-]{0,63}), a key_ID a UUID.
void check_sae(const std::string& id);
void check_key_id(const std::string& id);

// Failure(400) unless `sae` is a valid SAE id with a trusted node or orchestrator certificate in the
// PKI's issued/ (a KME makes no key for anyone else).
void check_slave_known(const std::string& pki, const secure::TrustStore& trust, const std::string& sae);

// Keys that wait for their slave SAE: each is handed out once, then erased; dec_keys is all or nothing.
class HeldKeys {
 public:
  explicit HeldKeys(int max_count) : max_(max_count) {}
  // Failure(503) when full, 409 when `id` is held already, 400 when it is not a UUID.
  void hold(const std::string& id, const std::string& master, const std::string& slave, Bytes key);
  void reserve(std::size_t count) const;  // Failure(503) unless `count` more fit
  std::vector<QkdKey> take(const std::string& slave, const std::string& master, const std::vector<std::string>& ids, int max_per_request);
  std::size_t count(const std::string& master, const std::string& slave) const;

 private:
  struct Held {
    std::string master, slave;
    Bytes key;
  };
  int max_;
  mutable std::mutex mu_;
  std::map<std::string, Held> held_;  // by key_ID
};

// What the ETSI routes serve: a KME's three operations. Throw net::Failure(400|401|503).
class KeyManager {
 public:
  virtual ~KeyManager() = default;
  virtual std::string status(const std::string& master, const std::string& slave) = 0;  // Status JSON
  virtual std::vector<QkdKey> enc_keys(const std::string& master, const std::string& slave, int number, int size_bits) = 0;
  virtual std::vector<QkdKey> dec_keys(const std::string& slave, const std::string& master, const std::vector<std::string>& ids) = 0;
  virtual int default_key_size() const = 0;
};
// The ETSI GS QKD 014 routes above on `server`, for callers with node or orchestrator certificates;
// bodies above 64 KiB are refused (413).
void mount_etsi(net::Server& server, KeyManager& km);

// The ETSI Status JSON.
std::string status_json(const std::string& source_kme, const std::string& target_kme, const std::string& master,
                        const std::string& slave, std::size_t stored, const KeyLimits& limits);

// A KME of one process that plays both ends of every link (the embedded default: one machine).
class Kme final : public KeyManager {
 public:
  Kme(std::string kme_id, KmeConfig config);
  void mount(net::Server& server) { mount_etsi(server, *this); }

  std::string status(const std::string& master, const std::string& slave) override;
  std::vector<QkdKey> enc_keys(const std::string& master, const std::string& slave, int number, int size_bits) override;
  std::vector<QkdKey> dec_keys(const std::string& slave, const std::string& master, const std::vector<std::string>& ids) override;
  int default_key_size() const override { return config_.limits.key_size; }

 private:
  std::string id_;
  KmeConfig config_;
  secure::TrustStore trust_;
  HeldKeys held_;
  std::mutex mu_;
  std::map<std::pair<std::string, std::string>, std::unique_ptr<Link>> links_;  // by (lower, higher) SAE id
};

// An SAE's client of any ETSI GS QKD 014 KME that net::Client reaches (SAE ids are percent-encoded
// into the path).
class KmeClient {
 public:
  explicit KmeClient(net::Client& kme) : kme_(kme) {}
  std::string status(const std::string& slave);  // the Status JSON
  std::vector<QkdKey> enc_keys(const std::string& slave, int number, int size_bits = 256);
  std::vector<QkdKey> dec_keys(const std::string& master, const std::vector<std::string>& ids);

 private:
  net::Client& kme_;
};

// An SAE's keys from its KME over `client` (gng's PQ-TLS to a `gng kme`, or net::ExternalTls to a
// vendor's KME) for the envelopes it seals and opens (qkd::Keys: 256-bit keys; `required` is the
// policy's word). sae_ids maps a gng peer id to the SAE ID the KME knows that peer by (absent: the
// same). Thread-safe: one kept-alive connection, one call at a time. Connects on first use.
qkd::Keys kme_access(std::unique_ptr<net::Client> client, bool required, std::map<std::string, std::string> sae_ids = {});

}  // namespace gng::qkd
