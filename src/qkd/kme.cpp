#include "qkd/kme.h"

#include <nlohmann/json.hpp>

#include <cctype>
#include <cstdio>
#include <filesystem>

#include <regex>

#include "core/error.h"
#include "core/file.h"

namespace gng::qkd {

namespace {

using json = nlohmann::json;
using net::Failure;

const std::regex kSaeId("[A-Za-z0-9][A-Za-z0-9._-]{0,63}");
const std::regex kUuid("[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}");

}  // namespace

void check_sae(const std::string& id) {
  if (!std::regex_match(id, kSaeId)) throw Failure(400, "invalid SAE_ID '" + id.substr(0, 80) + "'");
}

void check_key_id(const std::string& id) {
  if (!std::regex_match(id, kUuid)) throw Failure(400, "key_ID '" + id.substr(0, 80) + "' is not a UUID");
}

namespace {

// Only SAEs (nodes and the orchestrator) may ask a KME for keys.
void check_caller(const net::Peer& p) {
  if (p.role != "node" && p.role != "orchestrator")
    throw Failure(401, "'" + p.id + "' (" + p.role + ") is not an SAE: only node and orchestrator certificates get keys");
}

json container(const std::vector<QkdKey>& keys) {
  json out = {{"keys", json::array()}};
  for (const auto& k : keys) out["keys"].push_back({{"key_ID", k.id}, {"key", secure::base64(k.key)}});
  return out;
}

json parse_body(const std::string& body) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {
    throw Failure(400, std::string("request body is not JSON: ") + e.what());
  }
  if (!j.is_object()) throw Failure(400, "request body must be a JSON object");
  return j;
}

int integer_field(const json& j, const char* name, int fallback) {
  if (!j.contains(name)) return fallback;
  if (!j[name].is_number_integer()) throw Failure(400, std::string("'") + name + "' must be an integer");
  const auto v = j[name].get<int64_t>();
  if (v < 0 || v > 1'000'000) throw Failure(400, std::string("'") + name + "' is out of range");
  return static_cast<int>(v);
}

int query_int(const net::Request& r, const char* name, int fallback) {
  const auto it = r.query.find(name);
  if (it == r.query.end()) return fallback;
  if (it->second.empty() || it->second.size() > 7 || it->second.find_first_not_of("0123456789") != std::string::npos)
    throw Failure(400, std::string("query parameter '") + name + "' must be a non-negative integer");
  return std::stoi(it->second);
}

net::Response ok(const json& j) { return {200, j.dump()}; }

// ETSI requests are small; a server that also takes larger messages (network.h) still refuses these.
void check_body(const net::Request& r) {
  if (r.body.size() > kMaxEtsiBody) throw Failure(413, "request body above " + std::to_string(kMaxEtsiBody) + " bytes");
}

}  // namespace

KeyRequest parse_key_request(const std::string& body, int default_size) {
  const json j = parse_body(body);
  KeyRequest k{integer_field(j, "number", 1), integer_field(j, "size", default_size)};
  if (j.contains("additional_slave_SAE_IDs") && !j["additional_slave_SAE_IDs"].empty())
    throw Failure(400, "additional_slave_SAE_IDs is not supported by this KME (max_SAE_ID_count 0)");
  if (j.contains("extension_mandatory") && !j["extension_mandatory"].empty())
    throw Failure(400, "extension_mandatory is not supported by this KME");
  return k;
}

std::vector<std::string> parse_key_ids(const std::string& body) {
  const json j = parse_body(body);
  if (!j.contains("key_IDs") || !j["key_IDs"].is_array()) throw Failure(400, "'key_IDs' must be an array");
  std::vector<std::string> ids;
  for (const auto& k : j["key_IDs"]) {
    if (!k.is_object() || !k.contains("key_ID") || !k["key_ID"].is_string())
      throw Failure(400, "each entry of 'key_IDs' must be an object with a string 'key_ID'");
    ids.push_back(k["key_ID"].get<std::string>());
  }
  return ids;
}

