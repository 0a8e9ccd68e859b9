// The transport's security properties, each checked against the real TLS stack: the negotiated
// group is the post-quantum hybrid, and every client that should be refused is refused.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>

#include "core/file.h"
#include "net/rpc.h"
#include "secure/crypto_info.h"
#include "net/fixture.h"
#include "support/error_of.h"

namespace gng::net {
namespace {

using secure::Identity;
using secure::TrustStore;
using test::pki;

// A server on a free loopback port that answers /rpc/echo and /who.
struct Running {
  Server server;
  int port;
  explicit Running(const Identity& me, Limits limits = {}) : server(me, pki().trust(), limits), port(0) {
    server.rpc("echo", [](const Peer&, const std::string& body) { return body; });
    server.route("GET", "/who", [](const Peer& p, const Request&) {
      return Response{200, p.id + " " + p.role + " " + p.tls_group + " " + secure::hex(p.exporter), "text/plain"};
    });
    port = server.listen("127.0.0.1", 0);
  }
};

// A TCP connection to 127.0.0.1:port; -1 when refused.
int connect_to(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return fd;
  close(fd);
  return -1;
}

// A TLS 1.3 handshake with raw OpenSSL: "ok <group>" or the error.
std::string handshake(int port, const char* groups, const Identity* me, int version = TLS1_3_VERSION) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, version);
  SSL_CTX_set_max_proto_version(ctx, version);
  SSL_CTX_set1_groups_list(ctx, groups);
  if (me) {
    SSL_CTX_use_certificate(ctx, me->cert.get());
    SSL_CTX_use_PrivateKey(ctx, me->key.get());
  }
  const int fd = connect_to(port);
  std::string result;
  if (fd < 0) {
    result = "connect failed";
  } else {
    SSL* ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) == 1) {
      // In TLS 1.3 the server's verdict on our certificate arrives after the client's Finished:
      // a request and its answer prove the server accepted us.
      const char req[] = "GET /v1/hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
      char buf[16] = {};
      const bool answered = SSL_write(ssl, req, sizeof req - 1) > 0 && SSL_read(ssl, buf, sizeof buf - 1) > 0;
      const int nid = SSL_get_negotiated_group(ssl);
      result = answered ? std::string("ok ") + SSL_group_to_name(ssl, nid) : "refused after handshake";
    } else {
      result = "handshake failed";
    }
    SSL_free(ssl);
  }
  close(fd);
  SSL_CTX_free(ctx);
  ERR_clear_error();
  return result;
}

// Sends `request` as it is over a TLS session of `me` and returns what came back within `limit`
// (until the server closed or its answer was whole), and how long that took.
std::pair<std::string, double> raw_exchange(int port, const Identity& me, const std::string& request,
                                            std::chrono::seconds limit) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set1_groups_list(ctx, "X25519MLKEM768");
  SSL_CTX_use_certificate(ctx, me.cert.get());
  SSL_CTX_use_PrivateKey(ctx, me.key.get());
  const int fd = connect_to(port);
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  std::string in;
  const auto t0 = std::chrono::steady_clock::now();
  if (SSL_connect(ssl) == 1 && SSL_write(ssl, request.data(), static_cast<int>(request.size())) > 0) {
    timeval tv{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (std::chrono::steady_clock::now() - t0 < limit) {
      char buf[4096];
      const int n = SSL_read(ssl, buf, sizeof buf);
      if (n > 0) {
        in.append(buf, static_cast<std::size_t>(n));
        const auto head = in.find("\r\n\r\n"), length = in.find("Content-Length: ");
        if (head != std::string::npos && length != std::string::npos &&
            in.size() >= head + 4 + std::stoul(in.substr(length + 16)))
          break;
      } else if (SSL_get_error(ssl, n) != SSL_ERROR_WANT_READ && errno != EAGAIN) {
        break;
      }
    }
  }
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  SSL_free(ssl);
  close(fd);
  SSL_CTX_free(ctx);
  ERR_clear_error();
  return {in, took};
}

