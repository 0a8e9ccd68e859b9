#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <filesystem>

#include "secure/crypto.h"
#include "support/error_of.h"

namespace gng::secure {
namespace {

Bytes unhex(const std::string& h) {
  Bytes b;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2) b.push_back(static_cast<uint8_t>(std::stoi(h.substr(i, 2), nullptr, 16)));
  return b;
}

TEST(Primitives, Sha2KnownAnswers) {  // FIPS 180-4 examples
  EXPECT_EQ(hex(sha256(view("abc"))), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(hex(sha384(view("abc"))),
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7");
}

TEST(Primitives, AesGcmKnownAnswerAndTamper) {  // GCM specification, test case 16 (AES-256, AAD, 60-byte P)
  const Bytes key = unhex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
  const Bytes iv = unhex("cafebabefacedbaddecaf888");
  const Bytes aad = unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
  const Bytes plain = unhex(
      "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39");
  const Bytes sealed = aes256gcm_seal(key, iv, aad, plain);
  EXPECT_EQ(hex(sealed),
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
            "76fc6ece0f4e1768cddf8853bb2d551b");
  Bytes out;
  ASSERT_TRUE(aes256gcm_open(key, iv, aad, sealed, out));
  EXPECT_EQ(out, plain);
  for (std::size_t i = 0; i < sealed.size(); i += 7) {  // any flipped bit fails, and yields nothing
    Bytes bad = sealed;
    bad[i] ^= 0x10;
    EXPECT_FALSE(aes256gcm_open(key, iv, aad, bad, out)) << i;
    EXPECT_TRUE(out.empty());
  }
  Bytes bad_aad = aad;
  bad_aad[0] ^= 1;
  EXPECT_FALSE(aes256gcm_open(key, iv, bad_aad, sealed, out));
  EXPECT_FALSE(aes256gcm_open(key, iv, aad, View(sealed).first(10), out));
  EXPECT_EQ(test::error_of([&] { aes256gcm_seal(View(key).first(16), iv, aad, plain); }),
            "AES-256-GCM needs a 32-byte key, got 16");
}

// HKDF-SHA-384 recomputed from its definition (RFC 5869) with HMAC-SHA-384 through EVP_MAC.
Bytes hmac384(View key, View data) {
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(mac);
  char md[] = "SHA384";
  OSSL_PARAM p[] = {OSSL_PARAM_construct_utf8_string("digest", md, 0), OSSL_PARAM_construct_end()};
  Bytes out(48);
  std::size_t n = 0;
  EVP_MAC_init(ctx, key.data(), key.size(), p);
  EVP_MAC_update(ctx, data.data(), data.size());
  EVP_MAC_final(ctx, out.data(), &n, out.size());
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_free(mac);
  return out;
}

TEST(Primitives, HkdfSha384MatchesItsDefinition) {
  const Bytes ikm = random_bytes(64), salt = random_bytes(48);
  const Bytes info(view("gng envelope v1").begin(), view("gng envelope v1").end());
  const Bytes prk = hmac384(salt, ikm);
  Bytes t, okm;
  for (uint8_t i = 1; okm.size() < 100; ++i) {
    Bytes block = t;
    block.insert(block.end(), info.begin(), info.end());
    block.push_back(i);
    t = hmac384(prk, block);
    okm.insert(okm.end(), t.begin(), t.end());
  }
  okm.resize(100);
  EXPECT_EQ(hkdf_sha384(ikm, salt, info, 100), okm);
  EXPECT_NE(hkdf_sha384(ikm, random_bytes(48), info, 100), okm);
}

TEST(Primitives, RandomBytesDiffer) {
  EXPECT_EQ(random_bytes(32).size(), 32u);
  EXPECT_NE(random_bytes(32), random_bytes(32));
}

TEST(Primitives, MlDsaAndSlhDsaSignVerifyAndPemRoundTrip) {
  for (const std::string alg : {"ML-DSA-65", "ML-DSA-87", "SLH-DSA-SHA2-128f"}) {
    const SigningKey k = SigningKey::generate(alg);
    EXPECT_EQ(k.algorithm(), alg);
    const Bytes msg = random_bytes(100);
    Bytes sig = k.sign(msg);
    const PublicKey pub = PublicKey::from_pem(k.public_key().pem());
    EXPECT_EQ(pub.algorithm(), alg);
    EXPECT_EQ(pub.fingerprint(), k.public_key().fingerprint());
    EXPECT_TRUE(pub.verify(msg, sig)) << alg;
    Bytes other = msg;
    other[3] ^= 1;
    EXPECT_FALSE(pub.verify(other, sig)) << alg;
    sig[sig.size() / 2] ^= 0x40;
    EXPECT_FALSE(pub.verify(msg, sig)) << alg;
    // The private key survives PEM (PKCS#8) and still signs for the same public key.
    const SigningKey again = SigningKey::from_pem(k.pem());
    EXPECT_TRUE(pub.verify(msg, again.sign(msg))) << alg;
  }
  EXPECT_FALSE(SigningKey::generate("ML-DSA-65").public_key().verify(view("m"), SigningKey::generate("ML-DSA-65").sign(view("m"))));
}

TEST(Primitives, BadKeysAreClearErrors) {
  EXPECT_EQ(test::error_of([] { SigningKey::generate("RSA"); }),
            "unsupported signature algorithm 'RSA' (ML-DSA-44/65/87 or SLH-DSA-*)");
  EXPECT_NE(test::error_of([] { PublicKey::from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"); })
                .find("not a PEM public key"),
            std::string::npos);
  EXPECT_NE(test::error_of([] { SigningKey::from_pem("garbage"); }).find("not an unencrypted PEM private key"),
            std::string::npos);
}

TEST(Primitives, MlKem768RoundTrip) {
  const KemKeyPair pair = KemKeyPair::generate();
  const Bytes pub = pair.public_key();
  EXPECT_EQ(pub.size(), 1184u);  // FIPS 203: ML-KEM-768 encapsulation key
  const Encapsulated e = kem_encapsulate(pub);
  EXPECT_EQ(e.ciphertext.size(), 1088u);
  EXPECT_EQ(e.secret.size(), 32u);
  EXPECT_EQ(kem_decapsulate(pair, e.ciphertext), e.secret);
  Bytes bad = e.ciphertext;  // implicit rejection: a wrong ciphertext gives a different secret
  bad[0] ^= 1;
  EXPECT_NE(kem_decapsulate(pair, bad), e.secret);
}

}  // namespace
}  // namespace gng::secure

namespace gng::secure {
namespace {

TEST(Primitives, Base64Rfc4648VectorsAndStrictDecoding) {
  const std::pair<const char*, const char*> v[] = {{"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},
                                                   {"foo", "Zm9v"}, {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="},
                                                   {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, enc] : v) {
    EXPECT_EQ(base64(view(plain)), enc);
    const Bytes back = from_base64(enc);
    EXPECT_EQ(std::string(back.begin(), back.end()), plain);
  }
  EXPECT_EQ(test::error_of([] { from_base64("Zm9"); }), "malformed base64: length 3 is not a multiple of 4");
  EXPECT_EQ(test::error_of([] { from_base64("Zm9v!A=="); }), "malformed base64: unexpected character at offset 4");
  EXPECT_NE(test::error_of([] { from_base64("Z=9v"); }), "no error");
}

TEST(Primitives, Uuid4IsWellFormedAndFresh) {
  const std::string u = uuid4();
  ASSERT_EQ(u.size(), 36u);
  EXPECT_EQ(u[14], '4');
  EXPECT_NE(std::string("89ab").find(u[19]), std::string::npos);
  EXPECT_NE(uuid4(), u);
}

}  // namespace
}  // namespace gng::secure
