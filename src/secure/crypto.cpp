#include "secure/crypto.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "secure/openssl_error.h"

namespace gng::secure {

std::string detail::ssl_error() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "no OpenSSL error recorded";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

void detail::internal(const std::string& what) { throw std::runtime_error(what + ": " + ssl_error()); }

namespace {

using PKeyCtx = std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)>;
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;
using Bio = std::unique_ptr<BIO, decltype(&BIO_free)>;

using detail::internal;
using detail::ssl_error;

std::shared_ptr<EVP_PKEY> own(EVP_PKEY* k) { return {k, EVP_PKEY_free}; }

// Digests of small inputs (Merkle nodes) are dominated by fetching the algorithm and making a
// context: fetch once per process, keep one context per thread.
Bytes digest(EVP_MD* md, View data) {
  thread_local std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  Bytes out(static_cast<std::size_t>(EVP_MD_get_size(md)));
  unsigned int n = 0;
  if (!md || !ctx || EVP_DigestInit_ex2(ctx.get(), md, nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), data.data(), data.size()) != 1 || EVP_DigestFinal_ex(ctx.get(), out.data(), &n) != 1)
    internal("EVP_Digest");
  return out;
}

std::string bio_text(BIO* b) {
  char* p = nullptr;
  const long n = BIO_get_mem_data(b, &p);
  return std::string(p, static_cast<std::size_t>(n));
}

std::string algorithm_of(EVP_PKEY* k) {
  const char* name = k ? EVP_PKEY_get0_type_name(k) : nullptr;
  return name ? name : "unknown";
}

}  // namespace

std::string hex(View b) {
  static const char* d = "0123456789abcdef";
  std::string s(b.size() * 2, '0');
  for (std::size_t i = 0; i < b.size(); ++i) {
    s[2 * i] = d[b[i] >> 4];
    s[2 * i + 1] = d[b[i] & 15];
  }
  return s;
}

std::string base64(View b) {
  std::string out(4 * ((b.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), b.data(), static_cast<int>(b.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

Bytes from_base64(std::string_view text) {
  if (text.size() % 4 != 0) throw Error("malformed base64: length " + std::to_string(text.size()) + " is not a multiple of 4");
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const bool pad = c == '=' && i + 2 >= text.size() && (i + 1 == text.size() || text.back() == '=');
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '/' && !pad)
      throw Error("malformed base64: unexpected character at offset " + std::to_string(i));
  }
  Bytes out(3 * (text.size() / 4));
  const int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  if (n < 0) throw Error("malformed base64");
  std::size_t len = static_cast<std::size_t>(n);
  if (text.size() >= 1 && text.back() == '=') --len;  // EVP_DecodeBlock counts padding as zero bytes
  if (text.size() >= 2 && text[text.size() - 2] == '=') --len;
  out.resize(len);
  return out;
}

std::string uuid4() {
  Bytes r = random_bytes(16);
  r[6] = static_cast<uint8_t>((r[6] & 0x0f) | 0x40);
  r[8] = static_cast<uint8_t>((r[8] & 0x3f) | 0x80);
  const std::string h = hex(r);
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) + "-" + h.substr(20);
}

Bytes random_bytes(std::size_t n) {
  Bytes b(n);
  if (n && RAND_bytes(b.data(), static_cast<int>(n)) != 1) internal("RAND_bytes");
  return b;
}

Bytes sha256(View data) {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return digest(md, data);
}
Bytes sha384(View data) {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA384", nullptr);
  return digest(md, data);
}

Bytes hkdf_sha384(View ikm, View salt, View info, std::size_t length) {
  std::unique_ptr<EVP_KDF, decltype(&EVP_KDF_free)> kdf(EVP_KDF_fetch(nullptr, "HKDF", nullptr), EVP_KDF_free);
  if (!kdf) internal("EVP_KDF_fetch HKDF");
  std::unique_ptr<EVP_KDF_CTX, decltype(&EVP_KDF_CTX_free)> ctx(EVP_KDF_CTX_new(kdf.get()), EVP_KDF_CTX_free);
  char md[] = "SHA384";
  // OpenSSL wants non-const pointers in OSSL_PARAM; it does not write through them.
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string("digest", md, 0),
      OSSL_PARAM_construct_octet_string("key", const_cast<uint8_t*>(ikm.data()), ikm.size()),
      OSSL_PARAM_construct_octet_string("salt", const_cast<uint8_t*>(salt.data()), salt.size()),
      OSSL_PARAM_construct_octet_string("info", const_cast<uint8_t*>(info.data()), info.size()),
      OSSL_PARAM_construct_end()};
  Bytes out(length);
  if (!ctx || EVP_KDF_derive(ctx.get(), out.data(), out.size(), params) != 1) internal("HKDF-SHA-384");
  return out;
}

Bytes aes256gcm_seal(View key, View iv, View aad, View plain) {
  Bytes out(plain.size() + 16);
  aes256gcm_seal_to(key, iv, aad, plain, out.data());
  return out;
}

