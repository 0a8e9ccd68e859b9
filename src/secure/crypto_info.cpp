#include "secure/crypto_info.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <fstream>
#include <memory>
#include <set>

namespace gng {

namespace {

using PKey = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using PKeyCtx = std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)>;

bool ml_kem_round_trip(const char* alg) {
  PKey key(EVP_PKEY_Q_keygen(nullptr, nullptr, alg), EVP_PKEY_free);
  if (!key) return false;
  PKeyCtx enc(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr), EVP_PKEY_CTX_free);
  std::size_t ct_len = 0, ss_len = 0;
  if (!enc || EVP_PKEY_encapsulate_init(enc.get(), nullptr) <= 0 ||
      EVP_PKEY_encapsulate(enc.get(), nullptr, &ct_len, nullptr, &ss_len) <= 0)
    return false;
  std::vector<unsigned char> ct(ct_len), ss(ss_len), ss2(ss_len);
  if (EVP_PKEY_encapsulate(enc.get(), ct.data(), &ct_len, ss.data(), &ss_len) <= 0) return false;
  PKeyCtx dec(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr), EVP_PKEY_CTX_free);
  std::size_t ss2_len = ss2.size();
  if (!dec || EVP_PKEY_decapsulate_init(dec.get(), nullptr) <= 0 ||
      EVP_PKEY_decapsulate(dec.get(), ss2.data(), &ss2_len, ct.data(), ct_len) <= 0)
    return false;
  return ss_len == 32 && ss2_len == ss_len && ss == ss2;
}

bool signature_round_trip(const char* alg) {
  PKey key(EVP_PKEY_Q_keygen(nullptr, nullptr, alg), EVP_PKEY_free);
  if (!key) return false;
  const unsigned char msg[] = "gng";
  MdCtx sign(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  std::size_t sig_len = 0;
  if (!sign || EVP_DigestSignInit_ex(sign.get(), nullptr, nullptr, nullptr, nullptr, key.get(), nullptr) <= 0 ||
      EVP_DigestSign(sign.get(), nullptr, &sig_len, msg, sizeof msg) <= 0)
    return false;
  std::vector<unsigned char> sig(sig_len);
  if (EVP_DigestSign(sign.get(), sig.data(), &sig_len, msg, sizeof msg) <= 0) return false;
  MdCtx verify(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  return verify && EVP_DigestVerifyInit_ex(verify.get(), nullptr, nullptr, nullptr, nullptr, key.get(), nullptr) > 0 &&
         EVP_DigestVerify(verify.get(), sig.data(), sig_len, msg, sizeof msg) == 1;
}

}  // namespace

CryptoInfo crypto_info() {
  CryptoInfo info;
  info.version = OpenSSL_version(OPENSSL_VERSION);
  info.version_num = OpenSSL_version_num();
  info.ml_kem_768 = ml_kem_round_trip("ML-KEM-768");
  info.ml_dsa_65 = signature_round_trip("ML-DSA-65");
  PKey slh(EVP_PKEY_Q_keygen(nullptr, nullptr, "SLH-DSA-SHA2-128s"), EVP_PKEY_free);
  info.slh_dsa = slh != nullptr;
  return info;
}

std::vector<std::string> loaded_openssl_libraries() {
  std::ifstream maps("/proc/self/maps");
  std::set<std::string> paths;
  for (std::string line; std::getline(maps, line);) {
    const auto slash = line.find('/');
    if (slash == std::string::npos) continue;
    const std::string path = line.substr(slash);
    const std::string file = path.substr(path.rfind('/') + 1);
    if (file.rfind("libcrypto.so", 0) == 0 || file.rfind("libssl.so", 0) == 0) paths.insert(path);
  }
  return {paths.begin(), paths.end()};
}

}  // namespace gng
