// The one exchange path (node/exchange.h) as a node receives over it: the orchestrator seals a
// state for the node over PQ-TLS with a QKD key from the KME; the node's receive path opens it,
// audits it, and refuses every kind of bad body or envelope with its reason, audited too.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>

#include "gng.pb.h"
#include "net/fixture.h"
#include "node/exchange.h"
#include "qkd/kme.h"
#include "support/error_of.h"

namespace gng::node {
namespace {

using test::pki;

fed::Update a_state(float v) {
  fed::Update u;
  u.from = "orch";
  u.samples = 10;
  u.tensors.push_back({"w", {2, 3}, std::vector<float>(6, v)});
  return u;
}

struct Sites {
  std::string dir = testing::TempDir() + "gng-exchange-" + std::to_string(getpid()) + "-" +
                    testing::UnitTest::GetInstance()->current_test_info()->name();
  qkd::Kme kme{"kme-a", kme_config()};
  net::Server kme_server{pki().kme, pki().trust()};
  int kme_port = 0;
  std::unique_ptr<audit::AuditLog> log;
  net::Server n2_server{pki().n2, pki().trust()};
  int n2_port = 0;
  secure::TrustStore trust = pki().trust();
  qkd::Keys n2_keys;
  secure::ReplayGuard replay;
  std::unique_ptr<net::Client> n2_to_kme, orch_to_kme, orch_to_n2, n1_to_n2;
  std::vector<fed::Update> received;
  std::vector<DeployRequest> deployed;

