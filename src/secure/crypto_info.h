#pragma once
// What the loaded OpenSSL offers. gng needs OpenSSL >= 3.5 (ML-KEM, ML-DSA, SLH-DSA) and must load
// exactly one libcrypto: these functions let `gng doctor` and the tests prove both.
#include <string>
#include <vector>

namespace gng {

struct CryptoInfo {
  std::string version;        // OpenSSL_version(OPENSSL_VERSION)
  unsigned long version_num;  // OpenSSL_version_num()
  bool ml_kem_768;            // a keygen → encapsulate → decapsulate round trip agreed
  bool ml_dsa_65;             // a keygen → sign → verify round trip passed
  bool slh_dsa;               // SLH-DSA-SHA2-128s key generation works
};

CryptoInfo crypto_info();

// Paths of every libcrypto / libssl shared object mapped into this process (from /proc/self/maps).
std::vector<std::string> loaded_openssl_libraries();

}  // namespace gng