std::vector<QkdKey> parse_key_container(const std::string& body) {
  std::vector<QkdKey> out;
  try {
    const json j = json::parse(body);
    for (const auto& k : j.at("keys")) out.push_back({k.at("key_ID").get<std::string>(), secure::from_base64(k.at("key").get<std::string>())});
  } catch (const json::exception& e) {
    throw Error(std::string("not a key container: ") + e.what());
  }
  return out;
}

void KeyLimits::check(int number, int size) const {
  if (number < 1 || number > max_key_per_request)
    throw Failure(400, "number must be in 1.." + std::to_string(max_key_per_request) + ", got " + std::to_string(number));
  if (size % 8 != 0 || size < min_key_size || size > max_key_size)
    throw Failure(400, "size must be a multiple of 8 in " + std::to_string(min_key_size) + ".." + std::to_string(max_key_size) +
                           " bits, got " + std::to_string(size));
}

void check_slave_known(const std::string& pki, const secure::TrustStore& trust, const std::string& sae) {
  check_sae(sae);
  const std::string path = pki + "/issued/" + sae + ".pem";
  std::string why;
  if (!std::filesystem::exists(path)) {
    why = "has no certificate of this KME's PKI";
  } else {
    const secure::Certificate cert = secure::Certificate::from_pem(read_file(path));
    if (cert.role() != "node" && cert.role() != "orchestrator") {
      why = "is a " + cert.role() + ", not an SAE";
    } else {
      try {
        trust.check(cert);
      } catch (const Error& e) {
        why = std::string("has no valid certificate: ") + e.what();
      }
    }
  }
  if (!why.empty()) throw Failure(400, "slave SAE '" + sae + "' " + why + ": no keys for it");
}

void HeldKeys::reserve(std::size_t count) const {
  std::lock_guard lock(mu_);
  if (held_.size() + count > static_cast<std::size_t>(max_))
    throw Failure(503, "key store full: " + std::to_string(held_.size()) + " keys wait for their slaves");
}

void HeldKeys::hold(const std::string& id, const std::string& master, const std::string& slave, Bytes key) {
  check_key_id(id);
  std::lock_guard lock(mu_);
  if (held_.size() >= static_cast<std::size_t>(max_))
    throw Failure(503, "key store full: " + std::to_string(held_.size()) + " keys wait for their slaves");
  if (!held_.emplace(id, Held{master, slave, std::move(key)}).second) throw Failure(409, "key_ID " + id + " is already held");
}

std::size_t HeldKeys::count(const std::string& master, const std::string& slave) const {
  std::lock_guard lock(mu_);
  std::size_t n = 0;
  for (const auto& [id, h] : held_) n += h.master == master && h.slave == slave;
  return n;
}

std::vector<QkdKey> HeldKeys::take(const std::string& slave, const std::string& master, const std::vector<std::string>& ids,
                                   int max_per_request) {
  check_sae(master);
  if (ids.empty()) throw Failure(400, "no key_IDs requested");
  if (ids.size() > static_cast<std::size_t>(max_per_request))
    throw Failure(400, "at most " + std::to_string(max_per_request) + " key_IDs per request");
  std::lock_guard lock(mu_);
  // All or nothing: check every id before handing any out.
  for (const auto& id : ids) {
    check_key_id(id);
    const auto it = held_.find(id);
    if (it == held_.end() || it->second.slave != slave || it->second.master != master)
      throw Failure(400, "key_ID " + id + " is unknown to this KME for master '" + master + "' and slave '" + slave + "'");
  }
  std::vector<QkdKey> out;
  for (const auto& id : ids) {
    auto node = held_.extract(id);
    out.push_back({id, std::move(node.mapped().key)});
  }
  return out;
}

Kme::Kme(std::string kme_id, KmeConfig config)
    : id_(std::move(kme_id)), config_(std::move(config)), trust_(secure::TrustStore::load(config_.pki)), held_(config_.limits.max_key_count) {
  validate(config_.link);
}

