// gng pki and gng kme, run as a user runs them.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <regex>
#include <utility>
#include <vector>

#include "core/file.h"
#include "net/rpc.h"
#include "qkd/bb84.h"
#include "qkd/kme.h"
#include "secure/pki.h"
#include "support/paths.h"

namespace gng {
namespace {

const std::string kGng = GNG_BINARY;

// Starts `gng ARGS…` with its output in `log` and waits (up to 10 s) until the log shows the port
// it listens on, the first group of `port_in`; returns the pid and the port (0 if it never did).
std::pair<pid_t, int> serve(const std::vector<std::string>& args, const std::string& log, const std::string& port_in) {
  const pid_t pid = fork();
  if (pid == 0) {
    if (!freopen(log.c_str(), "w", stdout)) _exit(126);
    std::vector<char*> argv{const_cast<char*>("gng")};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(kGng.c_str(), argv.data());
    _exit(127);
  }
  int port = 0;
  for (int i = 0; i < 200 && port == 0; ++i) {
    usleep(50000);
    std::smatch m;
    const std::string out = std::filesystem::exists(log) ? read_file(log) : "";
    if (std::regex_search(out, m, std::regex(port_in))) port = std::stoi(m[1]);
  }
  return {pid, port};
}

TEST(PkiCli, InitIssueDenyShowAndRefusals) {
  const std::string dir = testing::TempDir() + "gng-pki-cli-" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  auto r = test::run(kGng + " pki init " + dir);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("CA (ML-DSA-87) created"), std::string::npos) << r.out;
  r = test::run(kGng + " pki init " + dir);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("already holds a CA (ca.pem): refusing to overwrite it"), std::string::npos) << r.out;
  ASSERT_EQ(test::run(kGng + " pki issue " + dir + " --role node --id n1 --hosts n1.example,10.0.0.7").status, 0);
  ASSERT_EQ(test::run(kGng + " pki issue " + dir + " --role kme --id kme-a").status, 0);
  r = test::run(kGng + " pki issue " + dir + " --role node --id n1");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("'n1' already has a certificate"), std::string::npos) << r.out;
  r = test::run(kGng + " pki issue " + dir + " --role admin --id x");
  EXPECT_NE(r.out.find("unknown role 'admin': node, kme or orchestrator"), std::string::npos) << r.out;
  r = test::run(kGng + " pki issue " + dir + " --role node --id '../etc'");
  EXPECT_NE(r.out.find("invalid id '../etc'"), std::string::npos) << r.out;
  ASSERT_EQ(test::run(kGng + " pki deny " + dir + " --id n1").status, 0);
  r = test::run(kGng + " pki show " + dir);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("node +n1 .* is on the deny list"))) << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("kme +kme-a .* valid"))) << r.out;
  EXPECT_EQ(std::filesystem::status(dir + "/issued/n1.key.pem").permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  // A deny list altered by anyone but the CA is refused.
  std::string crl = read_file(dir + "/crl.pem");
  crl[crl.size() / 2] = crl[crl.size() / 2] == 'A' ? 'B' : 'A';
  write_file_atomic(dir + "/crl.pem", crl);
  r = test::run(kGng + " pki show " + dir);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("crl.pem"), std::string::npos) << r.out;
}