void aes256gcm_seal_to(View key, View iv, View aad, View plain, uint8_t* out) {
  if (key.size() != 32) throw Error("AES-256-GCM needs a 32-byte key, got " + std::to_string(key.size()));
  if (iv.size() != 12) throw Error("AES-256-GCM needs a 12-byte IV, got " + std::to_string(iv.size()));
  CipherCtx c(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  int n = 0, m = 0;
  if (!c || EVP_EncryptInit_ex2(c.get(), EVP_aes_256_gcm(), key.data(), iv.data(), nullptr) != 1 ||
      (!aad.empty() && EVP_EncryptUpdate(c.get(), nullptr, &n, aad.data(), static_cast<int>(aad.size())) != 1))
    internal("AES-256-GCM init");
  // EVP_EncryptUpdate takes an int length: feed large bodies in 1 GiB pieces.
  std::size_t done = 0;
  while (done < plain.size()) {
    const int len = static_cast<int>(std::min<std::size_t>(plain.size() - done, std::size_t(1) << 30));
    if (EVP_EncryptUpdate(c.get(), out + done, &n, plain.data() + done, len) != 1) internal("AES-256-GCM");
    done += static_cast<std::size_t>(n);
  }
  if (EVP_EncryptFinal_ex(c.get(), out + done, &m) != 1 ||
      EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_GET_TAG, 16, out + plain.size()) != 1)
    internal("AES-256-GCM final");
}

bool aes256gcm_open(View key, View iv, View aad, View sealed, Bytes& plain) {
  plain.clear();
  if (key.size() != 32 || iv.size() != 12 || sealed.size() < 16) return false;
  const std::size_t len = sealed.size() - 16;
  CipherCtx c(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  Bytes out(len);
  int n = 0, m = 0;
  if (!c || EVP_DecryptInit_ex2(c.get(), EVP_aes_256_gcm(), key.data(), iv.data(), nullptr) != 1 ||
      (!aad.empty() && EVP_DecryptUpdate(c.get(), nullptr, &n, aad.data(), static_cast<int>(aad.size())) != 1))
    internal("AES-256-GCM init");
  std::size_t done = 0;
  while (done < len) {
    const int piece = static_cast<int>(std::min<std::size_t>(len - done, std::size_t(1) << 30));
    if (EVP_DecryptUpdate(c.get(), out.data() + done, &n, sealed.data() + done, piece) != 1) internal("AES-256-GCM");
    done += static_cast<std::size_t>(n);
  }
  Bytes tag(sealed.end() - 16, sealed.end());
  if (EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_SET_TAG, 16, tag.data()) != 1) internal("AES-256-GCM tag");
  if (EVP_DecryptFinal_ex(c.get(), out.data() + done, &m) != 1) {
    ERR_clear_error();
    return false;
  }
  plain = std::move(out);
  return true;
}

// --- keys -------------------------------------------------------------------------------------------

PublicKey::PublicKey(EVP_PKEY* owned) : key_(own(owned)) {}

PublicKey PublicKey::from_pem(std::string_view pem) {
  Bio b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  EVP_PKEY* k = b ? PEM_read_bio_PUBKEY(b.get(), nullptr, nullptr, nullptr) : nullptr;
  if (!k) throw Error("not a PEM public key (" + ssl_error() + ")");
  return PublicKey(k);
}

std::string PublicKey::pem() const {
  Bio b(BIO_new(BIO_s_mem()), BIO_free);
  if (!key_ || !b || PEM_write_bio_PUBKEY(b.get(), key_.get()) != 1) internal("PEM_write_bio_PUBKEY");
  return bio_text(b.get());
}

Bytes PublicKey::der() const {
  unsigned char* p = nullptr;
  const int n = key_ ? i2d_PUBKEY(key_.get(), &p) : -1;
  if (n <= 0) internal("i2d_PUBKEY");
  Bytes out(p, p + n);
  OPENSSL_free(p);
  return out;
}

std::string PublicKey::fingerprint() const { return hex(sha256(der())); }
std::string PublicKey::algorithm() const { return algorithm_of(key_.get()); }

bool PublicKey::verify(View message, View signature) const {
  if (!key_) return false;
  MdCtx ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  const bool ok =
      ctx && EVP_DigestVerifyInit_ex(ctx.get(), nullptr, nullptr, nullptr, nullptr, key_.get(), nullptr) == 1 &&
      EVP_DigestVerify(ctx.get(), signature.data(), signature.size(), message.data(), message.size()) == 1;
  ERR_clear_error();
  return ok;
}

SigningKey::SigningKey(EVP_PKEY* owned) : key_(own(owned)) {}