TEST(Tls, MalformedOrStalledRequestsAreAnsweredAndIdleSessionsHoldUpNobody) {
  Limits l;
  l.timeout = std::chrono::milliseconds(1000);  // a stalled request: 408 after 6 s (the idle wait + 1 s)
  l.connections = 64;
  Running s(pki().n1, l);
  // An invalid Content-Length is answered at once (it hung the connection: httplib read "-1" as
  // 2^64 − 1 bytes to come), a stalled body after the read timeout with 408.
  const std::string head = "POST /rpc/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n";
  auto [bad, bad_took] = raw_exchange(s.port, pki().orch, head + "Content-Length: -1\r\n\r\nxy", std::chrono::seconds(10));
  EXPECT_EQ(bad.substr(0, 12), "HTTP/1.1 400") << bad;
  EXPECT_NE(bad.find("Content-Length must be one decimal number of bytes, got '-1'"), std::string::npos) << bad;
  EXPECT_LT(bad_took, 1.0);
  // Twenty idle TLS sessions and twenty stalled requests, above what a pool of (cores − 1, at least
  // 8) workers serves: a real call is still answered at once.
  std::vector<std::thread> stalled;
  std::vector<std::string> answers(20);
  for (int i = 0; i < 20; ++i)
    stalled.emplace_back([&, i] {
      answers[i] = raw_exchange(s.port, pki().orch, head + "Content-Length: 10\r\n\r\nxy", std::chrono::seconds(12)).first;
    });
  std::vector<int> idle;
  for (int i = 0; i < 20; ++i) idle.push_back(connect_to(s.port));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  Client c(pki().orch, pki().trust(), "127.0.0.1", s.port);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(c.rpc("echo", "ping"), "ping");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  for (auto& t : stalled) t.join();
  for (const int fd : idle) close(fd);
  for (const std::string& a : answers) {
    EXPECT_EQ(a.substr(0, 12), "HTTP/1.1 408") << a;
    EXPECT_NE(a.find("request timed out: its bytes stopped coming for 6 s"), std::string::npos) << a;
  }
}

TEST(Tls, NegotiatesTheHybridPostQuantumGroupAndAuthenticatesBothEnds) {
  Running s(pki().n1);
  Client c(pki().orch, pki().trust(), "127.0.0.1", s.port);
  const Response r = c.call("GET", "/who");
  ASSERT_EQ(r.status, 200) << r.body;
  const Peer mine = c.session();
  EXPECT_EQ(mine.tls_group, "X25519MLKEM768");
  EXPECT_EQ(mine.id, "n1");
  EXPECT_EQ(mine.role, "node");
  ASSERT_EQ(mine.exporter.size(), 48u);
  // The server saw the orchestrator's certificate, the same group and the same exporter secret.
  EXPECT_EQ(r.body, "orch orchestrator X25519MLKEM768 " + secure::hex(mine.exporter));
  EXPECT_EQ(handshake(s.port, "X25519MLKEM768", &pki().orch), "ok X25519MLKEM768");
}

TEST(Tls, RpcRoundTripAndLimits) {
  Limits small;
  small.max_body = 1000;
  Running s(pki().n1, small);
  Client c(pki().orch, pki().trust(), "127.0.0.1", s.port);
  EXPECT_EQ(c.rpc("echo", std::string("\x00\x01protobuf", 10)), std::string("\x00\x01protobuf", 10));
  EXPECT_EQ(c.call("POST", "/rpc/echo", "x", "text/plain").status, 415);
  EXPECT_EQ(c.call("POST", "/rpc/echo", std::string(5000, 'x'), "application/x-protobuf").status, 413);
  EXPECT_EQ(c.call("GET", "/nothing").status, 404);
  const std::string e = test::error_of([&] { c.rpc("missing", "x"); });
  EXPECT_NE(e.find("refused missing (HTTP 404)"), std::string::npos) << e;
}

TEST(Tls, ClassicalOnlyAndOlderClientsAreRefused) {
  Running s(pki().n1);
  EXPECT_EQ(handshake(s.port, "X25519:P-256:P-384", &pki().orch), "handshake failed");
  EXPECT_EQ(handshake(s.port, "X25519MLKEM768", &pki().orch, TLS1_2_VERSION), "handshake failed");
}

TEST(Tls, ClientsWithoutAValidCertificateFromOurCaAreRefused) {
  Running s(pki().n1);
  EXPECT_NE(handshake(s.port, "X25519MLKEM768", nullptr).rfind("ok", 0), 0u) << "no client certificate";
  for (const Identity* who : {&pki().stranger, &pki().expired, &pki().denied}) {
    EXPECT_NE(handshake(s.port, "X25519MLKEM768", who).rfind("ok", 0), 0u) << who->id();
    Limits once;
    once.retries = 0;
    Client c(*who, pki().trust(), "127.0.0.1", s.port, once);
    const std::string e = test::error_of([&] { c.call("GET", "/v1/hello"); });
    EXPECT_NE(e.find("no answer from 127.0.0.1:" + std::to_string(s.port)), std::string::npos) << who->id() << ": " << e;
  }
}

