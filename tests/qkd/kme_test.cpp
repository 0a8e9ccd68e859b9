// The ETSI GS QKD 014 KME over the real PQ-TLS transport, fed by the simulated BB84 link.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "net/fixture.h"
#include "qkd/kme.h"
#include "support/error_of.h"

namespace gng::qkd {
namespace {

using test::pki;
using secure::Identity;

// A KME on loopback with small, seeded link blocks so that tests stay fast.
struct KmeRunning {
  Kme kme;
  net::Server server{pki().kme, pki().trust()};
  int port = 0;
  explicit KmeRunning(double eve = 0) : kme("kme-a", config(eve)) {
    kme.mount(server);
    port = server.listen("127.0.0.1", 0);
  }
  static KmeConfig config(double eve) {
    KmeConfig c;
    c.pki = pki().dir;
    c.link.eve_fraction = eve;
    c.link.pulses = pulses_for_sifted(c.link, 1 << 15);
    c.seed = 7;
    return c;
  }
  net::Client client(const Identity& who) { return net::Client(who, pki().trust(), "127.0.0.1", port); }
};

TEST(Kme, MasterAndSlaveGetTheSameKeysOnceEach) {
  KmeRunning k;
  net::Client c1 = k.client(pki().n1), c2 = k.client(pki().n2);
  KmeClient master(c1), slave(c2);
  const auto enc = master.enc_keys("n2", 3, 256);
  ASSERT_EQ(enc.size(), 3u);
  EXPECT_EQ(enc[0].key.size(), 32u);
  EXPECT_NE(enc[0].key, enc[1].key);
  EXPECT_NE(enc[0].id, enc[1].id);
  const auto st = nlohmann::json::parse(master.status("n2"));
  EXPECT_EQ(st["stored_key_count"], 3);
  EXPECT_EQ(st["master_SAE_ID"], "n1");
  EXPECT_EQ(st["slave_SAE_ID"], "n2");
  for (const char* field : {"source_KME_ID", "target_KME_ID", "key_size", "max_key_count", "max_key_per_request",
                            "max_key_size", "min_key_size", "max_SAE_ID_count"})
    EXPECT_TRUE(st.contains(field)) << field;

  const auto dec = slave.dec_keys("n1", {enc[2].id, enc[0].id});
  ASSERT_EQ(dec.size(), 2u);
  EXPECT_EQ(dec[0].id, enc[2].id);
  EXPECT_EQ(dec[0].key, enc[2].key);
  EXPECT_EQ(dec[1].key, enc[0].key);
  // Delivered once: asking again, or asking as someone else, finds nothing.
  const std::string again = test::error_of([&] { slave.dec_keys("n1", {enc[0].id}); });
  EXPECT_EQ(again, "KME refused dec_keys from n1 (HTTP 400): key_ID " + enc[0].id +
                       " is unknown to this KME for master 'n1' and slave 'n2'");
  net::Client c3 = k.client(pki().n3);
  KmeClient thief(c3);
  EXPECT_NE(test::error_of([&] { thief.dec_keys("n1", {enc[1].id}); }).find("is unknown to this KME"), std::string::npos);
  EXPECT_EQ(slave.dec_keys("n1", {enc[1].id})[0].key, enc[1].key);  // still there for the right slave
}

// A seed makes links reproducible, not alike: n1→n2 and n1→n3 get different keys, and the same
// link of a second KME with the same seed gets the same ones.
TEST(Kme, ASeedGivesEachLinkItsOwnStream) {
  Kme a("kme-a", KmeRunning::config(0)), b("kme-b", KmeRunning::config(0));
  const auto to2 = a.enc_keys("n1", "n2", 1, 256), to3 = a.enc_keys("n1", "n3", 1, 256);
  EXPECT_NE(to2[0].key, to3[0].key);
  EXPECT_EQ(b.enc_keys("n1", "n2", 1, 256)[0].key, to2[0].key);
}

TEST(Kme, GetVariantsOfTheApi) {
  KmeRunning k;
  net::Client c1 = k.client(pki().n1), c2 = k.client(pki().n2);
  const net::Response r = c1.call("GET", "/api/v1/keys/n2/enc_keys?number=2&size=128");
  ASSERT_EQ(r.status, 200) << r.body;
  const auto j = nlohmann::json::parse(r.body);
  ASSERT_EQ(j["keys"].size(), 2u);
  const std::string id = j["keys"][1]["key_ID"];
  EXPECT_EQ(secure::from_base64(j["keys"][1]["key"].get<std::string>()).size(), 16u);
  const net::Response d = c2.call("GET", "/api/v1/keys/n1/dec_keys?key_ID=" + id);
  ASSERT_EQ(d.status, 200) << d.body;
  EXPECT_EQ(nlohmann::json::parse(d.body)["keys"][0]["key"], j["keys"][1]["key"]);
}

TEST(Kme, BadRequestsGetTheSpecsErrorCodesWithAMessage) {
  KmeRunning k;
  net::Client c1 = k.client(pki().n1);
  auto post = [&](const std::string& path, const std::string& body) {
    const net::Response r = c1.call("POST", path, body);
    return std::to_string(r.status) + " " + nlohmann::json::parse(r.body).value("message", "");
  };
  EXPECT_EQ(post("/api/v1/keys/n2/enc_keys", R"({"number": 1, "size": 100})"),
            "400 size must be a multiple of 8 in 64..1024 bits, got 100");
  EXPECT_EQ(post("/api/v1/keys/n2/enc_keys", R"({"number": 0})"), "400 number must be in 1..128, got 0");
  EXPECT_EQ(post("/api/v1/keys/n2/enc_keys", R"({"number": "2"})"), "400 'number' must be an integer");
  EXPECT_EQ(post("/api/v1/keys/n2/enc_keys", R"({"additional_slave_SAE_IDs": ["n3"]})"),
            "400 additional_slave_SAE_IDs is not supported by this KME (max_SAE_ID_count 0)");
  EXPECT_EQ(post("/api/v1/keys/n1/enc_keys", "{}"), "400 master and slave SAE are the same ('n1')");
  EXPECT_EQ(post("/api/v1/keys/n2/enc_keys", "{nope").substr(0, 31), "400 request body is not JSON: [");
  EXPECT_EQ(post("/api/v1/keys/n2/dec_keys", R"({"key_IDs": [{"key_ID": "x"}]})"), "400 key_ID 'x' is not a UUID");
  EXPECT_EQ(post("/api/v1/keys/n2/dec_keys", R"({"key_IDs": 3})"), "400 'key_IDs' must be an array");
  // A KME's certificate is not an SAE's.
  net::Client other_kme = k.client(pki().kme);
  const net::Response r = other_kme.call("POST", "/api/v1/keys/n2/enc_keys", "{}");
  EXPECT_EQ(r.status, 401);
  EXPECT_NE(r.body.find("is not an SAE"), std::string::npos);
}

TEST(Kme, KeysGoOnlyToSaesThePkiKnows) {
  KmeRunning k;
  net::Client c1 = k.client(pki().n1);
  auto post = [&](const std::string& slave) {
    const net::Response r = c1.call("POST", "/api/v1/keys/" + slave + "/enc_keys", "{}");
    return std::to_string(r.status) + " " + nlohmann::json::parse(r.body).value("message", "");
  };
  EXPECT_EQ(post("ghost"), "400 slave SAE 'ghost' has no certificate of this KME's PKI: no keys for it");
  EXPECT_EQ(post("kme-a"), "400 slave SAE 'kme-a' is a kme, not an SAE: no keys for it");
  EXPECT_EQ(post("bad").substr(0, 46), "400 slave SAE 'bad' has no valid certificate: ");
  EXPECT_EQ(post("old").substr(0, 46), "400 slave SAE 'old' has no valid certificate: ");
  EXPECT_EQ(post("orch").substr(0, 3), "200");
  EXPECT_EQ(nlohmann::json::parse(k.kme.status("n1", "ghost"))["stored_key_count"], 0);
}

TEST(Kme, AnEavesdroppedLinkDeliversNoKey) {
  KmeRunning k(1.0);
  net::Client c1 = k.client(pki().n1);
  KmeClient master(c1);
  const std::string e = test::error_of([&] { master.enc_keys("n2", 1); });
  EXPECT_NE(e.find("KME refused enc_keys for n2 (HTTP 503): the QKD link n1–n2 delivers no key"), std::string::npos) << e;
  EXPECT_NE(e.find("QBER"), std::string::npos) << e;
}

}  // namespace
}  // namespace gng::qkd
