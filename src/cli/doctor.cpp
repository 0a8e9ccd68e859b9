// gng doctor — checks what gng needs from the machine and says what is missing.
#include <dlfcn.h>

#include <cstdio>
#include <string>

#include "cli/commands.h"
#include "core/args.h"
#include "secure/crypto_info.h"

namespace gng::cli {

int doctor(const std::vector<std::string>& argv) {
  Args args("gng doctor");
  args.flag("help", "show this help");
  args.parse(argv);
  if (args.has("help")) {
    std::printf("usage: gng doctor\n\nChecks OpenSSL (>= 3.5, ML-KEM-768, ML-DSA-65, SLH-DSA, one libcrypto) and OpenBLAS.\n");
    return 0;
  }
  int problems = 0;
  auto check = [&](bool ok, const std::string& what, const std::string& fix) {
    std::printf("%s  %s\n", ok ? "ok  " : "FAIL", what.c_str());
    if (!ok) {
      std::printf("      fix: %s\n", fix.c_str());
      ++problems;
    }
  };
  const CryptoInfo c = crypto_info();
  check(c.version_num >= 0x30500000UL, "OpenSSL " + c.version, "build OpenSSL >= 3.5: bash scripts/setup.sh");
  check(c.ml_kem_768, "ML-KEM-768 key encapsulation round trip", "OpenSSL >= 3.5 with the default provider");
  check(c.ml_dsa_65, "ML-DSA-65 sign/verify round trip", "OpenSSL >= 3.5 with the default provider");
  check(c.slh_dsa, "SLH-DSA key generation", "OpenSSL >= 3.5 with the default provider");
  const auto libs = loaded_openssl_libraries();
  int crypto = 0;
  std::string list;
  for (const auto& l : libs) {
    if (l.find("libcrypto") != std::string::npos) ++crypto;
    list += (list.empty() ? "" : ", ") + l;
  }
  check(crypto == 1, "exactly one libcrypto loaded: " + list, "link with -Wl,--disable-new-dtags and an rpath to OpenSSL >= 3.5");
  // libtorch finds BLAS at run time; without OpenBLAS it silently uses the reference BLAS (~15× slower).
  void* blas = dlopen("libopenblas.so.0", RTLD_LAZY | RTLD_NOLOAD);
  if (!blas) blas = dlopen("libopenblas.so.0", RTLD_LAZY);
  check(blas != nullptr, "OpenBLAS (libopenblas.so.0) available", "apt-get install libopenblas0-openmp");
  if (blas) dlclose(blas);
  std::printf("%s\n", problems ? "some checks failed" : "all checks passed");
  return problems ? 1 : 0;
}

}  // namespace gng::cli
