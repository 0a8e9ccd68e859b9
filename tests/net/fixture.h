#pragma once
// The PKI the net tests share: made once per test process in a temporary directory.
#include <gtest/gtest.h>
#include <unistd.h>

#include <ctime>
#include <filesystem>

#include "secure/pki.h"

namespace gng::test {

using secure::Identity;
using secure::TrustStore;

// One project PKI and one foreign one, made once for all tests here.
struct Pki {
  std::string dir, other;
  Identity orch, n1, n2, n3, expired, denied, stranger, kme;
  Pki() {
    dir = testing::TempDir() + "gng-net-pki-" + std::to_string(getpid());
    other = dir + "-other";
    std::filesystem::remove_all(dir);
    std::filesystem::remove_all(other);
    secure::pki_init(dir);
    secure::pki_init(other);
    orch = secure::pki_issue(dir, {"orchestrator", "orch"});
    n1 = secure::pki_issue(dir, {"node", "n1"});
    n2 = secure::pki_issue(dir, {"node", "n2"});
    n3 = secure::pki_issue(dir, {"node", "n3"});
    kme = secure::pki_issue(dir, {"kme", "kme-a"});
    secure::IssueOptions old{"node", "old"};
    old.valid_from = std::time(nullptr) - 10 * 86400;
    old.days = 2;
    expired = secure::pki_issue(dir, old);
    denied = secure::pki_issue(dir, {"node", "bad"});
    secure::pki_deny(dir, "bad");
    stranger = secure::pki_issue(other, {"node", "n1"});  // same name, another CA
  }
  TrustStore trust() const { return TrustStore::load(dir); }
};

inline const Pki& pki() {
  static const Pki p;
  return p;
}

}  // namespace gng::test
