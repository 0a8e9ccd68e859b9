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
// What is simulated: this one process plays both KMEs of every link (a real network has one KME per
// site, linked by QKD hardware); the keys are what a BB84 link model distils (see bb84.h).
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

struct KmeConfig {
  std::string pki;                    // the PKI directory: keys go only to SAEs with a certificate in its
                                      // issued/ (node or orchestrator, trusted: not denied, not expired)
  Params link;                        // every SAE pair gets its own simulated link with these parameters
  std::optional<uint64_t> seed;       // reproducible links (tests), each its own stream; none: the DRBG
  int key_size = 256;                 // bits, when a request names none
  int min_key_size = 64, max_key_size = 1024;
  int max_key_per_request = 128;
  int max_key_count = 100000;         // keys held for slaves not yet fetched
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
net::Limits kme_limits();

class Kme {
 public:
  Kme(std::string kme_id, KmeConfig config);
  void mount(net::Server& server);  // adds the ETSI routes

  // The API's operations, callable directly (the routes call these). Throw net::Failure(400|401|503).
  std::string status(const std::string& master, const std::string& slave);  // Status JSON
  std::vector<QkdKey> enc_keys(const std::string& master, const std::string& slave, int number, int size_bits);
  std::vector<QkdKey> dec_keys(const std::string& slave, const std::string& master, const std::vector<std::string>& ids);

 private:
  struct Held {
    std::string master, slave;
    Bytes key;
  };
  void check_known(const std::string& sae) const;  // Failure(400) unless the PKI knows this SAE
  std::string id_;
  KmeConfig config_;
  secure::TrustStore trust_;
  std::mutex mu_;
  std::map<std::pair<std::string, std::string>, std::unique_ptr<Link>> links_;  // by (lower, higher) SAE id
  std::map<std::string, Held> held_;                                            // by key_ID
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
