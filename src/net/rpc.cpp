#include "net/rpc.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <httplib.h>

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <cstring>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "net/http.h"

namespace gng::net {

namespace {

// A server closes a connection idle this long; a client stops reusing one a second earlier.
constexpr std::chrono::seconds kKeepAlive{5};
constexpr std::chrono::milliseconds kReuseIdle = kKeepAlive - std::chrono::seconds(1);
constexpr const char* kGroup = "X25519MLKEM768";
constexpr const char* kExporterLabel = "EXPORTER-gng-envelope-v1";

std::string ssl_errors() {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    out += (out.empty() ? "" : "; ") + std::string(buf);
  }
  return out;
}

// The peer's certificate is judged by the TrustStore (chain to the CA, validity, deny list, with
// its memory of certificates already verified); the context owns a copy of the store.
int trust_slot() {
  static const int index = SSL_CTX_get_ex_new_index(
      0, nullptr, nullptr, nullptr, [](void*, void* p, CRYPTO_EX_DATA*, int, long, void*) {
        delete static_cast<secure::TrustStore*>(p);
      });
  return index;
}

int verify_peer(X509_STORE_CTX* store_ctx, void* arg) {
  X509* leaf = X509_STORE_CTX_get0_cert(store_ctx);
  if (!leaf) return 0;
  X509_up_ref(leaf);
  const int err = static_cast<const secure::TrustStore*>(arg)->verify(secure::Certificate(leaf));
  X509_STORE_CTX_set_error(store_ctx, err);
  return err == X509_V_OK ? 1 : 0;
}

// TLS 1.3 only, the hybrid post-quantum group only, our identity, the CA and deny list, and the
// peer must present a certificate that chains to the CA.
bool harden(SSL_CTX* ctx, const secure::Identity& me, const secure::TrustStore& trust, bool server, bool anonymous = false) {
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 || SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
      SSL_CTX_set1_groups_list(ctx, kGroup) != 1 || SSL_CTX_use_certificate(ctx, me.cert.get()) != 1 ||
      SSL_CTX_use_PrivateKey(ctx, me.key.get()) != 1 || SSL_CTX_check_private_key(ctx) != 1)
    return false;
  SSL_CTX_set_cert_store(ctx, trust.x509_store());  // the context owns the store
  auto* judge = new secure::TrustStore(trust);
  SSL_CTX_set_ex_data(ctx, trust_slot(), judge);  // freed with the context
  SSL_CTX_set_cert_verify_callback(ctx, verify_peer, judge);
  SSL_CTX_set_verify(ctx, anonymous ? SSL_VERIFY_NONE : SSL_VERIFY_PEER | (server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), nullptr);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
  // Send the leaf alone: every peer holds the CA, and gng's PKI has no intermediates. Without
  // this, OpenSSL rebuilds and re-verifies our own chain (an ML-DSA-87 verification) on every
  // handshake, on both ends.
  SSL_CTX_set_mode(ctx, SSL_MODE_NO_AUTO_CHAIN);
  return true;
}

std::string name_field(X509* cert, int nid) {
  if (!cert) return "";
  X509_NAME* name = X509_get_subject_name(cert);
  const int i = X509_NAME_get_index_by_NID(name, nid, -1);
  if (i < 0) return "";
  const ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), ASN1_STRING_length(s));
}

Peer peer_of(SSL* ssl) {
  Peer p;
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (cert) {
    X509_up_ref(cert);
    p.certificate = secure::Certificate(cert);
  }
  p.id = name_field(cert, NID_commonName);
  p.role = name_field(cert, NID_organizationalUnitName);
  unsigned char md[32];
  unsigned int n = 0;
  if (cert && X509_digest(cert, EVP_sha256(), md, &n) == 1) {
    static const char* digits = "0123456789abcdef";
    for (unsigned int i = 0; i < n; ++i) p.fingerprint += {digits[md[i] >> 4], digits[md[i] & 15]};
  }
  const int group = SSL_get_negotiated_group(ssl);
  const char* name = group ? SSL_group_to_name(ssl, group) : nullptr;
  p.tls_group = name ? name : "";
  p.exporter.resize(48);
  if (SSL_export_keying_material(ssl, p.exporter.data(), p.exporter.size(), kExporterLabel,
                                 std::char_traits<char>::length(kExporterLabel), nullptr, 0, 0) != 1)
    p.exporter.clear();
  return p;
}

