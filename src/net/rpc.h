#pragma once
// The transport every gng exchange uses: HTTPS over TLS 1.3 only, key exchange only X25519MLKEM768
// (the IETF hybrid of X25519 and ML-KEM-768), mutual authentication with ML-DSA certificates from
// the project's CA (secure/pki.h), deny list enforced. cpp-httplib carries it, on OpenSSL >= 3.5.
//
// Two kinds of routes on one Server: unary RPCs (POST /rpc/<name>, a protobuf message in and out,
// see proto/gng.proto) and plain REST routes (the ETSI GS QKD 014 API). Handlers learn the caller's
// verified identity (Peer). The Client retries connection failures with exponential back-off,
// honours a deadline, and knows the TLS exporter secret of its session (for sealed envelopes).
// One exception to the profile: a Client can reach a server outside gng's PKI with that server's
// TLS settings (ExternalTls), for a vendor's QKD key manager.
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>

#include "core/address.h"
#include "core/error.h"
#include "secure/pki.h"

typedef struct ssl_ctx_st SSL_CTX;

namespace gng::net {

// The peer of a TLS session, as its verified certificate names it.
struct Peer {
  std::string id, role;          // certificate CN / OU
  std::string fingerprint;       // hex SHA-256 of its certificate's DER
  std::string tls_group;         // negotiated key-exchange group ("X25519MLKEM768")
  secure::Bytes exporter;        // 48 bytes of RFC 8446 §7.5 exporter, label "EXPORTER-gng-envelope-v1"
  secure::Certificate certificate;
};

struct Request {
  std::string method, path, body, content_type;
  std::map<std::string, std::string> query;  // decoded query parameters
  std::vector<std::string> captures;         // regex groups of the route pattern
  std::string remote;                        // the caller's address, HOST:PORT
};

struct Response {
  int status = 200;
  std::string body, content_type = "application/json";
};

// A handler throws Failure to answer with that HTTP status and message (JSON {"message": …}).
struct Failure : std::runtime_error {
  Failure(int status, const std::string& message) : std::runtime_error(message), status(status) {}
  int status;
};

// No answer at all (refused, reset, TLS failure, deadline): the peer may be down.
struct Unreachable : Error {
  using Error::Error;
};

struct Limits {
  std::size_t max_body = 256u << 20;    // request/response bodies above this are refused (413)
  std::chrono::milliseconds timeout{30000};  // per request: connect + read + write
  int retries = 3;                      // connection failures (and a GET's broken reads); back-off 100 ms, 200 ms, 400 ms …
  std::size_t connections = 512;        // a server's open connections, each on its own thread (http.h)
  bool nodelay = false;                 // TCP_NODELAY: small request/answer exchanges go out at once instead of
                                        // waiting on Nagle and the peer's delayed ACK (the dial-in fabric sets it)
  std::string source;                   // a client's own address to connect from (an IP literal; "" = the
                                        // system's choice): a site on a host with several addresses
  bool anonymous_clients = false;       // a server that asks callers for no certificate: only the enrolment
                                        // service (net/enrol.h), whose callers have none yet
};

// The policy above as a fresh OpenSSL context (TLS 1.3 only, X25519MLKEM768 only, our certificate,
// the CA and deny list, peer certificates required): what Server and Client use, for tools and
// benchmarks that drive OpenSSL directly. The caller frees it with SSL_CTX_free.
SSL_CTX* tls_context(const secure::Identity& me, const secure::TrustStore& trust, bool server);

// TLS to a server outside gng's PKI: a vendor's QKD key manager (KME), say. TLS 1.2 or 1.3; the
// server's certificate must chain to ca_file and name the host (DNS or IP SAN); our certificate
// (with any intermediates) and key come from PEM files, in whatever algorithm the vendor issued
// (none, both empty: a site enrolling, which has no certificate yet).
// groups is OpenSSL's list in order of preference: the hybrid post-quantum group first, classical
// groups after it for servers that have none (set groups to "X25519MLKEM768" to refuse those).
struct ExternalTls {
  std::string ca_file, cert_file, key_file;
  std::string groups = "X25519MLKEM768:X25519:P-256:P-384";
};

class Server {
 public:
  Server(const secure::Identity& me, const secure::TrustStore& trust, Limits limits = {});
  ~Server();
  using Handler = std::function<Response(const Peer&, const Request&)>;
  // A REST route: method "GET" or "POST", path an ECMAScript regex matched against the whole path.
  void route(const std::string& method, const std::string& pattern, Handler h);
  // A unary RPC: POST /rpc/<name>, body and reply are serialized protobuf messages.
  void rpc(const std::string& name, std::function<std::string(const Peer&, const std::string&)> h);
  // Told (on the serving thread) of each request refused because the caller's certificate, trusted
  // at its handshake, is denied or expired since; the caller gets 403 naming why. Set before listen.
  void on_refusal(std::function<void(const Peer&, const std::string& why)> f);
  int listen(const std::string& host, int port);  // binds (port 0: any free one), serves on a thread
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class Client {
 public:
  Client(const secure::Identity& me, const secure::TrustStore& trust, const std::string& host, int port,
         Limits limits = {});
  // The same client to a server outside gng's PKI (see ExternalTls).
  Client(const ExternalTls& tls, const std::string& host, int port, Limits limits = {});
  ~Client();
  // Any route. Throws gng::Error naming host:port and the cause when no answer could be had
  // (refused, TLS handshake or certificate failure, deadline); an HTTP error status is returned.
  Response call(const std::string& method, const std::string& path, const std::string& body = "",
                const std::string& content_type = "application/json");
  // A unary RPC; a non-200 answer throws gng::Error with the server's message.
  std::string rpc(const std::string& name, const std::string& body);
  // The current TLS session (connecting first if there is none): its exporter secret, group, and
  // the server's certificate id. A new connection has a new exporter.
  Peer session();
  // The session the last call went over (even if the server has closed it since): what a sealed
  // reply to that call is bound to.
  Peer last_session();
  // Ends the call in progress on another thread (it fails as Unreachable); the next call reconnects.
  void interrupt();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gng::net