// Enrolment: the site makes its key and a request; the operator signs the request; the key never
// leaves the site, and what the CA signs is what the site asked for, under the CA's role.
TEST(PkiCli, ASiteEnrolsWithoutItsKeyLeavingIt) {
  const std::string dir = testing::TempDir() + "gng-enrol-" + std::to_string(getpid());
  const std::string ca = dir + "/ca", site = dir + "/site";
  std::filesystem::remove_all(dir);
  ASSERT_EQ(test::run(kGng + " pki init " + ca).status, 0);
  auto r = test::run(kGng + " node init " + site + " --id hospital-a --hosts site-a.example,127.0.0.2");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("gng pki sign CA_DIR " + site + "/hospital-a.csr.pem --role node"), std::string::npos) << r.out;
  const std::string key = site + "/issued/hospital-a.key.pem";
  ASSERT_TRUE(std::filesystem::exists(key));
  EXPECT_EQ(std::filesystem::status(key).permissions() & std::filesystem::perms::all, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  r = test::run(kGng + " node init " + site + " --id hospital-a");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("'hospital-a' already has a key here"), std::string::npos) << r.out;

  // A request whose signature was tampered with is refused; so is one that is not a request.
  const std::string csr = site + "/hospital-a.csr.pem", bad = dir + "/tampered.csr.pem";
  ASSERT_EQ(test::run("/usr/bin/python3 -c \"import base64,sys; t=open('" + csr + "').read().splitlines(); "
                      "d=bytearray(base64.b64decode(''.join(t[1:-1]))); d[-5]^=1; b=base64.b64encode(bytes(d)).decode(); "
                      "open('" + bad + "','w').write(t[0]+'\\n'+'\\n'.join(b[i:i+64] for i in range(0,len(b),64))+'\\n'+t[-1]+'\\n')\"")
                .status,
            0);
  r = test::run(kGng + " pki sign " + ca + " " + bad + " --role node");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find(bad + ": the certificate request's signature does not verify"), std::string::npos) << r.out;
  r = test::run(kGng + " pki sign " + ca + " " + key + " --role node");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("not a PEM certificate request"), std::string::npos) << r.out;
  r = test::run(kGng + " pki sign " + ca + " " + csr);
  EXPECT_NE(r.out.find("pki sign needs --role"), std::string::npos) << r.out;

  r = test::run(kGng + " pki sign " + ca + " " + csr + " --role node --days 30");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("signed node 'hospital-a' (ML-DSA-65"), std::string::npos) << r.out;
  EXPECT_TRUE(std::filesystem::exists(ca + "/issued/hospital-a.pem"));
  EXPECT_FALSE(std::filesystem::exists(ca + "/issued/hospital-a.key.pem"));  // the CA never saw the key
  r = test::run(kGng + " pki sign " + ca + " " + csr + " --role node");
  EXPECT_NE(r.out.find("'hospital-a' already has a certificate"), std::string::npos) << r.out;
  // The site puts the certificate, the CA and its deny list beside its key: a node identity of that CA.
  std::filesystem::copy_file(ca + "/issued/hospital-a.pem", site + "/issued/hospital-a.pem");
  std::filesystem::copy_file(ca + "/ca.pem", site + "/ca.pem");
  std::filesystem::copy_file(ca + "/crl.pem", site + "/crl.pem");
  const secure::Identity me = secure::load_identity(site, "hospital-a");
  EXPECT_EQ(me.role(), "node");
  EXPECT_EQ(me.id(), "hospital-a");
  EXPECT_NO_THROW(secure::TrustStore::load(ca).check(me.cert));
  EXPECT_LE(me.cert.not_after(), std::time(nullptr) + 31 * 86400);
  EXPECT_NE(me.cert.pem().find("-----BEGIN CERTIFICATE-----"), std::string::npos);
  std::filesystem::remove_all(dir);
}