std::string status_json(const std::string& source, const std::string& target, const std::string& master, const std::string& slave,
                        std::size_t stored, const KeyLimits& l) {
  return json{{"source_KME_ID", source},
              {"target_KME_ID", target},
              {"master_SAE_ID", master},
              {"slave_SAE_ID", slave},
              {"key_size", l.key_size},
              {"stored_key_count", stored},
              {"max_key_count", l.max_key_count},
              {"max_key_per_request", l.max_key_per_request},
              {"max_key_size", l.max_key_size},
              {"min_key_size", l.min_key_size},
              {"max_SAE_ID_count", 0}}
      .dump();
}

std::string Kme::status(const std::string& master, const std::string& slave) {
  check_sae(slave);
  return status_json(id_, id_, master, slave, held_.count(master, slave), config_.limits);
}

net::Limits kme_limits() {
  net::Limits l;
  l.max_body = kMaxEtsiBody;
  l.nodelay = true;  // key requests are small: measured 407 → 15 ms of exchange per node and round with it
  return l;
}

std::vector<QkdKey> Kme::enc_keys(const std::string& master, const std::string& slave, int number, int size) {
  check_sae(slave);
  if (slave == master) throw Failure(400, "master and slave SAE are the same ('" + slave + "')");
  check_slave_known(config_.pki, trust_, slave);
  config_.limits.check(number, size);
  held_.reserve(static_cast<std::size_t>(number));
  std::lock_guard lock(mu_);
  auto& link = links_[std::minmax(master, slave)];
  if (!link) {
    // A seed (tests) makes each link reproducible, and each link's stream its own: mixed with the pair.
    std::optional<uint64_t> seed = config_.seed;
    if (seed) seed = link_seed(*seed, master, slave);
    link = std::make_unique<Link>(config_.link, seed);
  }
  KeyPair material;
  try {
    material = link->take(static_cast<std::size_t>(number) * static_cast<std::size_t>(size / 8));
  } catch (const Error& e) {
    throw Failure(503, std::string("the QKD link ") + master + "–" + slave + " delivers no key: " + e.what());
  }
  std::vector<QkdKey> out;
  const std::size_t bytes = static_cast<std::size_t>(size / 8);
  for (int i = 0; i < number; ++i) {
    QkdKey k{secure::uuid4(), Bytes(material.alice.begin() + i * bytes, material.alice.begin() + (i + 1) * bytes)};
    held_.hold(k.id, master, slave, Bytes(material.bob.begin() + i * bytes, material.bob.begin() + (i + 1) * bytes));
    out.push_back(std::move(k));
  }
  return out;
}

std::vector<QkdKey> Kme::dec_keys(const std::string& slave, const std::string& master, const std::vector<std::string>& ids) {
  return held_.take(slave, master, ids, config_.limits.max_key_per_request);
}

void mount_etsi(net::Server& server, KeyManager& km) {
  const std::string base = "/api/v1/keys/([^/]+)/";
  server.route("GET", base + "status", [&km](const net::Peer& p, const net::Request& r) {
    check_caller(p);
    return net::Response{200, km.status(p.id, r.captures.at(0))};
  });
  auto enc = [&km](const net::Peer& p, const net::Request& r) {
    check_caller(p);
    check_body(r);
    KeyRequest k{1, km.default_key_size()};
    if (r.method == "POST") {
      k = parse_key_request(r.body, km.default_key_size());
    } else {
      k.number = query_int(r, "number", 1);
      k.size = query_int(r, "size", km.default_key_size());
    }
    return ok(container(km.enc_keys(p.id, r.captures.at(0), k.number, k.size)));
  };
  server.route("POST", base + "enc_keys", enc);
  server.route("GET", base + "enc_keys", enc);
  auto dec = [&km](const net::Peer& p, const net::Request& r) {
    check_caller(p);
    check_body(r);
    std::vector<std::string> ids;
    if (r.method == "POST") {
      ids = parse_key_ids(r.body);
    } else {
      const auto it = r.query.find("key_ID");
      if (it == r.query.end()) throw Failure(400, "query parameter 'key_ID' is missing");
      ids.push_back(it->second);
    }
    return ok(container(km.dec_keys(p.id, r.captures.at(0), ids)));
  };
  server.route("POST", base + "dec_keys", dec);
  server.route("GET", base + "dec_keys", dec);
}