// A client's source address (port 0), checked by binding a throwaway socket to it.
sockaddr_storage source_address(const std::string& ip) {
  addrinfo hints{}, *found = nullptr;
  hints.ai_flags = AI_NUMERICHOST;
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(ip.c_str(), "0", &hints, &found) != 0 || !found)
    throw Error("source address '" + ip + "' is not an IP address");
  sockaddr_storage out{};
  std::memcpy(&out, found->ai_addr, found->ai_addrlen);
  const socklen_t n = found->ai_addrlen;
  freeaddrinfo(found);
  const int probe = ::socket(out.ss_family, SOCK_STREAM, 0);
  const bool ok = probe >= 0 && ::bind(probe, reinterpret_cast<const sockaddr*>(&out), n) == 0;
  if (probe >= 0) ::close(probe);
  if (!ok) throw Error("cannot connect from " + ip + ": not an address of this host");
  return out;
}

std::string failure_body(const std::string& message) {
  std::string escaped;
  for (char c : message) {
    if (c == '"' || c == '\\') escaped += '\\';
    escaped += (static_cast<unsigned char>(c) < 0x20) ? ' ' : c;
  }
  return "{\"message\": \"" + escaped + "\"}";
}

std::chrono::seconds whole_seconds(std::chrono::milliseconds ms) {
  return std::max(std::chrono::seconds(1), std::chrono::duration_cast<std::chrono::seconds>(ms));
}

}  // namespace

SSL_CTX* tls_context(const secure::Identity& me, const secure::TrustStore& trust, bool server) {
  SSL_CTX* ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (!ctx || !harden(ctx, me, trust, server)) {
    SSL_CTX_free(ctx);
    throw Error("cannot set up a TLS context for '" + me.id() + "': " + ssl_errors());
  }
  return ctx;
}

// --- Server --------------------------------------------------------------------------------------------

struct Server::Impl {
  secure::Identity me;
  secure::TrustStore trust;
  Limits limits;
  bool setup_ok = false;
  std::unique_ptr<httplib::SSLServer> http;
  std::thread thread;
  std::function<void(const Peer&, const std::string&)> refused;
};

Server::Server(const secure::Identity& me, const secure::TrustStore& trust, Limits limits) : impl_(new Impl) {
  impl_->me = me;
  impl_->trust = trust;
  impl_->limits = limits;
  impl_->http = std::make_unique<httplib::SSLServer>([this](SSL_CTX& ctx) {
    return impl_->setup_ok = harden(&ctx, impl_->me, impl_->trust, true, impl_->limits.anonymous_clients);
  });
  if (!impl_->setup_ok || !impl_->http->is_valid())
    throw Error("cannot set up the TLS server for '" + me.id() + "': " + ssl_errors());
  HttpLimits http;
  http.connections = limits.connections;
  http.max_body = limits.max_body;
  http.idle = kKeepAlive;
  http.read = http.write = std::max(whole_seconds(limits.timeout), kKeepAlive + std::chrono::seconds(1));
  HttpHooks hooks;
  hooks.describe = [max = limits.max_body](const httplib::Request& req, httplib::Response& res, const std::string& why) {
          res.set_content(failure_body(!why.empty()        ? why
                                       : res.status == 404 ? "no route " + req.method + " " + req.path
                                       : res.status == 400 ? std::string("malformed HTTP request")
                                       : res.status == 413 ? "request body larger than " + std::to_string(max) + " bytes"
                                                           : "HTTP status " + std::to_string(res.status)),
                          "application/json");
  };
  guard(*impl_->http, http, hooks);
  impl_->http->set_keep_alive_max_count(10000);  // a kept connection is a handshake saved
  impl_->http->set_tcp_nodelay(limits.nodelay);
  // Who the server is, as seen through this session: the client's way to open a session.
  route("GET", "/v1/hello", [this](const Peer& p, const Request&) {
    return Response{200,
                    "{\"id\": \"" + impl_->me.id() + "\", \"role\": \"" + impl_->me.role() + "\", \"you\": \"" + p.id +
                        "\", \"tls_group\": \"" + p.tls_group + "\"}"};
  });
}

