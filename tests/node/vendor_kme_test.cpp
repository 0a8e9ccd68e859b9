// gng's KME client against a KME it did not write: tests/node/vendor_kme.py, the ETSI GS QKD 014 API
// on Python's TLS stack with classical (ECDSA P-256) certificates from a CA outside gng's PKI — the
// test double for a vendor's key manager, at the seam of the ETSI REST API.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include <gtest/gtest.h>

#include "core/file.h"
#include "node/node.h"
#include "secure/crypto.h"
#include "qkd/kme.h"
#include "support/error_of.h"
#include "support/paths.h"

namespace gng::qkd {
namespace {

// A vendor's PKI made with the system's openssl tool: a CA, the KME's server certificate for
// 127.0.0.1, client certificates for SAE_A and SAE_B; and a second CA that signed nothing here.
struct VendorPki {
  std::string dir;
  VendorPki() {
    dir = testing::TempDir() + "gng-vendor-kme-" + std::to_string(getpid());
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    sh("openssl req -x509 " + ec + " -keyout ca.key -out ca.pem -days 30 -subj '/CN=Vendor QKD CA'");
    sh("openssl req -x509 " + ec + " -keyout other-ca.key -out other-ca.pem -days 30 -subj '/CN=Someone else'");
    issue("kme", "subjectAltName=IP:127.0.0.1");
    issue("kme-elsewhere", "subjectAltName=DNS:kme.elsewhere.example");
    issue("SAE_A", "extendedKeyUsage=clientAuth");
    issue("SAE_B", "extendedKeyUsage=clientAuth");
  }
  ~VendorPki() { std::filesystem::remove_all(dir); }
  void sh(const std::string& cmd) const {
    const auto r = test::run("cd " + dir + " && " + cmd);
    ASSERT_EQ(r.status, 0) << cmd << "\n" << r.out;
  }
  void issue(const std::string& cn, const std::string& ext) const {
    std::ofstream(dir + "/" + cn + ".ext") << ext << "\n";
    sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout " + cn + ".key -out " + cn + ".csr -subj '/CN=" +
       cn + "'");
    sh("openssl x509 -req -in " + cn + ".csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -out " + cn + ".pem -extfile " +
       cn + ".ext");
  }
  net::ExternalTls sae(const std::string& name, const std::string& ca = "ca.pem") const {
    net::ExternalTls t;
    t.ca_file = dir + "/" + ca;
    t.cert_file = dir + "/" + name + ".pem";
    t.key_file = dir + "/" + name + ".key";
    return t;
  }
};

const VendorPki& vendor() {
  static const VendorPki p;
  return p;
}

// The vendor KME as a child process, until the object goes.
struct VendorKme {
  pid_t pid = -1;
  int port = 0;
  explicit VendorKme(const std::string& server = "kme", const std::string& extra = "") {
    const std::string log = vendor().dir + "/kme-" + std::to_string(getpid()) + "-" + std::to_string(counter()++) + ".log";
    const std::string cmd = "exec /usr/bin/python3 " + std::string(GNG_SOURCE_DIR) + "/tests/node/vendor_kme.py --cert " +
                            vendor().dir + "/" + server + ".pem --key " + vendor().dir + "/" + server + ".key --ca " +
                            vendor().dir + "/ca.pem " + extra + " > " + log + " 2>&1";
    pid = fork();
    if (pid == 0) {
      execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    for (int i = 0; i < 200 && port == 0; ++i) {
      usleep(50000);
      std::smatch m;
      const std::string out = std::filesystem::exists(log) ? read_file(log) : "";
      if (std::regex_search(out, m, std::regex("listening (\\d+)"))) port = std::stoi(m[1]);
    }
    EXPECT_GT(port, 0) << "the vendor KME did not start: " << (std::filesystem::exists(log) ? read_file(log) : "");
  }
  ~VendorKme() {
    kill(pid, SIGTERM);
    waitpid(pid, nullptr, 0);
  }
  static int& counter() {
    static int c = 0;
    return c;
  }
  std::unique_ptr<net::Client> client(const std::string& sae, const std::string& ca = "ca.pem") const {
    return std::make_unique<net::Client>(vendor().sae(sae, ca), "127.0.0.1", port);
  }
};

TEST(VendorKme, KeysFlowBetweenTwoSaesOverClassicalTls12UnderTheVendorsOwnIds) {
  VendorKme kme;
  // gng's nodes n1 and n2 are SAE_A and SAE_B to the vendor.
  qkd::Keys n1 = kme_access(kme.client("SAE_A"), true, {{"n2", "SAE_B"}});
  qkd::Keys n2 = kme_access(kme.client("SAE_B"), true, {{"n1", "SAE_A"}});
  const qkd::KeyForSend k = n1.for_sending("n2");
  EXPECT_EQ(k.key.size(), 32u);
  EXPECT_TRUE(std::regex_match(k.key_id, std::regex("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"))) << k.key_id;
  EXPECT_EQ(n2.for_opening("n1", k.key_id), k.key);
  // Delivered once; the vendor's 400 and its message come through.
  EXPECT_EQ(test::error_of([&] { n2.for_opening("n1", k.key_id); }),
            "KME refused dec_keys from SAE_A (HTTP 400): key_ID " + k.key_id + " unknown");
  // Without a mapping the gng id is used as the SAE ID, which this KME does not know as the master.
  const qkd::KeyForSend k2 = n1.for_sending("n2");
  qkd::Keys unmapped = kme_access(kme.client("SAE_B"), true);
  EXPECT_NE(test::error_of([&] { unmapped.for_opening("n1", k2.key_id); }).find("HTTP 400"), std::string::npos);
  // The status route and the ids of both ends, as the vendor's KME names them.
  auto c = kme.client("SAE_A");
  const std::string status = KmeClient(*c).status("SAE_B");
  EXPECT_NE(status.find("\"master_SAE_ID\": \"SAE_A\""), std::string::npos) << status;
  // An SAE ID that is not a plain path segment arrives intact (percent-encoded on the way).
  const std::string odd = KmeClient(*c).status("SAE B/1?x");
  EXPECT_NE(odd.find("\"slave_SAE_ID\": \"SAE B/1?x\""), std::string::npos) << odd;
  EXPECT_EQ(c->last_session().id, "kme");
}

TEST(VendorKme, WorksOverTls13Too) {
  VendorKme kme("kme", "--tls 1.3");
  qkd::Keys a = kme_access(kme.client("SAE_A"), true, {{"n2", "SAE_B"}});
  qkd::Keys b = kme_access(kme.client("SAE_B"), true, {{"n1", "SAE_A"}});
  const auto k = a.for_sending("n2");
  EXPECT_EQ(b.for_opening("n1", k.key_id), k.key);
}

TEST(VendorKme, AServerOutsideTheConfiguredCaOrNamedForAnotherHostIsRefused) {
  VendorKme kme;
  // Our CA file names another CA: the vendor's server certificate does not chain to it.
  qkd::Keys foreign = kme_access(kme.client("SAE_A", "other-ca.pem"), true);
  const std::string e1 = test::error_of([&] { foreign.for_sending("SAE_B"); });
  EXPECT_NE(e1.find("server certificate: self-signed certificate in certificate chain"), std::string::npos) << e1;
  // A certificate from the right CA for another host name.
  VendorKme elsewhere("kme-elsewhere");
  qkd::Keys misnamed = kme_access(elsewhere.client("SAE_A"), true);
  const std::string e2 = test::error_of([&] { misnamed.for_sending("SAE_B"); });
  EXPECT_NE(e2.find("server certificate does not name the host 127.0.0.1"), std::string::npos) << e2;
}

TEST(VendorKme, AKeyOfTheWrongSizeIsRefused) {
  VendorKme kme("kme", "--key-bits 128");
  qkd::Keys a = kme_access(kme.client("SAE_A"), true);
  const std::string e = test::error_of([&] { a.for_sending("SAE_B"); });
  EXPECT_NE(e.find("with 128 bits, not 256"), std::string::npos) << e;
}

TEST(VendorKme, MissingOrMismatchedFilesAreNamed) {
  net::ExternalTls t = vendor().sae("SAE_A");
  t.cert_file = vendor().dir + "/nope.pem";
  EXPECT_NE(test::error_of([&] { net::Client c(t, "127.0.0.1", 1); }).find("certificate " + t.cert_file), std::string::npos);
  t = vendor().sae("SAE_A");
  t.key_file = vendor().dir + "/SAE_B.key";
  const std::string e = test::error_of([&] { net::Client c(t, "127.0.0.1", 1); });
  EXPECT_NE(e.find("key " + t.key_file), std::string::npos) << e;
}

TEST(VendorKme, TheNodeConfigDescribesAVendorsKme) {
  const auto c = node::NodeConfig::from_yaml(
      "id: n1\npki: p\ndir: d\norchestrator: o:1\nkme: {address: kme-a.example:443, ca: ca.pem, cert: a.pem, key: a.key, sae_ids: {n2: SAE_B}}\n",
      "node.yaml");
  EXPECT_EQ(c.kme.host, "kme-a.example");
  EXPECT_EQ(c.kme.port, 443);
  ASSERT_TRUE(c.kme_tls.has_value());
  EXPECT_EQ(c.kme_tls->ca_file, "ca.pem");
  EXPECT_EQ(c.kme_tls->groups, "X25519MLKEM768:X25519:P-256:P-384");
  EXPECT_EQ(c.sae_ids.at("n2"), "SAE_B");
  EXPECT_EQ(c.qkd, "required");
  EXPECT_EQ(test::error_of([] { node::NodeConfig::from_yaml("id: n1\npki: p\ndir: d\norchestrator: o:1\nkme: {address: h:1, ca: ca.pem}\n", "node.yaml"); }),
            "node.yaml:5: kme: a vendor's KME needs 'cert' (address, ca, cert and key)");
  EXPECT_EQ(test::error_of([] {
              node::NodeConfig::from_yaml("id: n1\npki: p\ndir: d\norchestrator: o:1\nkme: {address: h:1, ca: c, cert: c, key: k, sae_ids: {[a, b]: B}}\n",
                                         "node.yaml");
            }),
            "node.yaml:5: 'kme.sae_ids' has the wrong type (got 'a collection')");
  EXPECT_NE(test::error_of([] { node::NodeConfig::from_yaml("id: n1\npki: p\ndir: d\norchestrator: o:1\nkme: {address: h:1, ca: c, cert: c, key: k, "
                                                          "port: 3}\n", "node.yaml"); })
                .find("port"),
            std::string::npos);
}

}  // namespace
}  // namespace gng::qkd
