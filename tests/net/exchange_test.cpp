// A sealed model update from n1 to n2 over PQ-TLS with a QKD key from the KME: accepted and audited;
// every kind of bad envelope rejected with its reason, and audited too.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>

#include "net/exchange.h"
#include "net/fixture.h"
#include "secure/qkd/kme.h"
#include "support/error_of.h"

namespace gng::net {
namespace {

using test::pki;

// PushUpdate on the wire: field 1 (bytes), written by hand so the test does not need generated code.
std::string push_message(const secure::Bytes& envelope) {
  std::string m(1, '\x0a');
  for (std::size_t n = envelope.size(); ; n >>= 7) {
    m.push_back(static_cast<char>((n & 0x7f) | (n >= 0x80 ? 0x80 : 0)));
    if (n < 0x80) break;
  }
  m.append(envelope.begin(), envelope.end());
  return m;
}

struct Sites {
  std::string dir = testing::TempDir() + "gng-exchange-" + std::to_string(getpid()) + "-" +
                    testing::UnitTest::GetInstance()->current_test_info()->name();
  secure::qkd::Kme kme{"kme-a", kme_config()};
  Server kme_server{pki().kme, pki().trust()};
  int kme_port = 0;
  std::unique_ptr<audit::AuditLog> log;
  Server n2_server{pki().n2, pki().trust()};
  int n2_port = 0;
  secure::TrustStore trust = pki().trust();
  std::unique_ptr<Client> n2_to_kme, n1_to_kme, n1_to_n2;
  std::vector<secure::Bytes> received;

