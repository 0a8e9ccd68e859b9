#include "net/enrol.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file.h"
#include "secure/pki.h"

namespace gng::net {

namespace fs = std::filesystem;

void serve_enrolment(Server& server, const std::string& ca_dir, std::function<void(const std::string&)> told) {
  server.route("POST", "/v1/enrol", [ca_dir, told](const Peer&, const Request& r) {
    nlohmann::json in;
    try {
      in = nlohmann::json::parse(r.body);
    } catch (const nlohmann::json::exception&) {
      throw Failure(400, "an enrolment is a JSON object {\"token\": …, \"request\": …}");
    }
    if (!in.is_object() || !in.contains("token") || !in["token"].is_string() || !in.contains("request") || !in["request"].is_string())
      throw Failure(400, "an enrolment is a JSON object {\"token\": …, \"request\": …}");
    secure::Certificate cert;
    try {
      cert = secure::pki_enrol(ca_dir, in["token"].get<std::string>(), in["request"].get<std::string>(), r.remote);
    } catch (const Error& e) {
      if (told) told("an enrolment from " + r.remote + " is refused: " + e.what());
      throw Failure(403, e.what());
    }
    if (told) told(cert.subject_id() + " enrolled from " + r.remote + " (certificate serial " + cert.serial() + ")");
    const nlohmann::json out{{"certificate", cert.pem()},
                             {"ca", read_file(ca_dir + "/ca.pem")},
                             {"crl", read_file(ca_dir + "/crl.pem")}};
    return Response{200, out.dump()};
  });
}

void enrol(const std::string& dir, const std::string& id, const Address& service, const std::string& token,
           const std::string& ca_file) {
  const std::string key_path = dir + "/issued/" + id + ".key.pem", request_path = secure::request_path(dir, id);
  if (!fs::exists(key_path) || !fs::exists(request_path))
    throw Error(dir + " holds no key and request for '" + id + "' (gng node init " + dir + " --id " + id + " makes them)");
  const secure::Certificate ca = secure::Certificate::from_pem(read_file(ca_file));
  ExternalTls tls;
  tls.ca_file = ca_file;
  tls.groups = "X25519MLKEM768";  // the hybrid post-quantum group or nothing
  Limits limits;
  limits.retries = 1;
  Client client(tls, service.host, service.port, limits);
  const nlohmann::json body{{"token", token}, {"request", read_file(request_path)}};
  const Response r = client.call("POST", "/v1/enrol", body.dump());
  nlohmann::json out;
  try {
    out = nlohmann::json::parse(r.body);
  } catch (const nlohmann::json::exception&) {
    throw Error(service.text() + " answered the enrolment with HTTP " + std::to_string(r.status) + " and no JSON");
  }
  if (r.status != 200)
    throw Error(service.text() + " refused the enrolment (HTTP " + std::to_string(r.status) + "): " +
                out.value("message", std::string("no reason given")));
  for (const char* k : {"certificate", "crl"})
    if (!out.contains(k) || !out[k].is_string()) throw Error(service.text() + " answered the enrolment without '" + k + "'");
  const secure::Certificate cert = secure::Certificate::from_pem(out["certificate"].get<std::string>());
  const secure::SigningKey key = secure::SigningKey::from_pem(read_file(key_path));
  if (cert.public_key().pem() != key.public_key().pem())
    throw Error(service.text() + " returned a certificate for another key than " + key_path);
  if (cert.subject_id() != id || cert.role() != "node")
    throw Error(service.text() + " returned a certificate for '" + cert.subject_id() + "' (" + cert.role() + "), not node '" + id + "'");
  // The CA is the one the operator gave (never the service's word for it); the deny list must be its.
  fs::create_directories(dir + "/issued");
  write_file_atomic(dir + "/ca.pem", ca.pem());
  write_file_atomic(dir + "/crl.pem", out["crl"].get<std::string>());
  const secure::TrustStore trust = secure::TrustStore::load(dir);
  trust.check(cert);
  write_file_atomic(dir + "/issued/" + id + ".pem", cert.pem());
}

}  // namespace gng::net