// The token way: the operator makes a one-time token for the site's id and runs the enrolment
// service; the site makes its key in place and sends its request with the token over TLS, and
// keeps the certificate. A token works once, for its id, until it expires; a refused request
// leaves it unused; a service of another CA is refused by the site.
TEST(PkiCli, ASiteEnrolsWithAOneTimeToken) {
  const std::string dir = testing::TempDir() + "gng-token-" + std::to_string(getpid());
  const std::string ca = dir + "/ca";
  std::filesystem::remove_all(dir);
  ASSERT_EQ(test::run(kGng + " pki init " + ca).status, 0);
  ASSERT_EQ(test::run(kGng + " pki issue " + ca + " --role orchestrator --id orchestrator").status, 0);
  auto token = [&](const std::string& id, const std::string& expires = "1h") {
    const auto r = test::run(kGng + " pki token " + ca + " --id " + id + " --expires " + expires);
    EXPECT_EQ(r.status, 0) << r.out;
    return r.out.substr(0, r.out.find('\n'));
  };
  const std::string a = token("site-a"), b = token("site-b"), late = token("site-d", "1s");
  EXPECT_TRUE(std::regex_match(a, std::regex("gng-enrol-[0-9a-f]{64}"))) << a;
  EXPECT_EQ(read_file(ca + "/tokens.db").find(a), std::string::npos);  // only its hash is kept

  const std::string log = dir + "/serve.log";
  const auto [pid, port] = serve({"pki", "serve", ca, "--listen", "127.0.0.1:0"}, log, "on 127\\.0\\.0\\.1:(\\d+)");
  ASSERT_GT(port, 0) << "gng pki serve did not start";
  const std::string at = " --enrol 127.0.0.1:" + std::to_string(port) + " --ca " + ca + "/ca.pem";
  auto enrol = [&](const std::string& site, const std::string& id, const std::string& t) {
    return test::run(kGng + " node init " + dir + "/" + site + " --id " + id + " --token " + t + at);
  };

  // Half the enrolment options: refused before any key is made.
  auto r = test::run(kGng + " node init " + dir + "/half --id site-a --token " + a);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("enrolling with a token needs --enrol HOST:PORT, --token TOKEN and --ca CA.pem"), std::string::npos) << r.out;
  EXPECT_FALSE(std::filesystem::exists(dir + "/half"));

  r = enrol("a", "site-a", a);
  ASSERT_EQ(r.status, 0) << r.out;
  const secure::Identity me = secure::load_identity(dir + "/a", "site-a");
  EXPECT_EQ(me.role(), "node");
  EXPECT_NO_THROW(secure::TrustStore::load(dir + "/a").check(me.cert));
  EXPECT_FALSE(std::filesystem::exists(ca + "/issued/site-a.key.pem"));  // the key never left the site

  r = enrol("a2", "site-a", a);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("refused the enrolment (HTTP 403): the enrolment token for 'site-a' was used already ("), std::string::npos) << r.out;
  r = enrol("c", "site-c", b);  // site-b's token for a request of site-c: refused, and b stays good
  EXPECT_NE(r.out.find("the certificate request names 'site-c'; the token admits 'site-b'"), std::string::npos) << r.out;
  r = enrol("b", "site-b", b);
  EXPECT_EQ(r.status, 0) << r.out;
  r = enrol("x", "site-x", "gng-enrol-" + std::string(64, '0'));
  EXPECT_NE(r.out.find("unknown enrolment token"), std::string::npos) << r.out;
  sleep(2);
  r = enrol("d", "site-d", late);
  EXPECT_NE(r.out.find("the enrolment token for 'site-d' expired at "), std::string::npos) << r.out;
  // A site given another CA's certificate refuses this service (it cannot be the operator's).
  ASSERT_EQ(test::run(kGng + " pki init " + dir + "/other").status, 0);
  r = test::run(kGng + " node init " + dir + "/e --id site-e --token " + token("site-e") + " --enrol 127.0.0.1:" +
                std::to_string(port) + " --ca " + dir + "/other/ca.pem");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("no answer from 127.0.0.1:" + std::to_string(port)), std::string::npos) << r.out;
  EXPECT_FALSE(std::filesystem::exists(dir + "/e/issued/site-e.pem"));

  kill(pid, SIGTERM);
  int st = 0;
  waitpid(pid, &st, 0);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  const std::string said = read_file(log);
  EXPECT_NE(said.find("site-a enrolled from 127.0.0.1:"), std::string::npos) << said;
  EXPECT_NE(said.find("is refused: the enrolment token for 'site-a' was used already"), std::string::npos) << said;
}

TEST(KmeCli, ServesKeysOverIpv6UntilSigterm) {
  const std::string dir = testing::TempDir() + "gng-kme-cli-" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  secure::pki_init(dir);
  secure::pki_issue(dir, {"kme", "kme-a"});
  const secure::Identity n1 = secure::pki_issue(dir, {"node", "n1"});
  const secure::Identity n2 = secure::pki_issue(dir, {"node", "n2"});
  const std::string log = dir + "/kme.log";
  const auto [pid, port] = serve({"kme", "--pki", dir, "--id", "kme-a", "--listen", "[::1]:0", "--seed", "3"}, log,
                                 "https://\\[::1\\]:(\\d+)/");
  ASSERT_GT(port, 0) << "gng kme did not start";
  {
    net::Client c1(n1, secure::TrustStore::load(dir), "::1", port);  // over IPv6, as it was told to listen
    net::Client c2(n2, secure::TrustStore::load(dir), "::1", port);
    qkd::KmeClient a(c1), b(c2);
    const auto k = a.enc_keys("n2", 1);
    EXPECT_EQ(b.dec_keys("n1", {k[0].id})[0].key, k[0].key);
    // A request body far beyond any ETSI request is refused before it is read (413).
    EXPECT_EQ(c1.call("POST", "/api/v1/keys/n2/enc_keys", std::string(1 << 20, ' ')).status, 413);
  }
  kill(pid, SIGTERM);
  int st = 0;
  waitpid(pid, &st, 0);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  EXPECT_NE(read_file(log).find("gng kme: stopped (SIGTERM)"), std::string::npos);
}

