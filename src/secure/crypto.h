#pragma once
// The cryptographic primitives gng uses, every one of them from OpenSSL >= 3.5 (EVP); nothing here
// implements a cipher, hash, KEM or signature itself. Failures a user can cause (a bad PEM file, a
// wrong key type) are gng::Error; a failed verification or authentication is a return value.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

typedef struct evp_pkey_st EVP_PKEY;

namespace gng::secure {

using Bytes = std::vector<uint8_t>;
using View = std::span<const uint8_t>;

inline View view(std::string_view s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }
std::string hex(View b);
std::string base64(View b);                   // RFC 4648, with padding, one line
Bytes from_base64(std::string_view text);     // strict; throws gng::Error on anything malformed
std::string uuid4();                          // a random (version 4) UUID, lower-case

Bytes random_bytes(std::size_t n);  // RAND_bytes (the DRBG), never a seeded PRNG
Bytes sha256(View data);
Bytes sha384(View data);

// HKDF (RFC 5869) with SHA-384.
Bytes hkdf_sha384(View ikm, View salt, View info, std::size_t length);

// AES-256-GCM: seal returns ciphertext ‖ 16-byte tag; open returns false (and leaves `plain` empty)
// when the key, IV, AAD, ciphertext or tag do not authenticate.
Bytes aes256gcm_seal(View key, View iv, View aad, View plain);
void aes256gcm_seal_to(View key, View iv, View aad, View plain, uint8_t* out);  // writes plain.size() + 16 bytes
bool aes256gcm_open(View key, View iv, View aad, View sealed, Bytes& plain);

// A public key (any algorithm OpenSSL knows); verification of ML-DSA / SLH-DSA signatures.
class PublicKey {
 public:
  PublicKey() = default;
  explicit PublicKey(EVP_PKEY* owned);  // takes ownership
  static PublicKey from_pem(std::string_view pem);
  std::string pem() const;
  Bytes der() const;                     // SubjectPublicKeyInfo
  std::string fingerprint() const;       // hex SHA-256 of der()
  std::string algorithm() const;         // "ML-DSA-65", ...
  bool verify(View message, View signature) const;
  EVP_PKEY* get() const { return key_.get(); }
  explicit operator bool() const { return key_ != nullptr; }

 private:
  std::shared_ptr<EVP_PKEY> key_;
};

// A private signing key: ML-DSA-44/65/87 or SLH-DSA-* (pure signatures, empty context).
class SigningKey {
 public:
  SigningKey() = default;
  explicit SigningKey(EVP_PKEY* owned);  // takes ownership
  static SigningKey generate(const std::string& algorithm);  // e.g. "ML-DSA-65", "SLH-DSA-SHA2-128s"
  static SigningKey from_pem(std::string_view pem);          // PKCS#8, unencrypted
  std::string pem() const;                                   // PKCS#8
  PublicKey public_key() const;
  std::string algorithm() const;
  Bytes sign(View message) const;
  EVP_PKEY* get() const { return key_.get(); }
  explicit operator bool() const { return key_ != nullptr; }

 private:
  std::shared_ptr<EVP_PKEY> key_;
};

// ML-KEM-768 (FIPS 203), for benchmarks and the hybrid key exchange's measured cost.
struct KemKeyPair {
  std::shared_ptr<EVP_PKEY> key;
  static KemKeyPair generate();
  Bytes public_key() const;  // encoded encapsulation key
};
struct Encapsulated {
  Bytes ciphertext, secret;
};
Encapsulated kem_encapsulate(View public_key);
Bytes kem_decapsulate(const KemKeyPair& pair, View ciphertext);

}  // namespace gng::secure