Server::~Server() { stop(); }

void Server::route(const std::string& method, const std::string& pattern, Handler h) {
  auto wrapped = [h = std::move(h), impl = impl_.get()](const httplib::Request& req, httplib::Response& res) {
    Response out;
    try {
      Peer peer = peer_of(const_cast<SSL*>(req.ssl));
      // The handshake checked the certificate; a kept-alive session is checked again on every
      // request, so a certificate denied since (or expired) is refused on its next call.
      if (peer.certificate) {
        try {
          impl->trust.check(peer.certificate);
        } catch (const Error& e) {
          if (impl->refused) impl->refused(peer, e.what());
          throw Failure(403, e.what());
        }
      }
      Request r{req.method, req.path, req.body, req.get_header_value("Content-Type"), {}, {}};
      for (const auto& [k, v] : req.params) r.query[k] = v;
      for (std::size_t i = 1; i < req.matches.size(); ++i) r.captures.push_back(req.matches[i]);
      r.remote = Address{req.remote_addr, req.remote_port}.text();
      out = h(peer, r);
    } catch (const Failure& f) {
      out = {f.status, failure_body(f.what())};
    } catch (const Error& e) {
      out = {400, failure_body(e.what())};
    } catch (const nlohmann::json::exception& e) {  // a handler's JSON body that does not parse: the caller's error
      out = {400, failure_body(std::string("malformed JSON: ") + e.what())};
    } catch (const std::exception& e) {
      out = {500, failure_body(std::string("internal error: ") + e.what())};
    }
    res.status = out.status;
    res.set_content(out.body, out.content_type.c_str());
  };
  if (method == "GET")
    impl_->http->Get(pattern, wrapped);
  else if (method == "POST")
    impl_->http->Post(pattern, wrapped);
  else
    throw std::logic_error("route: unsupported method " + method);
}

void Server::on_refusal(std::function<void(const Peer&, const std::string&)> f) { impl_->refused = std::move(f); }

void Server::rpc(const std::string& name, std::function<std::string(const Peer&, const std::string&)> h) {
  route("POST", "/rpc/" + name, [h = std::move(h)](const Peer& p, const Request& r) {
    if (r.content_type != "application/x-protobuf") throw Failure(415, "an RPC body must be application/x-protobuf");
    return Response{200, h(p, r.body), "application/x-protobuf"};
  });
}

int Server::listen(const std::string& host, int port) {
  const int bound = bind_port(*impl_->http, host, port, HttpLimits{}.backlog);
  auto ended = std::make_shared<std::atomic<bool>>(false);
  impl_->thread = std::thread([this, ended] {
    impl_->http->listen_after_bind();
    *ended = true;
  });
  // Serving before returning, so that stop() cannot come before the loop it must end.
  while (!impl_->http->is_running() && !*ended) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (*ended) throw Error("the server on " + Address{host, bound}.text() + " stopped as it started");
  return bound;
}

