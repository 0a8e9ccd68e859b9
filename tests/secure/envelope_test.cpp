#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "secure/envelope.h"
#include "support/error_of.h"

namespace gng::secure {
namespace {

struct Fixture {
  std::string dir, other;
  Identity n1, n2, n3, denied, stranger;
  Fixture() {
    dir = testing::TempDir() + "gng-env-pki-" + std::to_string(getpid());
    other = dir + "-other";
    std::filesystem::remove_all(dir);
    std::filesystem::remove_all(other);
    pki_init(dir);
    pki_init(other);
    n1 = pki_issue(dir, {"node", "n1"});
    n2 = pki_issue(dir, {"node", "n2"});
    n3 = pki_issue(dir, {"node", "n3"});
    denied = pki_issue(dir, {"node", "bad"});
    pki_deny(dir, "bad");
    stranger = pki_issue(other, {"node", "n1"});
  }
};

const Fixture& f() {
  static const Fixture fx;
  return fx;
}

struct Exchange {
  TrustStore trust = TrustStore::load(f().dir);
  Bytes exporter = random_bytes(48);
  Bytes qkd = random_bytes(32);
  Bytes update = random_bytes(1000);
  ReplayGuard replay;

  EnvelopeHeader header(uint64_t seq = 1, const std::string& from = "n1") const {
    return {from, "n2", "run-1", 3, seq, model_digest(update), "6f2a1c2e-7f1d-4b8e-9a51-0c3d2b1a9e77", ""};
  }
  Bytes seal_as(const Identity& who, uint64_t seq = 1) const { return seal(header(seq, who.id()), update, exporter, qkd, who); }
  OpenOptions options() {
    OpenOptions o;
    o.trust = &trust;
    o.me = "n2";
    o.tls_exporter = exporter;
    o.qkd_key = [this](const std::string&, const std::string& id) {
      if (id != "6f2a1c2e-7f1d-4b8e-9a51-0c3d2b1a9e77") throw Error("KME: key_ID " + id + " is unknown");
      return qkd;
    };
    o.replay = &replay;
    return o;
  }
};

TEST(Envelope, RoundTripWithQkdAndPqcOnly) {
  Exchange x;
  const Opened o = open(x.seal_as(f().n1), x.options());
  EXPECT_EQ(o.update, x.update);
  EXPECT_EQ(o.header.mode, "qkd+pqc");
  EXPECT_EQ(o.header.sender, "n1");
  EXPECT_EQ(o.header.round, 3u);

  EnvelopeHeader h = x.header(2);
  h.qkd_key_id.clear();
  const Bytes pqc = seal(h, x.update, x.exporter, {}, f().n1);
  EXPECT_EQ(test::error_of([&] { open(pqc, x.options()); }),
            "envelope from 'n1' is pqc-only and the policy requires QKD keys");
  OpenOptions allow = x.options();
  allow.allow_pqc_only = true;
  EXPECT_EQ(open(pqc, allow).header.mode, "pqc-only");
}

TEST(Envelope, AnyFlippedBitIsRefused) {
  Exchange x;
  const Bytes wire = x.seal_as(f().n1);
  for (std::size_t i = 0; i < wire.size(); i += 9) {
    Bytes bad = wire;
    bad[i] ^= static_cast<uint8_t>(1u << (i % 8));
    ReplayGuard fresh;
    OpenOptions o = x.options();
    o.replay = &fresh;
    EXPECT_NE(test::error_of([&] { open(bad, o); }), "no error") << "byte " << i << " of " << wire.size();
  }
}

TEST(Envelope, TruncatedOrExtendedIsAPreciseError) {
  Exchange x;
  const Bytes wire = x.seal_as(f().n1);
  for (std::size_t n = 0; n < wire.size(); n += 97) {
    const std::string e = test::error_of([&] { parse_envelope(View(wire).first(n)); });
    EXPECT_TRUE(e.rfind("truncated envelope", 0) == 0 || e.rfind("envelope body shorter", 0) == 0) << n << ": " << e;
  }
  Bytes longer = wire;
  longer.push_back(0);
  EXPECT_EQ(test::error_of([&] { parse_envelope(longer); }), "envelope has 1 trailing bytes");
  EXPECT_EQ(test::error_of([&] { parse_envelope(view("GNGX\x01rest")); }), "not a gng envelope (bad magic)");
}

TEST(Envelope, ReplayIsRefused) {
  Exchange x;
  const Bytes first = x.seal_as(f().n1, 5);
  open(first, x.options());
  EXPECT_EQ(test::error_of([&] { open(first, x.options()); }),
            "replayed envelope from 'n1' (run run-1, round 3, seq 5; last accepted round 3, seq 5)");
  EXPECT_NE(test::error_of([&] { open(x.seal_as(f().n1, 4), x.options()); }).find("replayed envelope"), std::string::npos);
  EXPECT_EQ(open(x.seal_as(f().n1, 6), x.options()).header.seq, 6u);
}

TEST(Envelope, WrongRecipientUnknownOrRevokedSenderAreRefused) {
  Exchange x;
  OpenOptions other = x.options();
  other.me = "n3";
  EXPECT_EQ(test::error_of([&] { open(x.seal_as(f().n1), other); }), "envelope is for 'n2', not for 'n3'");
  EXPECT_NE(test::error_of([&] { open(x.seal_as(f().stranger), x.options()); }).find("certificate 'n1'"), std::string::npos);
  EXPECT_NE(test::error_of([&] { open(x.seal_as(f().stranger), x.options()); }).find("is not trusted"), std::string::npos);
  EXPECT_NE(test::error_of([&] { open(x.seal_as(f().denied), x.options()); }).find("is on the deny list"),
            std::string::npos);
  // n3 seals honestly, then the header is rewritten to claim n1 (and re-signed by n3): refused.
  const Bytes wire = x.seal_as(f().n3);
  ParsedEnvelope p = parse_envelope(wire);
  EXPECT_EQ(p.header.sender, "n3");
  EXPECT_EQ(test::error_of([&] { seal(x.header(1, "n1"), x.update, x.exporter, x.qkd, f().n3); }),
            "envelope sender 'n1' is not the sealing identity 'n3'");
}

TEST(Envelope, WrongSessionWrongQkdKeyUnknownKeyIdOrWrongDigestAreRefused) {
  Exchange x;
  const Bytes wire = x.seal_as(f().n1);
  const std::string auth = "envelope from 'n1' does not authenticate (wrong session, wrong QKD key or altered body)";
  OpenOptions o = x.options();
  const Bytes other_session = random_bytes(48);
  o.tls_exporter = other_session;
  EXPECT_EQ(test::error_of([&] { open(wire, o); }), auth);
  Exchange y;  // same update, other QKD key
  y.update = x.update;
  y.exporter = x.exporter;
  EXPECT_EQ(test::error_of([&] { open(wire, y.options()); }), auth);
  EnvelopeHeader h = x.header();
  h.qkd_key_id = "00000000-0000-0000-0000-000000000000";
  EXPECT_EQ(test::error_of([&] { open(seal(h, x.update, x.exporter, x.qkd, f().n1), x.options()); }),
            "KME: key_ID 00000000-0000-0000-0000-000000000000 is unknown");
  h = x.header();
  h.model_digest = model_digest(view("another model"));
  EXPECT_EQ(test::error_of([&] { open(seal(h, x.update, x.exporter, x.qkd, f().n1), x.options()); }),
            "envelope from 'n1': the update does not match its model digest " + h.model_digest);
}

}  // namespace
}  // namespace gng::secure