TEST(Tls, AServerFromAnotherCaOrWithADeniedCertificateIsRefusedByTheClient) {
  for (const Identity* who : {&pki().stranger, &pki().denied}) {
    // The foreign server trusts its own CA; our client must still refuse it.
    Server server(*who, who == &pki().stranger ? TrustStore::load(pki().other) : pki().trust());
    const int port = server.listen("127.0.0.1", 0);
    Client c(pki().orch, pki().trust(), "127.0.0.1", port);
    const std::string e = test::error_of([&] { c.call("GET", "/v1/hello"); });
    EXPECT_NE(e.find("server certificate"), std::string::npos) << who->id() << ": " << e;
  }
}

// Revocation reaches a session already open: `gng pki deny` re-signs crl.pem, and the server's next
// request from that certificate is refused (403, naming why) and reported to on_refusal; new
// handshakes fail. A deny list on disk that the CA did not sign never lifts a revocation.
TEST(Tls, ACertificateDeniedDuringAKeptAliveSessionIsRefusedOnItsNextCall) {
  const Identity late = secure::pki_issue(pki().dir, {"node", "late"});
  Server server(pki().n1, pki().trust());
  std::vector<std::string> heard;
  std::mutex mu;
  server.on_refusal([&](const Peer& p, const std::string& why) {
    std::lock_guard lock(mu);
    heard.push_back(p.id + ": " + why);
  });
  server.rpc("echo", [](const Peer&, const std::string& b) { return b; });
  const int port = server.listen("127.0.0.1", 0);
  Limits once;
  once.retries = 0;
  Client c(late, pki().trust(), "127.0.0.1", port, once);
  EXPECT_EQ(c.rpc("echo", "before"), "before");
  const std::string saved = read_file(pki().dir + "/crl.pem");
  secure::pki_deny(pki().dir, "late");
  const std::string e = test::error_of([&] { c.rpc("echo", "after"); });
  EXPECT_NE(e.find("(HTTP 403)"), std::string::npos) << e;
  EXPECT_NE(e.find("certificate 'late' (serial " + late.cert.serial() + ") is on the deny list"), std::string::npos) << e;
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(heard.size(), 1u);
    EXPECT_EQ(heard[0].rfind("late: certificate 'late'", 0), 0u) << heard[0];
  }
  Client fresh(late, pki().trust(), "127.0.0.1", port, once);
  EXPECT_NE(test::error_of([&] { fresh.rpc("echo", "x"); }).find("no answer"), std::string::npos);

  // The older (valid, CA-signed) list written back would lift it: that is the operator's own act.
  // A list signed by another CA is passed over, and the revocation stands.
  const TrustStore trust = pki().trust();
  write_file_atomic(pki().dir + "/crl.pem", read_file(pki().other + "/crl.pem"));
  EXPECT_NE(test::error_of([&] { trust.check(late.cert); }).find("is on the deny list"), std::string::npos);
  EXPECT_NE(trust.deny_list_trouble().find("the deny list is not signed by the CA in " + pki().dir + "/ca.pem"), std::string::npos)
      << trust.deny_list_trouble();
  write_file_atomic(pki().dir + "/crl.pem", "-----BEGIN X509 CRL-----\ntorn");
  EXPECT_NE(test::error_of([&] { trust.check(late.cert); }).find("is on the deny list"), std::string::npos);
  EXPECT_FALSE(trust.deny_list_trouble().empty());
  write_file_atomic(pki().dir + "/crl.pem", saved);
  EXPECT_NO_THROW(trust.check(late.cert));
  EXPECT_EQ(trust.deny_list_trouble(), "");
}

TEST(Tls, PlainHttpGetsNoAnswer) {
  Running s(pki().n1);
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(s.port));
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  const char req[] = "GET /v1/hello HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_GT(write(fd, req, sizeof req - 1), 0);
  char buf[256] = {};
  const ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  EXPECT_EQ(std::string(buf, n > 0 ? n : 0).find("HTTP/1.1"), std::string::npos);
}

TEST(Tls, UnreachablePeerIsRetriedWithBackoffThenAClearError) {
  int port;
  {
    Server gone(pki().n1, pki().trust());
    port = gone.listen("127.0.0.1", 0);
  }
  Limits l;
  l.retries = 2;
  Client c(pki().orch, pki().trust(), "127.0.0.1", port, l);
  const auto t0 = std::chrono::steady_clock::now();
  const std::string e = test::error_of([&] { c.call("GET", "/v1/hello"); });
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(e.find("no answer from 127.0.0.1:" + std::to_string(port) + " for GET /v1/hello after 3 attempt(s): Connection"),
            std::string::npos)
      << e;
  EXPECT_GE(waited, 0.3);  // 100 ms + 200 ms of back-off
}