  static qkd::KmeConfig kme_config() {
    qkd::KmeConfig c;
    c.pki = pki().dir;
    c.link.pulses = qkd::pulses_for_sifted(c.link, 1 << 15);
    c.seed = 11;
    return c;
  }
  explicit Sites(bool allow_pqc_only = false) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    log = std::make_unique<audit::AuditLog>(dir + "/audit.db", true);
    kme.mount(kme_server);
    kme_port = kme_server.listen("127.0.0.1", 0);
    n2_to_kme = std::make_unique<net::Client>(pki().n2, trust, "127.0.0.1", kme_port);
    orch_to_kme = std::make_unique<net::Client>(pki().orch, trust, "127.0.0.1", kme_port);
    n2_keys.required = !allow_pqc_only;
    n2_keys.for_opening = [this](const std::string& sender, const std::string& id) {
      return qkd::KmeClient(*n2_to_kme).dec_keys(sender, {id}).at(0).key;
    };
    const Inbox in{&trust, "n2", &n2_keys, &replay, log.get()};
    n2_server.rpc("FederatedRound", [this, in](const net::Peer& peer, const std::string& body) {
      received.push_back(receive_round(peer, body, in).global);
      return std::string();
    });
    n2_server.rpc("Deploy", [this, in](const net::Peer& peer, const std::string& body) {
      deployed.push_back(receive_deploy(peer, body, in));
      return std::string();
    });
    n2_port = n2_server.listen("127.0.0.1", 0);
    orch_to_n2 = std::make_unique<net::Client>(pki().orch, trust, "127.0.0.1", n2_port);
    n1_to_n2 = std::make_unique<net::Client>(pki().n1, trust, "127.0.0.1", n2_port);
  }
  qkd::KeyForSend fresh_key(const std::string& to) {
    const auto k = qkd::KmeClient(*orch_to_kme).enc_keys(to, 1).at(0);
    return {k.id, k.key};
  }
  // `payload` sealed by the orchestrator for n2 over the current session, as NodeClient does.
  secure::Bytes sealed(const std::string& payload, uint64_t seq, bool with_key = true) {
    return seal_for(pki().orch, orch_to_n2->session(), "run-7", seq, payload, with_key ? fresh_key("n2") : qkd::KeyForSend{}).wire;
  }
  std::string round_body(const secure::Bytes& envelope, uint64_t seq) {
    rpc::FederatedRoundRequest req;
    req.set_run("run-7");
    req.set_round(1);
    req.set_rounds(2);
    req.set_design_json("{\"width\": \"4\"}");
    req.set_global_envelope(envelope.data(), envelope.size());
    req.set_seq(seq);
    return req.SerializeAsString();
  }
  net::Response call(const std::string& rpc, const std::string& body, net::Client* from = nullptr) {
    return (from ? from : orch_to_n2.get())->call("POST", "/rpc/" + rpc, body, "application/x-protobuf");
  }
  nlohmann::json last_audit() {
    const auto e = log->entries(log->size() - 1, log->size()).at(0);
    nlohmann::json j = nlohmann::json::parse(e.detail);
    j["kind"] = e.kind;
    return j;
  }
};

TEST(Exchange, ASealedStateWithAQkdKeyArrivesAndIsAudited) {
  Sites s;
  const fed::Update state = a_state(0.25f);
  const std::string payload = fed::encode(state);
  const net::Response r = s.call("FederatedRound", s.round_body(s.sealed(payload, 1), 1));
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_EQ(s.received.size(), 1u);
  EXPECT_EQ(fed::encode(s.received[0]), payload);
  const auto a = s.last_audit();
  EXPECT_EQ(a["kind"], "exchange");
  EXPECT_EQ(a["from"], "orch");
  EXPECT_EQ(a["to"], "n2");
  EXPECT_EQ(a["round"], 1);
  EXPECT_EQ(a["model_digest"], secure::model_digest(secure::view(payload)));
  EXPECT_EQ(a["tls_group"], "X25519MLKEM768");
  EXPECT_EQ(a["mode"], "qkd+pqc");
  const secure::SigningKey audit_key = secure::SigningKey::generate("ML-DSA-65");
  s.log->sign_head(audit_key);
  EXPECT_TRUE(s.log->verify(audit_key.public_key()).ok);
  // A model to deploy travels the same way.
  const std::string model = pack_model("{\"family\": \"cnn\"}", "weights");
  rpc::DeployRequest d;
  const secure::Bytes env = s.sealed(model, 2);
  d.set_run("run-7");
  d.set_seq(2);
  d.set_model_envelope(env.data(), env.size());
  ASSERT_EQ(s.call("Deploy", d.SerializeAsString()).status, 200);
  ASSERT_EQ(s.deployed.size(), 1u);
  EXPECT_EQ(s.deployed[0].model_json, "{\"family\": \"cnn\"}");
  EXPECT_EQ(s.deployed[0].weights, "weights");
}

TEST(Exchange, TamperedReplayedMisaddressedOrMalformedMessagesAreRefusedAndAudited) {
  Sites s;
  const std::string payload = fed::encode(a_state(1));
  auto refused = [&](const std::string& body, const std::string& reason, bool audited = true) {
    const net::Response r = s.call("FederatedRound", body);
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_NE(r.body.find(reason), std::string::npos) << r.body;
    if (!audited) return;
    const auto a = s.last_audit();
    EXPECT_EQ(a["kind"], "rejection");
    EXPECT_NE(a["reason"].get<std::string>().find(reason), std::string::npos) << a.dump();
    EXPECT_EQ(a["from"], "orch");
  };
  secure::Bytes bad = s.sealed(payload, 1);
  bad[static_cast<std::size_t>(secure::parse_envelope(bad).body.data() - bad.data())] ^= 0x04;  // a ciphertext byte
  refused(s.round_body(bad, 1), "does not authenticate");
  EXPECT_EQ(s.last_audit().value("claimed_sender", ""), "orch");  // the header it names, parsed once refused
  const std::string good = s.round_body(s.sealed(payload, 2), 2);
  ASSERT_EQ(s.call("FederatedRound", good).status, 200);
  refused(good, "replayed envelope from 'orch'");
  {  // sealed for n3, sent to n2
    secure::EnvelopeHeader h{"orch", "n3", "run-7", 0, 3, secure::model_digest(secure::view(payload)), "", ""};
    refused(s.round_body(secure::seal(h, secure::view(payload), s.orch_to_n2->session().exporter, {}, pki().orch), 3),
            "envelope is for 'n3', not for 'n2'");
  }
  refused("\x0a\xff\xff", "FederatedRound: not a FederatedRoundRequest message", false);
  refused(s.round_body({'G', 'N', 'G', 'E', 1, 0, 0}, 4), "truncated envelope");
  {  // a key_ID the recipient's KME never issued
    secure::EnvelopeHeader h{"orch", "n2", "run-7", 0, 5, secure::model_digest(secure::view(payload)),
                             "0f0e0d0c-0b0a-4908-8706-050403020100", ""};
    refused(s.round_body(secure::seal(h, secure::view(payload), s.orch_to_n2->session().exporter, secure::random_bytes(32), pki().orch), 5),
            "key_ID 0f0e0d0c-0b0a-4908-8706-050403020100 is unknown to this KME");
  }
  // An envelope that opens but does not hold a model state.
  refused(s.round_body(s.sealed("not a state", 6), 6), "global state rejected: not a gng model update");
  {  // a round outside 1..rounds is refused before anything is opened
    rpc::FederatedRoundRequest req;
    req.set_round(3);
    req.set_rounds(2);
    refused(req.SerializeAsString(), "FederatedRound: round 3 of 2 is not a round", false);
  }
  {  // a design the node cannot read is refused before the envelope is opened (or audited)
    rpc::FederatedRoundRequest req;
    req.ParseFromString(s.round_body(s.sealed(payload, 7), 7));
    req.set_design_json("{\"width\": ");
    const uint64_t entries = s.log->size();
    EXPECT_EQ(s.call("FederatedRound", req.SerializeAsString()).status, 400);
    EXPECT_EQ(s.log->size(), entries);
  }
  EXPECT_EQ(s.received.size(), 1u);
  // A node's certificate may not start a round.
  const net::Response r = s.call("FederatedRound", good, s.n1_to_n2.get());
  EXPECT_EQ(r.status, 401);
  EXPECT_NE(r.body.find("'n1' (node) may not start a federated round"), std::string::npos) << r.body;
  // A model payload shorter than its own header.
  rpc::DeployRequest d;
  const secure::Bytes env = s.sealed(std::string("\0\0\0\x09{}", 6), 8);
  d.set_model_envelope(env.data(), env.size());
  const net::Response dr = s.call("Deploy", d.SerializeAsString());
  EXPECT_EQ(dr.status, 400);
  EXPECT_NE(dr.body.find("model rejected: truncated model payload: description needs 9 bytes, 2 left"), std::string::npos) << dr.body;
}

TEST(Exchange, PqcOnlyIsAPolicyDecision) {
  Sites strict;
  const std::string payload = fed::encode(a_state(2));
  const net::Response r = strict.call("FederatedRound", strict.round_body(strict.sealed(payload, 1, false), 1));
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("global state rejected: envelope from 'orch' is pqc-only and the policy requires QKD keys"),
            std::string::npos) << r.body;
  Sites lenient(true);
  ASSERT_EQ(lenient.call("FederatedRound", lenient.round_body(lenient.sealed(payload, 1, false), 1)).status, 200);
  EXPECT_EQ(lenient.last_audit()["mode"], "pqc-only");
}

TEST(Exchange, ModelPayloadsRoundTrip) {
  const std::string packed = pack_model("{\"a\": 1}", std::string("\0\1\2", 3));
  const auto [json, weights] = unpack_model(secure::view(packed));
  EXPECT_EQ(json, "{\"a\": 1}");
  EXPECT_EQ(weights, std::string("\0\1\2", 3));
  EXPECT_EQ(test::error_of([] { unpack_model(secure::view(std::string("\0\0", 2))); }),
            "truncated model payload: description needs 4 bytes, 2 left");
}

}  // namespace
}  // namespace gng::node