void Server::stop() {
  if (!impl_ || !impl_->http) return;
  impl_->http->stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

// --- Client --------------------------------------------------------------------------------------------

struct Client::Impl {
  std::string host, where;  // where: host:port for messages
  Limits limits;
  std::unique_ptr<httplib::SSLClient> http;
  std::mutex mu;  // guards `session`, written by the handshake callback
  Peer session;
  bool have_session = false;
  std::chrono::steady_clock::time_point last_used{};

  // A kept-alive connection that the server has closed since (its idle timeout, a restart) or is
  // about to close (idle for most of the server's keep-alive time) is dropped here, so that the
  // next request opens a fresh one instead of failing on a dead socket — a failure that, for a
  // POST, could not safely be retried. An idle HTTP/1.1 connection with something to read is one
  // the server is closing (its TLS close_notify, FIN or RST): servers send nothing unasked.
  void drop_stale_connection(std::chrono::milliseconds max_idle) {
    if (!http->is_socket_open()) return;
    pollfd p{static_cast<int>(http->socket()), POLLIN, 0};
    const bool closing = poll(&p, 1, 0) != 0;
    const bool old = std::chrono::steady_clock::now() - last_used > max_idle;
    if (closing || old) http->stop();
  }

  static int slot() {
    static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
  }
  // The settings both kinds of client share, once http's context is configured.
  void start(const std::string& host, int port, Limits l) {
    this->host = host;
    where = Address{host, port}.text();
    limits = l;
    SSL_CTX* ctx = http->ssl_context();
    SSL_CTX_set_ex_data(ctx, slot(), this);
    SSL_CTX_set_info_callback(ctx, &on_info);
    http->enable_server_certificate_verification(true);
    http->set_keep_alive(true);
    http->set_tcp_nodelay(l.nodelay);
    if (!l.source.empty()) {
      const sockaddr_storage from = source_address(l.source);  // a clear error now, not a silent other address later
      http->set_socket_options([from](int sock) {
        const socklen_t n = from.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
        if (::bind(sock, reinterpret_cast<const sockaddr*>(&from), n) == 0) return;
        // The address went away since: make the connect fail (ENOTSOCK) rather than go out from another.
        const int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null >= 0) ::dup2(null, sock), ::close(null);
      });
    }
    const auto t = whole_seconds(limits.timeout);
    http->set_connection_timeout(t.count());
    http->set_read_timeout(t.count());
    http->set_write_timeout(t.count());
  }
  // Captures the exporter, group and server identity when a handshake completes.
  static void on_info(const SSL* ssl, int where, int) {
    if (!(where & SSL_CB_HANDSHAKE_DONE)) return;
    auto* self = static_cast<Impl*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), slot()));
    Peer p = peer_of(const_cast<SSL*>(ssl));
    std::lock_guard lock(self->mu);
    self->session = std::move(p);
    self->have_session = true;
  }
};

Client::Client(const secure::Identity& me, const secure::TrustStore& trust, const std::string& host, int port,
               Limits limits)
    : impl_(new Impl) {
  impl_->http = std::make_unique<httplib::SSLClient>(host, port);
  SSL_CTX* ctx = impl_->http->ssl_context();
  if (!ctx || !harden(ctx, me, trust, false))
    throw Error("cannot set up the TLS client for '" + me.id() + "': " + ssl_errors());
  impl_->start(host, port, limits);
}

Client::Client(const ExternalTls& tls, const std::string& host, int port, Limits limits) : impl_(new Impl) {
  impl_->http = std::make_unique<httplib::SSLClient>(host, port);
  SSL_CTX* ctx = impl_->http->ssl_context();
  const auto fail = [&](const std::string& what) {
    throw Error("cannot set up TLS to " + Address{host, port}.text() + ": " + what + " (" + ssl_errors() + ")");
  };
  if (!ctx) fail("no context");
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 || SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1)
    fail("TLS versions");
  if (SSL_CTX_set1_groups_list(ctx, tls.groups.c_str()) != 1) fail("groups '" + tls.groups + "'");
  if (SSL_CTX_load_verify_locations(ctx, tls.ca_file.c_str(), nullptr) != 1) fail("CA certificates " + tls.ca_file);
  if (!tls.cert_file.empty() || !tls.key_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, tls.cert_file.c_str()) != 1) fail("certificate " + tls.cert_file);
    if (SSL_CTX_use_PrivateKey_file(ctx, tls.key_file.c_str(), SSL_FILETYPE_PEM) != 1) fail("key " + tls.key_file);
    if (SSL_CTX_check_private_key(ctx) != 1) fail("key " + tls.key_file + " does not match certificate " + tls.cert_file);
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);  // chain to ca_file; httplib then checks the host name
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
  impl_->http->set_ca_cert_path(tls.ca_file.c_str());  // else httplib adds the system's CAs to the store
  impl_->start(host, port, limits);
}