// A kept-alive connection that the server closed (its idle timeout, or a restart) must not make
// the next POST fail: POSTs are not retried (the server may have acted), so the client has to notice
// before it sends. Both with no retries at all.
TEST(Tls, APostAfterTheServerClosedTheKeptAliveConnectionGoesThrough) {
  Limits none;
  none.retries = 0;
  int port = 0;
  auto first = std::make_unique<Running>(pki().n1);
  port = first->port;
  Client c(pki().orch, pki().trust(), "127.0.0.1", port, none);
  EXPECT_EQ(c.rpc("echo", "one"), "one");
  const std::string before = secure::hex(c.session().exporter);
  // The server restarts on the same port: the old connection is closed under the client.
  first.reset();
  Server again(pki().n1, pki().trust());
  again.rpc("echo", [](const Peer&, const std::string& body) { return "again " + body; });
  ASSERT_EQ(again.listen("127.0.0.1", port), port);
  EXPECT_EQ(c.rpc("echo", "two"), "again two");
  EXPECT_NE(secure::hex(c.last_session().exporter), before);  // a new session
  // Idle past the server's keep-alive time: the server closes the connection; the next POST opens
  // a new one.
  std::this_thread::sleep_for(std::chrono::milliseconds(5500));
  EXPECT_EQ(c.rpc("echo", "three"), "again three");
}

TEST(Tls, OneLibcryptoAndOneLibsslAtLeast35AreLoaded) {
  Running s(pki().n1);
  Client c(pki().orch, pki().trust(), "127.0.0.1", s.port);
  ASSERT_EQ(c.call("GET", "/v1/hello").status, 200);
  int crypto = 0, ssl = 0;
  for (const auto& l : loaded_openssl_libraries()) {
    crypto += l.find("libcrypto") != std::string::npos;
    ssl += l.find("libssl") != std::string::npos;
  }
  EXPECT_EQ(crypto, 1);
  EXPECT_EQ(ssl, 1);
  EXPECT_GE(OpenSSL_version_num(), 0x30500000UL);
}

}  // namespace
}  // namespace gng::net

namespace gng::net {
namespace {

TEST(Tls, ALongLivedSlhDsaRootWorksToo) {
  const std::string dir = testing::TempDir() + "gng-slh-pki-" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  secure::pki_init(dir, "SLH-DSA-SHA2-128f");
  const secure::Identity a = secure::pki_issue(dir, {"node", "a"});
  const secure::Identity b = secure::pki_issue(dir, {"orchestrator", "b"});
  const secure::TrustStore trust = secure::TrustStore::load(dir);
  EXPECT_EQ(trust.ca().public_key().algorithm(), "SLH-DSA-SHA2-128f");
  Server s(a, trust);
  const int port = s.listen("127.0.0.1", 0);
  Client c(b, trust, "127.0.0.1", port);
  EXPECT_EQ(c.call("GET", "/v1/hello").status, 200);
  EXPECT_EQ(c.session().tls_group, "X25519MLKEM768");
}

}  // namespace
}  // namespace gng::net

namespace gng::net {
namespace {

// IPv6: a node or KME may listen on an IPv6 address and be reached there; messages bracket it.
TEST(Tls, ServesAndConnectsOverIpv6) {
  Server server(test::pki().n1, test::pki().trust());
  server.route("GET", "/who", [](const Peer& p, const Request&) { return Response{200, p.id + " " + p.tls_group, "text/plain"}; });
  const int port = server.listen("::1", 0);
  {
    Client c(test::pki().orch, test::pki().trust(), "::1", port);
    const Response r = c.call("GET", "/who");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "orch X25519MLKEM768");  // the default certificates name ::1
    EXPECT_EQ(c.session().id, "n1");
  }  // closes its kept-alive connection, which stop() would otherwise wait out
  Server second(test::pki().n1, test::pki().trust());
  EXPECT_EQ(test::error_of([&] { second.listen("::1", port); }),
            "cannot listen on [::1]:" + std::to_string(port) + " (in use, or not an address here)");
  server.stop();
  Limits quick;
  quick.retries = 0;
  quick.timeout = std::chrono::milliseconds(2000);
  Client gone(test::pki().orch, test::pki().trust(), "::1", port, quick);
  EXPECT_NE(test::error_of([&] { gone.call("GET", "/who"); }).find("no answer from [::1]:" + std::to_string(port)), std::string::npos);
}

TEST(Tls, APortInUseIsAClearError) {
  Server first(test::pki().n1, test::pki().trust());
  const int port = first.listen("127.0.0.1", 0);
  Server second(test::pki().n1, test::pki().trust());
  EXPECT_EQ(test::error_of([&] { second.listen("127.0.0.1", port); }),
            "cannot listen on 127.0.0.1:" + std::to_string(port) + " (in use, or not an address here)");
}

}  // namespace
}  // namespace gng::net