SigningKey SigningKey::generate(const std::string& algorithm) {
  if (algorithm.rfind("ML-DSA-", 0) != 0 && algorithm.rfind("SLH-DSA-", 0) != 0)
    throw Error("unsupported signature algorithm '" + algorithm + "' (ML-DSA-44/65/87 or SLH-DSA-*)");
  EVP_PKEY* k = EVP_PKEY_Q_keygen(nullptr, nullptr, algorithm.c_str());
  if (!k) throw Error("OpenSSL cannot generate a " + algorithm + " key (" + ssl_error() + ")");
  return SigningKey(k);
}

SigningKey SigningKey::from_pem(std::string_view pem) {
  Bio b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  EVP_PKEY* k = b ? PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr) : nullptr;
  if (!k) throw Error("not an unencrypted PEM private key (" + ssl_error() + ")");
  return SigningKey(k);
}

std::string SigningKey::pem() const {
  Bio b(BIO_new(BIO_s_mem()), BIO_free);
  if (!key_ || !b || PEM_write_bio_PrivateKey(b.get(), key_.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1)
    internal("PEM_write_bio_PrivateKey");
  return bio_text(b.get());
}

PublicKey SigningKey::public_key() const {
  // Round trip through the SubjectPublicKeyInfo so the result holds no private material.
  unsigned char* p = nullptr;
  const int n = key_ ? i2d_PUBKEY(key_.get(), &p) : -1;
  if (n <= 0) internal("i2d_PUBKEY");
  const unsigned char* q = p;
  EVP_PKEY* pub = d2i_PUBKEY(nullptr, &q, n);
  OPENSSL_free(p);
  if (!pub) internal("d2i_PUBKEY");
  return PublicKey(pub);
}

std::string SigningKey::algorithm() const { return algorithm_of(key_.get()); }

Bytes SigningKey::sign(View message) const {
  if (!key_) throw Error("no signing key");
  MdCtx ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  std::size_t n = 0;
  if (!ctx || EVP_DigestSignInit_ex(ctx.get(), nullptr, nullptr, nullptr, nullptr, key_.get(), nullptr) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &n, message.data(), message.size()) != 1)
    throw Error("a " + algorithm() + " key cannot sign (" + ssl_error() + ")");
  Bytes sig(n);
  if (EVP_DigestSign(ctx.get(), sig.data(), &n, message.data(), message.size()) != 1) internal("EVP_DigestSign");
  sig.resize(n);
  return sig;
}

// --- ML-KEM-768 ---------------------------------------------------------------------------------------

KemKeyPair KemKeyPair::generate() {
  EVP_PKEY* k = EVP_PKEY_Q_keygen(nullptr, nullptr, "ML-KEM-768");
  if (!k) internal("ML-KEM-768 keygen");
  return {own(k)};
}

Bytes KemKeyPair::public_key() const {
  std::size_t n = 0;
  if (EVP_PKEY_get_octet_string_param(key.get(), "pub", nullptr, 0, &n) != 1) internal("ML-KEM public key");
  Bytes out(n);
  if (EVP_PKEY_get_octet_string_param(key.get(), "pub", out.data(), out.size(), &n) != 1) internal("ML-KEM public key");
  return out;
}

Encapsulated kem_encapsulate(View public_key) {
  std::shared_ptr<EVP_PKEY> pub = own(EVP_PKEY_new_raw_public_key_ex(nullptr, "ML-KEM-768", nullptr,
                                                                    public_key.data(), public_key.size()));
  if (!pub) throw Error("not an ML-KEM-768 public key (" + ssl_error() + ")");
  PKeyCtx ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pub.get(), nullptr), EVP_PKEY_CTX_free);
  Encapsulated e;
  std::size_t ct = 0, ss = 0;
  if (!ctx || EVP_PKEY_encapsulate_init(ctx.get(), nullptr) != 1 ||
      EVP_PKEY_encapsulate(ctx.get(), nullptr, &ct, nullptr, &ss) != 1)
    internal("ML-KEM encapsulate");
  e.ciphertext.resize(ct);
  e.secret.resize(ss);
  if (EVP_PKEY_encapsulate(ctx.get(), e.ciphertext.data(), &ct, e.secret.data(), &ss) != 1)
    internal("ML-KEM encapsulate");
  return e;
}

Bytes kem_decapsulate(const KemKeyPair& pair, View ciphertext) {
  PKeyCtx ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pair.key.get(), nullptr), EVP_PKEY_CTX_free);
  std::size_t n = 0;
  if (!ctx || EVP_PKEY_decapsulate_init(ctx.get(), nullptr) != 1 ||
      EVP_PKEY_decapsulate(ctx.get(), nullptr, &n, ciphertext.data(), ciphertext.size()) != 1)
    throw Error("ML-KEM-768 decapsulation failed (" + ssl_error() + ")");
  Bytes out(n);
  if (EVP_PKEY_decapsulate(ctx.get(), out.data(), &n, ciphertext.data(), ciphertext.size()) != 1)
    throw Error("ML-KEM-768 decapsulation failed (" + ssl_error() + ")");
  return out;
}

}  // namespace gng::secure