Client::~Client() = default;

Response Client::call(const std::string& method, const std::string& path, const std::string& body,
                      const std::string& content_type) {
  if (body.size() > impl_->limits.max_body)
    throw Error("request to " + impl_->where + path + " is " + std::to_string(body.size()) +
                " bytes, above the limit of " + std::to_string(impl_->limits.max_body));
  const auto deadline = std::chrono::steady_clock::now() + impl_->limits.timeout;
  auto backoff = std::chrono::milliseconds(100);
  for (int attempt = 0;; ++attempt) {
    ERR_clear_error();
    impl_->drop_stale_connection(kReuseIdle);
    httplib::Result r = method == "GET" ? impl_->http->Get(path.c_str())
                                        : impl_->http->Post(path.c_str(), body, content_type.c_str());
    impl_->last_used = std::chrono::steady_clock::now();
    if (r) {
      if (r->body.size() > impl_->limits.max_body)
        throw Error("answer from " + impl_->where + path + " is above the limit of " +
                    std::to_string(impl_->limits.max_body) + " bytes");
      return {r->status, r->body, r->get_header_value("Content-Type")};
    }
    const httplib::Error err = r.error();
    std::string why = httplib::to_string(err);
    const long verify = impl_->http->get_openssl_verify_result();
    if (verify != X509_V_OK)
      why += ": server certificate: " + std::string(X509_verify_cert_error_string(verify));
    else if (err == httplib::Error::SSLServerVerification)  // httplib's own host-name check
      why += ": server certificate does not name the host " + impl_->host;
    const std::string ssl = ssl_errors();
    if (!ssl.empty()) why += " (" + ssl + ")";
    // Certificate and handshake failures do not heal by retrying; connection failures might. A POST
    // that may have reached the server (broken while writing or reading) is not sent again: the
    // server may have acted on it (issued keys, trained), so the caller decides.
    const bool never_sent = err == httplib::Error::Connection || err == httplib::Error::ConnectionTimeout;
    const bool transient = never_sent || (method == "GET" && (err == httplib::Error::Read || err == httplib::Error::Write));
    if (!transient || attempt >= impl_->limits.retries || std::chrono::steady_clock::now() + backoff > deadline)
      throw Unreachable("no answer from " + impl_->where + " for " + method + " " + path + " after " +
                  std::to_string(attempt + 1) + " attempt(s): " + why);
    std::this_thread::sleep_for(backoff);
    backoff *= 2;
  }
}

std::string Client::rpc(const std::string& name, const std::string& body) {
  const Response r = call("POST", "/rpc/" + name, body, "application/x-protobuf");
  if (r.status != 200) throw Error(impl_->where + " refused " + name + " (HTTP " + std::to_string(r.status) + "): " + r.body);
  return r.body;
}

void Client::interrupt() { impl_->http->stop(); }

Peer Client::last_session() {
  std::lock_guard lock(impl_->mu);
  if (!impl_->have_session) throw Error("no TLS session with " + impl_->where + " yet");
  return impl_->session;
}

Peer Client::session() {
  // A second stricter than call(): what is sealed for this session is usually sent on it soon
  // after, and should not find it dropped by then.
  impl_->drop_stale_connection(kReuseIdle - std::chrono::seconds(1));
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->have_session && impl_->http->is_socket_open()) return impl_->session;
  }
  const Response r = call("GET", "/v1/hello");
  if (r.status != 200) throw Error(impl_->where + " did not answer /v1/hello (HTTP " + std::to_string(r.status) + ")");
  std::lock_guard lock(impl_->mu);
  return impl_->session;
}

}  // namespace gng::net
