// A QKD network of site KMEs (qkd/network.h) on loopback: each KME its own PQ-TLS server, linked by
// simulated BB84 links whose post-processing runs between the KMEs; keys direct, relayed, routed
// around an eavesdropper and a dead KME; forged and replayed peer messages.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "audit/log.h"
#include "gng.pb.h"
#include "qkd/network.h"
#include "qkd/network_sim.h"
#include "support/error_of.h"

namespace gng::qkd {
namespace {

using secure::Identity;
using json = nlohmann::json;

struct NetPki {
  std::string dir, other;
  Identity a, b, c, orch, n1, n2, stranger;
  NetPki() {
    dir = testing::TempDir() + "gng-qkdnet-pki-" + std::to_string(getpid());
    other = dir + "-other";
    std::filesystem::remove_all(dir);
    std::filesystem::remove_all(other);
    secure::pki_init(dir);
    secure::pki_init(other);
    a = secure::pki_issue(dir, {"kme", "kme-a"});
    b = secure::pki_issue(dir, {"kme", "kme-b"});
    c = secure::pki_issue(dir, {"kme", "kme-c"});
    orch = secure::pki_issue(dir, {"orchestrator", "orch"});
    n1 = secure::pki_issue(dir, {"node", "n1"});
    n2 = secure::pki_issue(dir, {"node", "n2"});
    stranger = secure::pki_issue(other, {"kme", "kme-a"});  // the same name from another CA
  }
  secure::TrustStore trust() const { return secure::TrustStore::load(dir); }
  const Identity& kme(const std::string& id) const { return id == "kme-a" ? a : id == "kme-b" ? b : c; }
};

const NetPki& pki() {
  static const NetPki p;
  return p;
}

int free_port() {
  const int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len);
  close(s);
  return ntohs(addr.sin_port);
}

// Small blocks (about 2^13 sifted bits, ~600 bytes of key at 10 km) keep the tests quick.
std::string topology(const std::map<std::string, int>& ports, const std::string& links) {
  std::string y = "kmes:\n";
  const std::map<std::string, std::string> saes = {{"kme-a", "[orch]"}, {"kme-b", "[n1]"}, {"kme-c", "[n2]"}};
  for (const auto& [id, port] : ports)
    y += "  - {id: " + id + ", address: 127.0.0.1:" + std::to_string(port) + ", saes: " + saes.at(id) + "}\n";
  Params p;
  p.km = 10;
  y += "block_pulses: " + std::to_string(pulses_for_sifted(p, 1 << 13)) + "\nlinks:\n" + links;
  return y;
}

struct Network {
  std::string dir;
  std::map<std::string, int> ports;
  Topology topo;
  std::map<std::string, std::unique_ptr<SiteKme>> kmes;
  std::map<std::string, std::unique_ptr<net::Server>> servers;