// Three `gng kme --topology` processes, one per site: a key from the orchestrator's site reaches a
// node's site through the middle one, which relays it; a topology with a loop link is refused.
TEST(KmeCli, SiteKmesRelayAKeyAcrossProcesses) {
  const std::string dir = testing::TempDir() + "gng-kme-net-cli-" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  secure::pki_init(dir);
  for (const char* id : {"kme-a", "kme-b", "kme-c"}) secure::pki_issue(dir, {"kme", id});
  const secure::Identity orch = secure::pki_issue(dir, {"orchestrator", "orch"});
  const secure::Identity n2 = secure::pki_issue(dir, {"node", "n2"});
  std::vector<int> ports;
  for (int i = 0; i < 3; ++i) {  // free ports: bound to 0, then let go
    net::Server probe(orch, secure::TrustStore::load(dir));
    ports.push_back(probe.listen("127.0.0.1", 0));
    probe.stop();
  }
  qkd::Params p;
  p.km = 10;
  const std::string topo = dir + "/topology.yaml";
  write_file_atomic(topo, "kmes:\n"
                          "  - {id: kme-a, address: 127.0.0.1:" + std::to_string(ports[0]) + ", saes: [orch]}\n"
                          "  - {id: kme-b, address: 127.0.0.1:" + std::to_string(ports[1]) + "}\n"
                          "  - {id: kme-c, address: 127.0.0.1:" + std::to_string(ports[2]) + ", saes: [n2]}\n"
                          "block_pulses: " + std::to_string(qkd::pulses_for_sifted(p, 1 << 13)) + "\n"
                          "links:\n  - {between: [kme-a, kme-b], km: 10}\n  - {between: [kme-b, kme-c], km: 10}\n");
  std::vector<pid_t> pids;
  struct Reaper {  // a failed assertion still stops the KMEs (they hold the test's stderr)
    std::vector<pid_t>& pids;
    ~Reaper() {
      for (const pid_t pid : pids) kill(pid, SIGKILL), waitpid(pid, nullptr, 0);
    }
  } reaper{pids};
  for (const char* id : {"kme-a", "kme-b", "kme-c"}) {
    const auto [pid, port] = serve({"kme", "--pki", dir, "--id", id, "--topology", topo, "--audit", dir + "/" + id}, dir + "/" + id + ".log",
                                   "https://127.0.0.1:(\\d+)/");
    ASSERT_GT(port, 0) << id << " did not start: " << read_file(dir + "/" + id + ".log");
    pids.push_back(pid);
  }
  {
    net::Client to_a(orch, secure::TrustStore::load(dir), "127.0.0.1", ports[0]);
    net::Client to_c(n2, secure::TrustStore::load(dir), "127.0.0.1", ports[2]);
    const auto k = qkd::KmeClient(to_a).enc_keys("n2", 1);
    EXPECT_EQ(qkd::KmeClient(to_c).dec_keys("orch", {k[0].id})[0].key, k[0].key);
    net::Client to_b(orch, secure::TrustStore::load(dir), "127.0.0.1", ports[1]);
    const net::Response m = to_b.call("GET", "/metrics");
    EXPECT_NE(m.body.find("gng_qkd_link_up{kme=\"kme-b\",peer=\"kme-c\"} 1"), std::string::npos) << m.body;
  }
  for (const pid_t pid : pids) kill(pid, SIGTERM);
  for (const pid_t pid : pids) {
    int st = 0;
    waitpid(pid, &st, 0);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  }
  pids.clear();
  EXPECT_NE(read_file(dir + "/kme-b.log").find("gng kme: stopped (SIGTERM)"), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(dir + "/kme-b/audit.db"));

  write_file_atomic(topo, "kmes:\n  - {id: kme-a, address: 127.0.0.1:1}\nlinks:\n  - {between: [kme-a, kme-a]}\n");
  const std::string cmd = kGng + " kme --pki " + dir + " --id kme-a --topology " + topo + " 2>" + dir + "/err.txt";
  EXPECT_EQ(WEXITSTATUS(std::system(cmd.c_str())), 1);
  EXPECT_NE(read_file(dir + "/err.txt").find(topo + ":4: a link from 'kme-a' to itself"), std::string::npos) << read_file(dir + "/err.txt");
}

}  // namespace
}  // namespace gng
