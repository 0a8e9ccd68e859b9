#include <gtest/gtest.h>

#include <sstream>

#include "secure/crypto_info.h"
#include "support/paths.h"

namespace gng {
namespace {

TEST(OpenSsl, IsAtLeast35WithPostQuantumAlgorithms) {
  const CryptoInfo c = crypto_info();
  EXPECT_GE(c.version_num, 0x30500000UL) << c.version;
  EXPECT_TRUE(c.ml_kem_768);
  EXPECT_TRUE(c.ml_dsa_65);
  EXPECT_TRUE(c.slh_dsa);
}

TEST(OpenSsl, ExactlyOneLibcryptoIsLoadedInThisProcess) {
  crypto_info();  // make sure libcrypto is in use
  int crypto = 0;
  for (const auto& l : loaded_openssl_libraries()) crypto += l.find("libcrypto") != std::string::npos;
  EXPECT_EQ(crypto, 1);
}

TEST(OpenSsl, TheGngBinaryResolvesOneLibcryptoOfAtLeast35) {
  const auto r = test::run(std::string("ldd ") + GNG_BINARY);
  ASSERT_EQ(r.status, 0) << r.out;
  int crypto = 0;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) crypto += line.find("libcrypto.so") != std::string::npos;
  EXPECT_EQ(crypto, 1) << r.out;
  // ... and at run time that one is >= 3.5 with ML-KEM-768 (gng doctor checks it in the binary).
  const auto doctor = test::run(std::string(GNG_BINARY) + " doctor");
  EXPECT_EQ(doctor.status, 0) << doctor.out;
  EXPECT_NE(doctor.out.find("ok    exactly one libcrypto loaded"), std::string::npos) << doctor.out;
}

}  // namespace
}  // namespace gng