  explicit Network(const std::string& links) {
    static int n = 0;
    dir = testing::TempDir() + "gng-qkdnet-" + std::to_string(getpid()) + "-" + std::to_string(++n);
    std::filesystem::remove_all(dir);
    for (const char* id : {"kme-a", "kme-b", "kme-c"}) ports[id] = free_port();
    topo = parse_topology(topology(ports, links), "test.yaml");
    for (const char* id : {"kme-a", "kme-b", "kme-c"}) start(id);
  }
  ~Network() {  // the KMEs first: their connections to the others' servers close with them
    for (auto& [id, k] : kmes) k->stop();
    for (auto& [id, s] : servers) s->stop();
  }
  void start(const std::string& id) {
    SiteKmeConfig c;
    c.pki = pki().dir;
    c.topology = topo;
    c.pool_bytes = 512;
    c.key_wait = std::chrono::milliseconds(2000);
    c.audit_dir = dir + "/" + id;
    std::filesystem::create_directories(c.audit_dir);
    kmes[id] = std::make_unique<SiteKme>(pki().kme(id), c);
    servers[id] = std::make_unique<net::Server>(pki().kme(id), pki().trust(), site_kme_limits());
    kmes[id]->mount(*servers[id]);
    servers[id]->listen("127.0.0.1", ports[id]);
    kmes[id]->start();
  }
  void kill(const std::string& id) {
    kmes[id]->stop();
    servers[id]->stop();
    servers.erase(id);
    kmes.erase(id);
  }
  json link(const std::string& kme, const std::string& peer) {
    for (const auto& l : kmes.at(kme)->links())
      if (l["peer"] == peer) return l;
    return nullptr;
  }
  // Waits until the link at `kme` satisfies `ok` (at most 30 s).
  bool wait_link(const std::string& kme, const std::string& peer, const std::function<bool(const json&)>& ok) {
    for (int i = 0; i < 600; ++i) {
      if (ok(link(kme, peer))) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
  net::Client client(const Identity& who, const std::string& kme) { return net::Client(who, pki().trust(), "127.0.0.1", ports.at(kme)); }
  std::vector<audit::Entry> trail(const std::string& kme) {
    audit::AuditLog log(dir + "/" + kme + "/" + audit::kLogFile, false);
    return log.entries(0, log.size());
  }
};

bool has_entry(const std::vector<audit::Entry>& es, const std::string& kind, const std::string& needle) {
  for (const auto& e : es)
    if (e.kind == kind && e.detail.find(needle) != std::string::npos) return true;
  return false;
}

TEST(QkdTopology, ReadsKmesLinksAndRoutes) {
  const Topology t = parse_topology(
      "kmes:\n"
      "  - {id: a, address: 10.0.0.1:8443, saes: [orch]}\n"
      "  - {id: b, address: 10.0.0.2:8443, saes: [n1, n2]}\n"
      "  - {id: c, address: '[::1]:8443'}\n"
      "  - {id: d, address: 10.0.0.4:8443}\n"
      "links:\n"
      "  - {between: [b, a], km: 30, eve: 0.5}\n"
      "  - {between: [a, c], km: 5}\n"
      "  - {between: [c, d], km: 5}\n"
      "  - {between: [d, b], km: 5}\n",
      "t.yaml");
  ASSERT_EQ(t.kmes.size(), 4u);
  EXPECT_EQ(t.kme_of_sae("n2")->id, "b");
  EXPECT_EQ(t.kme_of_sae("ghost"), nullptr);
  const LinkPlan* ab = t.link("b", "a");
  ASSERT_NE(ab, nullptr);
  EXPECT_EQ(ab->a, "a");  // the lower id is the link's Alice
  EXPECT_EQ(ab->params.km, 30);
  EXPECT_EQ(ab->params.eve_fraction, 0.5);
  // Fewest hops first (a–b directly, though 30 km against 15), then around an excluded link.
  EXPECT_EQ(t.route("a", "b"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(t.route("a", "b", {{"a", "b"}}), (std::vector<std::string>{"a", "c", "d", "b"}));
  EXPECT_TRUE(t.route("a", "b", {{"a", "b"}, {"c", "d"}}).empty());
}

TEST(QkdTopology, ErrorsNameTheLine) {
  const auto err = [](const std::string& links) {
    return test::error_of([&] {
      parse_topology("kmes:\n  - {id: a, address: 127.0.0.1:1, saes: [s1]}\n  - {id: b, address: 127.0.0.1:2}\nlinks:\n" + links, "t.yaml");
    });
  };
  EXPECT_EQ(err("  - {between: [a, x]}\n"), "t.yaml:5: link names 'x', which is not a KME of this topology");
  EXPECT_EQ(err("  - {between: [a, a]}\n"), "t.yaml:5: a link from 'a' to itself");
  EXPECT_EQ(err("  - {between: [a, b]}\n  - {between: [b, a]}\n"), "t.yaml:6: the link b–a is listed twice");
  EXPECT_EQ(err("  - {between: [a, b], km: -1}\n").substr(0, 14), "t.yaml:5: 'km'");
  EXPECT_EQ(err("  - {between: [a, b], colour: red}\n").substr(0, 27), "t.yaml:5: unknown key 'colo");
  EXPECT_EQ(test::error_of([] { parse_topology("kmes:\n  - {id: a, address: nowhere, saes: [s]}\n", "t.yaml"); }).substr(0, 10), "t.yaml:2: ");
  EXPECT_EQ(test::error_of([] {
              parse_topology("kmes:\n  - {id: a, address: 127.0.0.1:1, saes: [s]}\n  - {id: b, address: 127.0.0.1:2, saes: [s]}\n", "t.yaml");
            }),
            "t.yaml:3: SAE 's' is served by both 'a' and 'b'");
}

TEST(QkdNetworkSim, RoutesShareLinksAndGoAroundAnEavesdropper) {
  NetworkSimOptions o;
  o.trials = 1;
  const NetworkSim s = simulate_network(ring_topology(4, 10), o);
  ASSERT_EQ(s.pairs.size(), 6u);
  double hops = 0, load = 0;
  for (const auto& p : s.pairs) {
    EXPECT_EQ(p.reachable, 1);
    hops += p.hops;
    EXPECT_GT(p.rate_bps, 0);
  }
  for (const auto& l : s.links) {
    load += l.load;
    EXPECT_TRUE(l.aborted.empty());
    EXPECT_GT(l.rate_bps, 0.5 * l.bound_bps);  // finite-size blocks of 2^16 bits
    EXPECT_LT(l.rate_bps, l.bound_bps);
  }
  EXPECT_EQ(hops, 4 * 1 + 2 * 2);  // four neighbours, two opposite pairs
  EXPECT_EQ(load, hops);           // every hop of every route loads one link
  // A pair gets its bottleneck link's share.
  for (const auto& p : s.pairs)
    if (p.hops == 1) {
      const LinkSim* l = nullptr;
      for (const auto& x : s.links)
        if (x.link == LinkName{p.a, p.b}) l = &x;
      ASSERT_NE(l, nullptr);
      EXPECT_DOUBLE_EQ(p.rate_bps, l->rate_bps / l->load);
    }
  // An eavesdropper on kme-0–kme-1: no key there, and that pair goes the long way round.
  o.eavesdropped = {{"kme-0", "kme-1"}};
  const NetworkSim e = simulate_network(ring_topology(4, 10), o);
  for (const auto& l : e.links)
    if (l.link == LinkName{"kme-0", "kme-1"}) {
      EXPECT_EQ(l.rate_bps, 0);
      EXPECT_NEAR(l.qber, 0.25, 0.03);
      EXPECT_EQ(l.load, 0);
    }
  for (const auto& p : e.pairs) {
    if (p.a == "kme-0" && p.b == "kme-1") {
      EXPECT_EQ(p.hops, 3);
    }
  }
  // Every link down: no pair reachable; the star's centre relays every other pair.
  o = {};
  o.fail_probability = 1;
  o.trials = 3;
  for (const auto& p : simulate_network(star_topology(5, 10), o).pairs) EXPECT_EQ(p.rate_bps, 0);
  o.fail_probability = 0;
  EXPECT_NEAR(simulate_network(star_topology(5, 10), o).relayed.at("kme-0"), 6, 1e-9);
}

TEST(QkdNetwork, DirectLinkKeysReachBothEndsAndTheLinkReportsItself) {
  Network net("  - {between: [kme-a, kme-b], km: 10}\n");
  net::Client co = net.client(pki().orch, "kme-a"), c1 = net.client(pki().n1, "kme-b");
  KmeClient master(co), slave(c1);
  const auto enc = master.enc_keys("n1", 2, 256);
  ASSERT_EQ(enc.size(), 2u);
  EXPECT_NE(enc[0].key, enc[1].key);
  const auto dec = slave.dec_keys("orch", {enc[1].id, enc[0].id});
  EXPECT_EQ(dec[0].key, enc[1].key);
  EXPECT_EQ(dec[1].key, enc[0].key);
  // Once each; only for the site's own SAEs.
  EXPECT_NE(test::error_of([&] { slave.dec_keys("orch", {enc[0].id}); }).find("is unknown to this KME"), std::string::npos);
  net::Client c2 = net.client(pki().n2, "kme-b");
  const net::Response r = c2.call("POST", "/api/v1/keys/n1/enc_keys", "{}");
  EXPECT_EQ(r.status, 401);
  EXPECT_NE(r.body.find("SAE 'n2' is not served by KME kme-b"), std::string::npos) << r.body;
  EXPECT_NE(co.call("POST", "/api/v1/keys/ghost/enc_keys", "{}").body.find("slave SAE 'ghost' is served by no KME of this network"),
            std::string::npos);
  // The master's KME learns the slave's KME (ETSI Status).
  EXPECT_EQ(json::parse(master.status("n1"))["target_KME_ID"], "kme-b");
  // Both ends ran the same blocks; the QBER is the fibre's (misalignment 1.5 %).
  const json la = net.link("kme-a", "kme-b"), lb = net.link("kme-b", "kme-a");
  EXPECT_EQ(la["role"], "alice");
  EXPECT_EQ(lb["role"], "bob");
  EXPECT_TRUE(la["up"].get<bool>()) << la.dump();
  EXPECT_GE(la["blocks"].get<int>(), 1);
  EXPECT_NEAR(la["qber"].get<double>(), 0.015, 0.01);
  EXPECT_GT(la["key_rate_bps"].get<double>(), 0);
  EXPECT_EQ(la["session"], lb["session"]);
  EXPECT_NE(net.kmes["kme-a"]->metrics().find("gng_qkd_link_qber{kme=\"kme-a\",peer=\"kme-b\"} 0.0"), std::string::npos);
  EXPECT_TRUE(has_entry(net.trail("kme-a"), "qkd-key", enc[0].id));
  EXPECT_TRUE(has_entry(net.trail("kme-b"), "qkd-delivered", enc[0].id));
}

TEST(QkdNetwork, ATrustedRelayForwardsTheKeyHopByHop) {
  Network net("  - {between: [kme-a, kme-b], km: 10}\n  - {between: [kme-b, kme-c], km: 10}\n");
  net::Client co = net.client(pki().orch, "kme-a"), c2 = net.client(pki().n2, "kme-c");
  KmeClient master(co), slave(c2);
  const auto enc = master.enc_keys("n2", 1, 256);
  const auto dec = slave.dec_keys("orch", {enc[0].id});
  EXPECT_EQ(dec[0].key, enc[0].key);
  EXPECT_TRUE(has_entry(net.trail("kme-a"), "qkd-key", R"("route":["kme-a","kme-b","kme-c"])"));
  EXPECT_TRUE(has_entry(net.trail("kme-b"), "qkd-relay", enc[0].id));
  EXPECT_TRUE(has_entry(net.trail("kme-c"), "qkd-delivered", enc[0].id));
  // And back the other way: n2 is the master, orch the slave.
  KmeClient master2(c2), slave2(co);
  const auto back = master2.enc_keys("orch", 1, 128);
  EXPECT_EQ(slave2.dec_keys("n2", {back[0].id})[0].key, back[0].key);
}

TEST(QkdNetwork, AnEavesdroppedLinkIsRoutedAround) {
  Network net("  - {between: [kme-a, kme-c], km: 10, eve: 1}\n  - {between: [kme-a, kme-b], km: 10}\n  - {between: [kme-b, kme-c], km: 10}\n");
  ASSERT_TRUE(net.wait_link("kme-a", "kme-c", [](const json& l) { return l["aborted_blocks"].get<int>() > 0; }));
  const json ac = net.link("kme-a", "kme-c");
  EXPECT_FALSE(ac["up"].get<bool>());
  EXPECT_NEAR(ac["qber"].get<double>(), 0.25, 0.05);  // intercept-resend on every pulse
  EXPECT_NE(ac["state"].get<std::string>().find("above the abort threshold"), std::string::npos) << ac.dump();
  net::Client co = net.client(pki().orch, "kme-a"), c2 = net.client(pki().n2, "kme-c");
  const auto enc = KmeClient(co).enc_keys("n2", 1, 256);
  EXPECT_EQ(KmeClient(c2).dec_keys("orch", {enc[0].id})[0].key, enc[0].key);
  EXPECT_TRUE(has_entry(net.trail("kme-a"), "qkd-key", R"("route":["kme-a","kme-b","kme-c"])"));
}

TEST(QkdNetwork, WithNoRouteLeftTheAnswerIs503AndRequiredQkdRefusesToSend) {
  Network net("  - {between: [kme-a, kme-b], km: 10}\n  - {between: [kme-b, kme-c], km: 10}\n");
  net::Client co = net.client(pki().orch, "kme-a");
  KmeClient(co).enc_keys("n2", 1, 256);  // the route works
  net.kill("kme-c");
  const std::string e = test::error_of([&] { KmeClient(co).enc_keys("n2", 1, 256); });
  EXPECT_NE(e.find("HTTP 503): no route with key from KME kme-a to kme-c for slave SAE 'n2'"), std::string::npos) << e;
  EXPECT_NE(e.find("link kme-b–kme-c"), std::string::npos) << e;
  // Nothing was held for n2 anywhere, and the a–b link still hands out equal keys.
  net::Client c1 = net.client(pki().n1, "kme-b");
  const auto enc = KmeClient(co).enc_keys("n1", 1, 256);
  EXPECT_EQ(KmeClient(c1).dec_keys("orch", {enc[0].id})[0].key, enc[0].key);
  // The policy's word: required QKD never sends without a key.
  Keys keys = kme_access(std::make_unique<net::Client>(pki().orch, pki().trust(), "127.0.0.1", net.ports.at("kme-a")), true);
  EXPECT_NE(test::error_of([&] { keys.key_for("n2"); }).find("no route with key"), std::string::npos);
}

TEST(QkdNetwork, ARelayKilledMidWayDeliversNothingAndARestartedOneResyncs) {
  Network net("  - {between: [kme-a, kme-b], km: 10}\n  - {between: [kme-b, kme-c], km: 10}\n");
  net::Client co = net.client(pki().orch, "kme-a");
  ASSERT_TRUE(net.wait_link("kme-b", "kme-c", [](const json& l) { return l["pool_bytes"]["mine"].get<int>() >= 32; }));
  net.kill("kme-b");
  const std::string e = test::error_of([&] { KmeClient(co).enc_keys("n2", 1, 256); });
  EXPECT_NE(e.find("HTTP 503"), std::string::npos) << e;
  EXPECT_FALSE(has_entry(net.trail("kme-c"), "qkd-delivered", "orch"));
  // A new kme-b: both of its links open new sessions (old pools dropped at both ends), and keys flow.
  net.start("kme-b");
  ASSERT_TRUE(net.wait_link("kme-a", "kme-b", [](const json& l) { return l["up"].get<bool>() && l["pool_bytes"]["mine"].get<int>() >= 32; }));
  net::Client c2 = net.client(pki().n2, "kme-c");
  const auto enc = KmeClient(co).enc_keys("n2", 1, 256);
  EXPECT_EQ(KmeClient(c2).dec_keys("orch", {enc[0].id})[0].key, enc[0].key);
  EXPECT_EQ(net.link("kme-b", "kme-c")["session"], net.link("kme-c", "kme-b")["session"]);
}

// Peer messages: only the link's own peer, of this CA, in the protocol's order, each once.
TEST(QkdNetwork, ForgedReplayedAndOutOfOrderPeerMessagesAreRefused) {
  Network net("  - {between: [kme-a, kme-b], km: 10}\n  - {between: [kme-b, kme-c], km: 10}\n");
  ASSERT_TRUE(net.wait_link("kme-b", "kme-a", [](const json& l) { return l["pool_bytes"]["theirs"].get<int>() >= 64; }));
  net.kmes["kme-a"]->stop();  // kme-a's loop stops; the test speaks as kme-a now
  const json l = net.link("kme-b", "kme-a");
  const std::string session = l["session"];
  net::Client as_a = net.client(pki().a, "kme-b"), as_c = net.client(pki().c, "kme-b");
  const auto status = [](net::Client& c, const std::string& name, const std::string& body) {
    const net::Response r = c.call("POST", "/rpc/" + name, body, "application/x-protobuf");
    const json j = json::parse(r.body, nullptr, false);
    return std::to_string(r.status) + " " + (j.is_object() ? j.value("message", "") : r.body);
  };
  rpc::QkdHop h;
  h.set_key_id(secure::uuid4());
  h.set_master("orch");
  h.set_slave("n1");
  h.add_route("kme-a");
  h.add_route("kme-b");
  h.set_hop(1);
  h.set_session(session);
  auto* range = h.add_ranges();
  range->set_offset(0);  // the first bytes of kme-a's share of the session's first block
  range->set_length(32);
  // Another KME may not speak for kme-a.
  EXPECT_EQ(status(as_c, "QkdHop", h.SerializeAsString()).substr(0, 35), "403 QkdHop from 'kme-c' for hop kme");
  // A hop refused for what it says costs no link key: the same bytes still deliver afterwards.
  rpc::QkdHop bad = h;
  bad.set_key_id("not-a-uuid");
  EXPECT_EQ(status(as_a, "QkdHop", bad.SerializeAsString()), "400 key_ID 'not-a-uuid' is not a UUID");
  bad = h;
  bad.set_slave("n2");
  EXPECT_EQ(status(as_a, "QkdHop", bad.SerializeAsString()), "400 QkdHop: slave SAE 'n2' is not served by KME kme-b");
  // kme-a may, once.
  rpc::QkdHopReply reply;
  const net::Response first = as_a.call("POST", "/rpc/QkdHop", h.SerializeAsString(), "application/x-protobuf");
  ASSERT_EQ(first.status, 200) << first.body;
  ASSERT_TRUE(reply.ParseFromString(first.body));
  EXPECT_TRUE(reply.delivered());
  rpc::QkdHop again = h;
  again.set_key_id(secure::uuid4());
  EXPECT_EQ(status(as_a, "QkdHop", again.SerializeAsString()).substr(0, 4), "409 ");
  EXPECT_NE(status(as_a, "QkdHop", again.SerializeAsString()).find("used already: a replay?"), std::string::npos);
  again.set_session("an-old-session");
  EXPECT_EQ(status(as_a, "QkdHop", again.SerializeAsString()).substr(0, 15), "409 session an-");
  // Block messages out of order: a sample for a block whose photons never came, and the photons of
  // a block already pooled.
  rpc::QkdSample s;
  s.set_session(session);
  s.set_block(l["next_block"].get<uint64_t>());
  EXPECT_NE(status(as_a, "QkdSample", s.SerializeAsString()).find("409 block"), std::string::npos);
  rpc::QkdPhotons ph;
  ph.set_session(session);
  ph.set_block(0);
  EXPECT_NE(status(as_a, "QkdPhotons", ph.SerializeAsString()).find("out of order"), std::string::npos);
  EXPECT_EQ(status(as_a, "QkdHop", "not protobuf").substr(0, 4), "400 ");
  // Only Alice opens a session; a KME of another CA gets no TLS session at all.
  rpc::QkdHello hello;
  hello.set_session("x");
  EXPECT_NE(status(as_c, "QkdHello", hello.SerializeAsString()).find("403 'kme-c' is Bob on link kme-b–kme-c"), std::string::npos);
  net::Client stranger(pki().stranger, secure::TrustStore::load(pki().other), "127.0.0.1", net.ports.at("kme-b"));
  EXPECT_FALSE(test::error_of([&] { stranger.call("POST", "/rpc/QkdHello", hello.SerializeAsString(), "application/x-protobuf"); }).empty());
  // An SAE is no peer.
  net::Client n1 = net.client(pki().n1, "kme-b");
  EXPECT_EQ(status(n1, "QkdHello", hello.SerializeAsString()).substr(0, 4), "403 ");
}

}  // namespace
}  // namespace gng::qkd