// --- client ----------------------------------------------------------------------------------------------

namespace {

// An SAE ID as one path segment: RFC 3986 unreserved characters as they are, the rest %XX.
std::string path_segment(const std::string& id) {
  std::string out;
  for (const unsigned char c : id) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

std::vector<QkdKey> keys_of(const net::Response& r, const std::string& what) {
  if (r.status != 200) {
    std::string message = r.body;
    try {
      message = json::parse(r.body).at("message").get<std::string>();
    } catch (const json::exception&) {
    }
    throw Error("KME refused " + what + " (HTTP " + std::to_string(r.status) + "): " + message);
  }
  try {
    return parse_key_container(r.body);
  } catch (const Error& e) {
    throw Error("KME answer to " + what + ": " + e.what());
  }
}

}  // namespace

std::string KmeClient::status(const std::string& slave) {
  const net::Response r = kme_.call("GET", "/api/v1/keys/" + path_segment(slave) + "/status");
  if (r.status != 200) throw Error("KME refused status (HTTP " + std::to_string(r.status) + "): " + r.body);
  return r.body;
}

std::vector<QkdKey> KmeClient::enc_keys(const std::string& slave, int number, int size_bits) {
  const json req = {{"number", number}, {"size", size_bits}};
  auto keys = keys_of(kme_.call("POST", "/api/v1/keys/" + path_segment(slave) + "/enc_keys", req.dump()), "enc_keys for " + slave);
  if (keys.size() != static_cast<std::size_t>(number))
    throw Error("KME returned " + std::to_string(keys.size()) + " keys, asked for " + std::to_string(number));
  return keys;
}

std::vector<QkdKey> KmeClient::dec_keys(const std::string& master, const std::vector<std::string>& ids) {
  json req = {{"key_IDs", json::array()}};
  for (const auto& id : ids) req["key_IDs"].push_back({{"key_ID", id}});
  return keys_of(kme_.call("POST", "/api/v1/keys/" + path_segment(master) + "/dec_keys", req.dump()), "dec_keys from " + master);
}

qkd::Keys kme_access(std::unique_ptr<net::Client> client, bool required, std::map<std::string, std::string> sae_ids) {
  struct Line {
    std::mutex mu;
    std::unique_ptr<net::Client> client;
    std::map<std::string, std::string> sae_ids;
    const std::string& sae(const std::string& id) const {
      const auto it = sae_ids.find(id);
      return it == sae_ids.end() ? id : it->second;
    }
  };
  auto line = std::make_shared<Line>();
  line->client = std::move(client);
  line->sae_ids = std::move(sae_ids);
  // A key for an AES-256 envelope key derivation is 32 bytes, whatever the KME's default size.
  const auto check = [](const QkdKey& k, const std::string& what) {
    if (k.key.size() != 32)
      throw Error("KME gave key " + k.id + " for " + what + " with " + std::to_string(8 * k.key.size()) + " bits, not 256");
  };
  qkd::Keys q;
  q.required = required;
  q.for_sending = [line, check](const std::string& recipient) {
    std::lock_guard lock(line->mu);
    QkdKey k = KmeClient(*line->client).enc_keys(line->sae(recipient), 1).at(0);
    check(k, recipient);
    return qkd::KeyForSend{std::move(k.id), std::move(k.key)};
  };
  q.for_opening = [line, check](const std::string& sender, const std::string& key_id) {
    std::lock_guard lock(line->mu);
    std::vector<QkdKey> keys = KmeClient(*line->client).dec_keys(line->sae(sender), {key_id});
    if (keys.size() != 1 || keys[0].id != key_id) throw Error("KME answered dec_keys for " + key_id + " with other keys");
    check(keys[0], sender);
    return std::move(keys[0].key);
  };
  return q;
}

}  // namespace gng::qkd