  static secure::qkd::KmeConfig kme_config() {
    secure::qkd::KmeConfig c;
    c.link.pulses = secure::qkd::pulses_for_sifted(c.link, 1 << 15);
    c.seed = 11;
    return c;
  }
  explicit Sites(bool allow_pqc_only = false) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    log = std::make_unique<audit::AuditLog>(dir + "/audit.db", true);
    kme.mount(kme_server);
    kme_port = kme_server.listen("127.0.0.1", 0);
    n2_to_kme = std::make_unique<Client>(pki().n2, trust, "127.0.0.1", kme_port);
    n1_to_kme = std::make_unique<Client>(pki().n1, trust, "127.0.0.1", kme_port);
    Receiver r;
    r.trust = &trust;
    r.me = "n2";
    r.qkd.required = !allow_pqc_only;
    r.qkd.for_opening = [this](const std::string& sender, const std::string& id) {
      return secure::qkd::KmeClient(*n2_to_kme).dec_keys(sender, {id}).at(0).key;
    };
    r.audit = log.get();
    r.on_update = [this](const secure::Opened& o) { received.push_back(o.update); };
    serve_updates(n2_server, r);
    n2_port = n2_server.listen("127.0.0.1", 0);
    n1_to_n2 = std::make_unique<Client>(pki().n1, trust, "127.0.0.1", n2_port);
  }
  QkdKeyForSend fresh_key(const std::string& to) {
    const auto k = secure::qkd::KmeClient(*n1_to_kme).enc_keys(to, 1).at(0);
    return {k.id, k.key};
  }
  Qkd n1_qkd() {
    return {[this](const std::string& to) { return fresh_key(to); }, nullptr, true};
  }
  secure::EnvelopeHeader header(uint64_t seq, const std::string& to = "n2") {
    return {"n1", to, "run-7", 1, seq, "", "", ""};
  }
  // An envelope sealed by n1 for the current n1→n2 session, as push_update would.
  secure::Bytes sealed(const secure::Bytes& update, uint64_t seq, const std::string& to = "n2") {
    secure::EnvelopeHeader h = header(seq, to);
    h.model_digest = secure::model_digest(update);
    const QkdKeyForSend k = fresh_key(to);
    h.qkd_key_id = k.key_id;
    return secure::seal(h, update, n1_to_n2->session().exporter, k.key, pki().n1);
  }
  Response raw(const std::string& body) { return n1_to_n2->call("POST", "/rpc/PushUpdate", body, "application/x-protobuf"); }
  nlohmann::json last_audit() {
    const auto e = log->entries(log->size() - 1, log->size()).at(0);
    nlohmann::json j = nlohmann::json::parse(e.detail);
    j["kind"] = e.kind;
    return j;
  }
};

TEST(Exchange, SealedUpdateWithAQkdKeyArrivesAndIsAudited) {
  Sites s;
  const secure::Bytes update = secure::random_bytes(200000);
  const Pushed p = push_update(*s.n1_to_n2, pki().n1, s.header(1), update, s.n1_qkd());
  EXPECT_EQ(p.mode, "qkd+pqc");
  ASSERT_EQ(s.received.size(), 1u);
  EXPECT_EQ(s.received[0], update);
  const auto a = s.last_audit();
  EXPECT_EQ(p.audit_seq, s.log->size() - 1);
  EXPECT_EQ(a["kind"], "exchange");
  EXPECT_EQ(a["from"], "n1");
  EXPECT_EQ(a["to"], "n2");
  EXPECT_EQ(a["model_digest"], secure::model_digest(update));
  EXPECT_EQ(a["tls_group"], "X25519MLKEM768");
  EXPECT_EQ(a["mode"], "qkd+pqc");
  const secure::SigningKey audit_key = secure::SigningKey::generate("ML-DSA-65");
  s.log->sign_head(audit_key);
  EXPECT_TRUE(s.log->verify(audit_key.public_key()).ok);
}

TEST(Exchange, TamperedReplayedMisaddressedOrMalformedEnvelopesAreRejectedAndAudited) {
  Sites s;
  const secure::Bytes update = secure::random_bytes(5000);
  auto rejected = [&](const std::string& body, const std::string& reason) {
    const Response r = s.raw(body);
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_NE(r.body.find(reason), std::string::npos) << r.body;
    const auto a = s.last_audit();
    EXPECT_EQ(a["kind"], "rejection");
    EXPECT_NE(a["reason"].get<std::string>().find(reason), std::string::npos) << a.dump();
    EXPECT_EQ(a["from"], "n1");
  };
  secure::Bytes bad = s.sealed(update, 1);
  bad[bad.size() / 2] ^= 0x04;  // in the body
  rejected(push_message(bad), "does not authenticate");
  EXPECT_EQ(s.last_audit().value("claimed_sender", ""), "n1");  // the header it names, parsed only once refused
  const secure::Bytes good = s.sealed(update, 2);
  ASSERT_EQ(s.raw(push_message(good)).status, 200);
  rejected(push_message(good), "replayed envelope from 'n1'");
  rejected(push_message(s.sealed(update, 3, "n3")), "envelope is for 'n3', not for 'n2'");
  rejected("\x0a\xff\xff", "PushUpdate is not a valid protobuf message");
  rejected(push_message({'G', 'N', 'G', 'E', 1, 0, 0}), "truncated envelope");
  // A key_ID the recipient's KME never issued.
  secure::EnvelopeHeader h = s.header(4);
  h.model_digest = secure::model_digest(update);
  h.qkd_key_id = "0f0e0d0c-0b0a-4908-8706-050403020100";
  rejected(push_message(secure::seal(h, update, s.n1_to_n2->session().exporter, secure::random_bytes(32), pki().n1)),
           "key_ID 0f0e0d0c-0b0a-4908-8706-050403020100 is unknown to this KME");
  EXPECT_EQ(s.received.size(), 1u);
  // The sender refuses to seal for someone other than the peer it is talking to.
  EXPECT_EQ(test::error_of([&] { push_update(*s.n1_to_n2, pki().n1, s.header(5, "n3"), update, Qkd{}); }),
            "the peer at this address is 'n2', not the recipient 'n3'");
}

TEST(Exchange, PqcOnlyIsAPolicyDecision) {
  Sites strict;
  const secure::Bytes update = secure::random_bytes(100);
  const std::string e = test::error_of([&] { push_update(*strict.n1_to_n2, pki().n1, strict.header(1), update, Qkd{}); });
  EXPECT_NE(e.find("envelope rejected: envelope from 'n1' is pqc-only and the policy requires QKD keys"), std::string::npos) << e;
  Sites lenient(true);
  EXPECT_EQ(push_update(*lenient.n1_to_n2, pki().n1, lenient.header(1), update, Qkd{}).mode, "pqc-only");
  EXPECT_EQ(lenient.last_audit()["mode"], "pqc-only");
}

}  // namespace
}  // namespace gng::net
