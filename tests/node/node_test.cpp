// A node holding a shard of Fashion-MNIST trains a design for the orchestrator over PQ-TLS and
// sends the weights back sealed.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <thread>
#include <nlohmann/json.hpp>

#include "audit/log.h"
#include "core/file.h"
#include "gng.pb.h"
#include "node/grid.h"
#include "node/node.h"
#include "qkd/kme.h"
#include "support/error_of.h"
#include "support/paths.h"

namespace gng::node {
namespace {

using test::pki;

NodeConfig tiny_node(const std::string& id, int index, const std::string& dir, const Address& orchestrator) {
  NodeConfig c;
  c.orchestrator = orchestrator;
  c.id = id;
  c.pki = pki().dir;
  c.dir = dir;
  c.data = kFashionMnistDir;
  c.shard = index;
  c.shards = 2;
  c.train_limit = 1200;
  c.validation = 200;
  return c;
}

// A node.yaml with its required keys (line 4 the last of them) and `rest` after them.
NodeConfig node_yaml(const std::string& rest) {
  return NodeConfig::from_yaml("id: n1\npki: p\ndir: d\norchestrator: o:1\n" + rest, "node.yaml");
}

TEST(NodeConfig, ReadsAllSettingsAndRejectsBadOnes) {
  const NodeConfig c = NodeConfig::from_yaml(
      "id: n1\npki: p\ndir: d\norchestrator: 127.0.0.1:7001\nshard: {index: 2, of: 3, partition: dirichlet, alpha: 0.5, seed: 4}\n"
      "validation: 500\nworkers: 2\n",
      "node.yaml");
  EXPECT_EQ(c.id, "n1");
  EXPECT_EQ(c.shard, 2);
  EXPECT_EQ(c.shards, 3);
  EXPECT_EQ(c.partition, "dirichlet");
  EXPECT_EQ(c.data, kFashionMnistDir);
  EXPECT_EQ(c.orchestrator.text(), "127.0.0.1:7001");
  EXPECT_EQ(test::error_of([] { NodeConfig::from_yaml("id: n1\npki: p\n", "node.yaml"); }), "node.yaml: 'dir' is required");
  EXPECT_EQ(test::error_of([] { NodeConfig::from_yaml("id: n1\npki: p\ndir: d\n", "node.yaml"); }), "node.yaml: 'orchestrator' is required");
  EXPECT_EQ(test::error_of([] { NodeConfig::from_yaml("id: n1\npki: p\ndir: d\norchestrator: 127.0.0.1:0\n", "node.yaml"); }),
            "node.yaml:4: orchestrator: port 0 names no server");
  EXPECT_EQ(test::error_of([] { node_yaml("shard: {index: 3, of: 3}\n"); }),
            "node.yaml:5: 'shard.index' must be in [0, 2], got 3");
  EXPECT_EQ(test::error_of([] { NodeConfig::from_yaml("id: n1\npki: p\ndir: d\norchestrator: nowhere\n", "node.yaml"); }),
            "node.yaml:4: orchestrator: expected HOST:PORT or [IPV6]:PORT, got 'nowhere'");
  // IPv6 literals in brackets, as in URLs; without them the port would be ambiguous.
  const NodeConfig v6 = NodeConfig::from_yaml("id: n1\npki: p\ndir: d\norchestrator: \"[::1]:7000\"\nkme: \"[fd00::2]:8443\"\n", "node.yaml");
  EXPECT_EQ(v6.orchestrator.host, "::1");
  EXPECT_EQ(v6.orchestrator.port, 7000);
  EXPECT_EQ(v6.kme.host, "fd00::2");
  EXPECT_EQ(v6.kme.text(), "[fd00::2]:8443");
  EXPECT_EQ(test::error_of([] { NodeConfig::from_yaml("id: n1\npki: p\ndir: d\norchestrator: \"::1:7000\"\n", "node.yaml"); }),
            "node.yaml:4: orchestrator: expected HOST:PORT or [IPV6]:PORT, got '::1:7000'");
  EXPECT_NE(test::error_of([] { node_yaml("shards: 3\n"); })
                .find("node.yaml:5: unknown key 'shards'"),
            std::string::npos);
  // QKD: required by default once there is a KME, off without one; optional needs a KME too.
  EXPECT_EQ(c.qkd, "off");
  EXPECT_EQ(node_yaml("kme: 127.0.0.1:8443\n").qkd, "required");
  EXPECT_EQ(node_yaml("kme: 127.0.0.1:8443\nqkd: optional\n").qkd, "optional");
  EXPECT_EQ(test::error_of([] { node_yaml("qkd: optional\n"); }),
            "node.yaml:5: qkd: optional needs a kme: HOST:PORT");
  EXPECT_EQ(test::error_of([] { node_yaml("kme: 127.0.0.1:1\nqkd: maybe\n"); }),
            "node.yaml:6: qkd must be required, optional or off, got 'maybe'");
  EXPECT_EQ(test::error_of([] { node_yaml("kme: kme.example\n"); }),
            "node.yaml:5: kme: expected HOST:PORT or [IPV6]:PORT, got 'kme.example'");
  EXPECT_EQ(test::error_of([] { node_yaml("kme: 127.0.0.1:0\n"); }),
            "node.yaml:5: kme: port 0 names no server");
  const NodeConfig k = node_yaml("kme: kme.example:8443\n");
  EXPECT_EQ(k.kme.host, "kme.example");
  EXPECT_EQ(k.kme.port, 8443);
}

// A site names its own data: an IDX directory or a CSV table with a label column.
TEST(NodeConfig, DataIsAnIdxDirectoryOrACsvTableWithALabelColumn) {
  EXPECT_EQ(node_yaml("data: /srv/idx\n").data, "/srv/idx");
  EXPECT_EQ(node_yaml("data: {dir: /srv/idx}\n").data, "/srv/idx");
  const NodeConfig t = node_yaml("data: {csv: site.csv, label: y, shape: [1, 28, 28], classes: 10}\nsource: 127.0.0.2\n");
  EXPECT_EQ(t.csv, "site.csv");
  EXPECT_EQ(t.data, "");
  EXPECT_EQ(t.label, "y");
  EXPECT_EQ(t.shape, (std::vector<std::size_t>{1, 28, 28}));
  EXPECT_EQ(t.classes, 10);
  EXPECT_EQ(t.source, "127.0.0.2");
  EXPECT_EQ(node_yaml("data: {csv: site.csv}\n").label, "label");
  EXPECT_EQ(test::error_of([] { node_yaml("data: {dir: a, csv: b}\n"); }), "node.yaml:5: data names either an IDX dir or a csv file");
  EXPECT_EQ(test::error_of([] { node_yaml("data: {label: y}\n"); }), "node.yaml:5: data names either an IDX dir or a csv file");
  EXPECT_EQ(test::error_of([] { node_yaml("data: {csv: b, shape: [28, 28]}\n"); }),
            "node.yaml:5: data.shape must be [channels, height, width]");
  EXPECT_EQ(test::error_of([] { node_yaml("data: {dir: a, shape: [1, 28, 28]}\n"); }),
            "node.yaml:5: data.label and data.shape are for a csv table (IDX files carry their shape)");
  EXPECT_NE(test::error_of([] { node_yaml("data: {csv: b, rows: 3}\n"); }).find("unknown key 'rows'"), std::string::npos);
}

// A CSV site reads its table, shapes it as it says, and reports that schema when it joins; a table
// whose width does not fit the shape, or a label beyond the classes, stops the node with a message.
TEST(Node, ACsvSiteReportsItsTablesSchemaWhenItJoins) {
  const std::string dir = testing::TempDir() + "gng-node-csv-" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  {
    std::ofstream csv(dir + "/site.csv");
    csv << "y";
    for (int i = 0; i < 16; ++i) csv << ",p" << i;
    csv << "\n";
    for (int r = 0; r < 90; ++r) {
      csv << r % 3;
      for (int i = 0; i < 16; ++i) csv << "," << ((r * 7 + i) % 11) / 10.0;
      csv << "\n";
    }
  }
  test::Grid grid;
  NodeConfig c = tiny_node("n1", 0, dir + "/work", grid.address());
  c.data.clear();
  c.csv = dir + "/site.csv";
  c.label = "y";
  c.shape = {1, 4, 4};
  c.classes = 5;
  c.shards = 1;
  c.train_limit = 0;
  c.validation = 9;  // 3 of each class
  c.source = "127.0.0.2";
  Node node(c, qkd::Keys{});
  EXPECT_EQ(node.train_samples(), 81u);
  node.start();
  ASSERT_TRUE(grid.wait("n1"));
  const SiteInfo s = grid.hub.site("n1");
  EXPECT_EQ(s.input_shape, (std::vector<std::size_t>{1, 4, 4}));
  EXPECT_EQ(s.classes, 5);
  EXPECT_EQ(s.train_samples, 81u);
  EXPECT_EQ(s.address.rfind("127.0.0.2:", 0), 0u) << s.address;  // it dialled from the address it was given
  node.stop();

  c.shape = {1, 4, 5};
  EXPECT_EQ(test::error_of([&] { Node(c, qkd::Keys{}); }),
            dir + "/site.csv: data.shape 1×4×5 holds 20 values; the table has 16 feature columns");
  c.shape = {1, 4, 4};
  c.classes = 2;
  EXPECT_EQ(test::error_of([&] { Node(c, qkd::Keys{}); }), "node 'n1': its data holds label 2, outside data.classes 2");
}

TEST(Node, TrainsOnItsShardAndSendsTheModelSealed) {
  const std::string dir = testing::TempDir() + "gng-node-" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  test::Grid grid;
  Node node(tiny_node("n1", 0, dir, grid.address()), qkd::Keys{});
  // Half of 1200, about 200 of them held out for validation (a stratified split rounds per class).
  EXPECT_NEAR(static_cast<double>(node.train_samples()), 400, 10);
  node.start();
  ASSERT_TRUE(grid.wait("n1"));
  NodeClient c = grid.client("n1");
  const SiteInfo h = c.health();  // what it reported when it dialled in
  EXPECT_EQ(h.id, "n1");
  EXPECT_EQ(h.state, "up");
  EXPECT_EQ(h.fingerprint.size(), 64u);
  EXPECT_EQ(h.train_samples, node.train_samples());
  EXPECT_EQ(h.train_samples + h.validation_samples, 600u);
  EXPECT_EQ(h.input_shape, (std::vector<std::size_t>{1, 28, 28}));
  EXPECT_EQ(h.classes, 10);
  EXPECT_EQ(h.qkd, "off");
  std::size_t total = 0;
  for (auto n : h.label_counts) total += n;
  EXPECT_EQ(total, h.train_samples);

  TrainJob job;
  job.run = "r1";
  job.candidate = 3;
  job.family = "cnn";
  job.design_json = Design{{{"width", "8"}}}.to_json();
  job.budget.epochs = 1;
  job.return_model = true;
  const Trained t = c.train(job);
  EXPECT_GT(t.metrics.at("accuracy"), 0.1);
  EXPECT_GT(t.metrics.at("epochs"), 0.9);  // whole batches of the shard
  EXPECT_EQ(nlohmann::json::parse(t.model_json)["family"], "cnn");
  // What arrived is what the node saved, byte for byte, and the node audited sending it.
  EXPECT_EQ(t.weights, read_file(dir + "/models/r1-c3.pt"));
  audit::AuditLog log(dir + "/audit.db", false);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_NE(log.entries(0, 1)[0].detail.find(t.model_digest), std::string::npos);

  // Without the model nothing is sealed.
  job.return_model = false;
  EXPECT_TRUE(c.train(job).weights.empty());
  job.run = "../../etc";  // names a file on the node: refused before it reaches a path
  EXPECT_EQ(test::error_of([&] { c.train(job); }), "'n1' refused Train (HTTP 400): Train: run name '../../etc' is not a plain name");
  job.run = "r1";
  job.design_json = "{\"width\": \"nine\"}";
  EXPECT_NE(test::error_of([&] { c.train(job); }).find("'n1' refused Train (HTTP 400)"), std::string::npos);
}

// Only an orchestrator hands out work, and only nodes collect it: a hub with a node's certificate
// never hears from a node (it checks who it dialled before it reports), and a hub refuses a caller
// that is not a node, or whose report names another node than its certificate.
TEST(Node, WorkComesOnlyFromAnOrchestratorAndGoesOnlyToNodes) {
  const std::string dir = testing::TempDir() + "gng-node-roles-" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  test::Grid rogue(pki().n2);
  testing::internal::CaptureStdout();
  {
    Node node(tiny_node("n1", 0, dir, rogue.address()), qkd::Keys{});
    node.start();
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    EXPECT_TRUE(rogue.hub.roster().empty());
  }
  const std::string said = testing::internal::GetCapturedStdout();
  EXPECT_NE(said.find("is 'n2' (node), not an orchestrator: no work taken"), std::string::npos) << said;

  test::Grid grid;
  rpc::SiteReport report;
  report.set_incarnation("x");
  report.mutable_health()->set_id("kme-a");
  net::Client kme(pki().kme, pki().trust(), "127.0.0.1", grid.port);
  EXPECT_NE(test::error_of([&] { kme.rpc("Poll", report.SerializeAsString()); }).find("(HTTP 403): {\"message\": \"'kme-a' (kme) is not a node\"}"),
            std::string::npos);
  report.mutable_health()->set_id("n3");
  net::Client n2(pki().n2, pki().trust(), "127.0.0.1", grid.port);
  EXPECT_NE(test::error_of([&] { n2.rpc("Poll", report.SerializeAsString()); })
                .find("the site's report names 'n3' but its certificate names 'n2'"),
            std::string::npos);
  EXPECT_TRUE(grid.hub.roster().empty());
}

// A node whose certificate is of another CA, expired or revoked never joins: the hub's TLS refuses
// it, and the node says why (and keeps trying, in case its operator fixes it).
TEST(Node, ANodeWithAForeignExpiredOrRevokedCertificateNeverJoins) {
  const std::string dir = testing::TempDir() + "gng-node-refused-" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  test::Grid grid;
  testing::internal::CaptureStdout();
  {
    NodeConfig foreign = tiny_node("n1", 0, dir + "/foreign", grid.address());
    foreign.pki = pki().other;
    Node a(foreign, qkd::Keys{});
    Node b(tiny_node("old", 0, dir + "/old", grid.address()), qkd::Keys{});
    Node d(tiny_node("bad", 1, dir + "/bad", grid.address()), qkd::Keys{});
    for (Node* n : {&a, &b, &d}) n->start();
    std::this_thread::sleep_for(std::chrono::milliseconds(3000));  // three first refusals, also on a loaded machine
    EXPECT_TRUE(grid.hub.roster().empty());
  }
  const std::string said = testing::internal::GetCapturedStdout();
  EXPECT_NE(said.find("gng node 'n1': cannot take work: "), std::string::npos) << said;
  EXPECT_NE(said.find("gng node 'old': cannot take work: "), std::string::npos) << said;
  EXPECT_NE(said.find("certificate expired"), std::string::npos) << said;
  EXPECT_NE(said.find("gng node 'bad': cannot take work: "), std::string::npos) << said;
  EXPECT_NE(said.find("certificate revoked"), std::string::npos) << said;
}

// `gng pki deny` takes effect for a node that is connected: its next poll is refused (403, naming
// why), the roster marks it refused, and the orchestrator's next call to it fails at once.
TEST(Node, ANodeRevokedWhileConnectedIsRefusedOnItsNextCall) {
  const std::string dir = testing::TempDir() + "gng-node-revoked-" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  secure::pki_issue(pki().dir, {"node", "n5"});
  test::Grid grid;
  testing::internal::CaptureStdout();
  {
    Node n5(tiny_node("n5", 0, dir, grid.address()), qkd::Keys{});
    n5.start();
    ASSERT_TRUE(grid.wait("n5"));
    secure::pki_deny(pki().dir, "n5");
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (grid.hub.site("n5").state != "refused" && std::chrono::steady_clock::now() < end)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const SiteInfo s = grid.hub.site("n5");
    EXPECT_EQ(s.state, "refused");
    EXPECT_NE(s.why.find("certificate 'n5' (serial "), std::string::npos) << s.why;
    EXPECT_NE(s.why.find(") is on the deny list"), std::string::npos) << s.why;
    EXPECT_FALSE(grid.hub.up("n5"));
    const std::string e = test::error_of([&] { grid.hub.call("n5", "Telemetry", [](const net::Peer&) { return std::string(); }); });
    EXPECT_NE(e.find("site 'n5' is not connected (certificate 'n5'"), std::string::npos) << e;
  }
  const std::string said = testing::internal::GetCapturedStdout();
  EXPECT_NE(said.find("gng node 'n5': cannot take work: "), std::string::npos) << said;
  EXPECT_NE(said.find("is on the deny list"), std::string::npos) << said;
}

}  // namespace
}  // namespace gng::node

namespace gng::node {
namespace {

TEST(Node, ServesADeployedModelAndReportsItsTelemetry) {
  const std::string dir = testing::TempDir() + "gng-node-deploy-" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  test::Grid grid;
  Node node(tiny_node("n1", 1, dir, grid.address()), qkd::Keys{});
  node.start();
  ASSERT_TRUE(grid.wait("n1"));
  NodeClient c = grid.client("n1");
  EXPECT_EQ(c.telemetry(), "");  // nothing deployed yet
  // A model trained (and sent back sealed) by the node, deployed to it again.
  TrainJob job;
  job.run = "r2";
  job.family = "cnn";
  job.design_json = Design{{{"width", "4"}}}.to_json();
  job.return_model = true;
  const Trained t = c.train(job);
  const std::string model = dir + "/orchestrator-copy.pt";
  write_file_atomic(model + ".json", t.model_json);
  write_file_atomic(model, t.weights);
  const int serve_port = c.deploy("r2", model);
  ASSERT_GT(serve_port, 0);
  // Its inference endpoint answers, and the telemetry the orchestrator pulls counts the request.
  const auto r = test::run(
      "/usr/bin/python3 -c \"import json, urllib.request as u; print(u.urlopen(u.Request('http://127.0.0.1:" +
      std::to_string(serve_port) +
      "/v1/predict', data=json.dumps({'inputs': [[0.5] * 784]}).encode(), headers={'Content-Type': 'application/json'})).read().decode())\"");
  EXPECT_NE(r.out.find("\"classes\""), std::string::npos) << r.out;
  const auto tele = nlohmann::json::parse(c.telemetry());
  EXPECT_EQ(tele.at("requests"), 1);
  EXPECT_EQ(tele.at("errors"), 0);
  audit::AuditLog log(dir + "/audit.db", false);
  bool deployed = false;
  for (const auto& e : log.entries(0, log.size())) deployed |= e.kind == "deploy";
  EXPECT_TRUE(deployed);
}

}  // namespace
}  // namespace gng::node

namespace gng::node {
namespace {

TEST(Node, TheOrchestratorsHoldoutIsInNoShard) {
  const std::string dir = testing::TempDir() + "gng-node-holdout-" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  test::Grid grid;
  NodeConfig c = tiny_node("n1", 0, dir, grid.address());
  c.holdout = 400;
  c.validation = 100;
  Node node(c, qkd::Keys{});
  node.start();
  ASSERT_TRUE(grid.wait("n1"));
  const SiteInfo h = grid.client("n1").health();
  EXPECT_EQ(h.train_samples + h.validation_samples, 400u);  // (1200 − 400) / 2
  c.holdout = 1200;
  EXPECT_EQ(test::error_of([&] { Node again(c, qkd::Keys{}); }), "node 'n1': holdout 1200 leaves no training images");
}

}  // namespace
}  // namespace gng::node

namespace gng::node {
namespace {

// A KME for the tests below: simulated BB84 links (small blocks), with or without an eavesdropper.
struct TestKme {
  qkd::Kme kme;
  net::Server server{pki().kme, pki().trust()};
  int port = 0;
  explicit TestKme(double eve = 0) : kme("kme-a", config(eve)) {
    kme.mount(server);
    port = server.listen("127.0.0.1", 0);
  }
  static qkd::KmeConfig config(double eve) {
    qkd::KmeConfig c;
    c.pki = pki().dir;
    c.link.eve_fraction = eve;
    c.link.pulses = qkd::pulses_for_sifted(c.link, 1 << 15);
    c.seed = 5;
    return c;
  }
  qkd::Keys access(const secure::Identity& who, bool required) const {
    return qkd::kme_access(std::make_unique<net::Client>(who, pki().trust(), "127.0.0.1", port), required);
  }
};

std::vector<nlohmann::json> exchanges(audit::AuditLog& log, const std::string& kind = "exchange") {
  std::vector<nlohmann::json> out;
  for (const auto& e : log.entries(0, log.size()))
    if (e.kind == kind) out.push_back(nlohmann::json::parse(e.detail));
  return out;
}

TEST(Node, EveryEnvelopeBothWaysCarriesAQkdKeyAndBothEndsAuditIt) {
  const std::string dir = testing::TempDir() + "gng-node-qkd-" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const TestKme kme;
  test::Grid grid;
  Node node(tiny_node("n1", 0, dir + "/n1", grid.address()), kme.access(pki().n1, true));
  node.start();
  ASSERT_TRUE(grid.wait("n1"));
  audit::AuditLog orch_log(dir + "/orch-audit.db", true);
  NodeClient c = grid.client("n1", kme.access(pki().orch, true), &orch_log);

  TrainJob job;
  job.run = "r3";
  job.family = "cnn";
  job.design_json = Design{{{"width", "4"}}}.to_json();
  job.return_model = true;
  const Trained t = c.train(job);  // node → orchestrator
  const std::string model = dir + "/copy.pt";
  write_file_atomic(model + ".json", t.model_json);
  write_file_atomic(model, t.weights);
  ASSERT_GT(c.deploy("r3", model), 0);  // orchestrator → node
  RoundJob round{"r3", 1, 0, "cnn", job.design_json, load_state(model), TrainBudget{}, 0, 2};
  const RoundResult r = c.federated_round(round);  // both ways
  EXPECT_EQ(r.state.from, "n1");
  // A round trains one epoch on the whole shard, the node's validation split included (5 batches
  // of 128 for 600 images; the training split alone would be 3), and measures nothing on it.
  const SiteInfo h = c.health();
  EXPECT_EQ(h.train_samples + h.validation_samples, 600u);
  EXPECT_EQ(r.state.samples, 5 * 128);
  EXPECT_EQ(r.metrics.count("accuracy"), 0u);
  EXPECT_GT(r.metrics.at("compute_s"), 0);

  // Four envelopes: the model, the deployment, the global state and the node's update. Each is
  // qkd+pqc with its own key, entered once on each side under the same key_ID and digest.
  audit::AuditLog node_log(dir + "/n1/audit.db", false);
  const auto at_node = exchanges(node_log), at_orch = exchanges(orch_log);
  ASSERT_EQ(at_node.size(), 4u);
  ASSERT_EQ(at_orch.size(), 4u);
  std::set<std::string> keys;
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(at_node[i]["mode"], "qkd+pqc") << at_node[i].dump();
    EXPECT_EQ(at_orch[i]["mode"], "qkd+pqc") << at_orch[i].dump();
    EXPECT_EQ(at_node[i]["qkd_key_id"], at_orch[i]["qkd_key_id"]);
    EXPECT_EQ(at_node[i]["model_digest"], at_orch[i]["model_digest"]);
    EXPECT_EQ(at_node[i]["from"], at_orch[i]["from"]);
    keys.insert(at_node[i]["qkd_key_id"].get<std::string>());
  }
  EXPECT_EQ(keys.size(), 4u);
  EXPECT_EQ(at_orch[0]["from"], "n1");
  EXPECT_EQ(at_orch[1]["from"], "orch");

  // A caller without a KME seals pqc-only: a node that requires QKD refuses it and audits why.
  NodeClient plain = grid.client("n1");
  const std::string e = test::error_of([&] { plain.deploy("r3", model); });
  EXPECT_NE(e.find("model rejected: envelope from 'orch' is pqc-only and the policy requires QKD keys"), std::string::npos) << e;
  const auto refused = exchanges(node_log, "rejection");
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_NE(refused[0]["reason"].get<std::string>().find("pqc-only"), std::string::npos);
}

TEST(Node, AnEavesdroppedLinkStopsRequiredExchangesAndOptionalOnesFallBackToPqcOnly) {
  const std::string dir = testing::TempDir() + "gng-node-eve-" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const TestKme eve(1.0);  // intercept-resend on every pulse: QBER ≈ 25 %, the link never yields a key
  test::Grid grid;
  Node node(tiny_node("n1", 0, dir + "/n1", grid.address()), eve.access(pki().n1, false));
  node.start();
  ASSERT_TRUE(grid.wait("n1"));
  TrainJob job;
  job.run = "r4";
  job.family = "cnn";
  job.design_json = Design{{{"width", "4"}}}.to_json();
  job.budget.samples = 64;
  job.return_model = true;

  // Required at the orchestrator: the node's pqc-only model is refused, and nothing is sent
  // without a key either.
  audit::AuditLog strict_log(dir + "/strict.db", true);
  NodeClient strict = grid.client("n1", eve.access(pki().orch, true), &strict_log);
  std::string e = test::error_of([&] { strict.train(job); });
  EXPECT_NE(e.find("the model is rejected: envelope from 'n1' is pqc-only and the policy requires QKD keys"), std::string::npos) << e;
  EXPECT_EQ(exchanges(strict_log, "rejection").size(), 1u);
  const std::string model = dir + "/n1/models/r4-c0.pt";
  e = test::error_of([&] { strict.deploy("r4", model); });
  EXPECT_NE(e.find("no QKD key for 'n1' and QKD is required: KME refused enc_keys for n1 (HTTP 503)"), std::string::npos) << e;

  // A node that requires QKD and gets no key refuses before it trains: nothing is lost but time
  // it did not spend.
  Node strict_node(tiny_node("n2", 1, dir + "/n2", grid.address()), eve.access(pki().n2, true));
  strict_node.start();
  ASSERT_TRUE(grid.wait("n2"));
  NodeClient to_strict = grid.client("n2", eve.access(pki().orch, false));
  e = test::error_of([&] { to_strict.train(job); });
  EXPECT_NE(e.find("(HTTP 503)"), std::string::npos) << e;
  EXPECT_NE(e.find("no QKD key for 'orch' and QKD is required"), std::string::npos) << e;
  EXPECT_FALSE(std::filesystem::exists(dir + "/n2/models/r4-c0.pt"));

  // Optional at both ends: the exchange goes through pqc-only, and both audit logs say why.
  audit::AuditLog lenient_log(dir + "/lenient.db", true);
  NodeClient lenient = grid.client("n1", eve.access(pki().orch, false), &lenient_log);
  EXPECT_FALSE(lenient.train(job).weights.empty());
  EXPECT_GT(lenient.deploy("r4", model), 0);
  const auto sent = exchanges(lenient_log);
  ASSERT_EQ(sent.size(), 2u);
  for (const auto& x : sent) EXPECT_EQ(x["mode"], "pqc-only") << x.dump();
  EXPECT_NE(sent[1].value("qkd_fallback", "").find("HTTP 503"), std::string::npos) << sent[1].dump();
  audit::AuditLog node_log(dir + "/n1/audit.db", false);
  bool node_fell_back = false;
  for (const auto& x : exchanges(node_log)) node_fell_back |= x.value("qkd_fallback", "").find("HTTP 503") != std::string::npos;
  EXPECT_TRUE(node_fell_back);
}

}  // namespace
}  // namespace gng::node

namespace gng::node {
namespace {

// A site that answers through the hub with a tampered or a replayed model: refused at the
// orchestrator, audited there, and the call fails naming why. The "site" here is the test itself,
// speaking the dial-in protocol with n1's certificate.
TEST(Node, ATamperedOrReplayedAnswerIsRefusedAndAudited) {
  const std::string dir = testing::TempDir() + "gng-node-rogue-" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  test::Grid grid;
  net::Client site(pki().n1, pki().trust(), "127.0.0.1", grid.port);
  rpc::SiteReport report;
  report.set_incarnation("rogue");
  report.mutable_health()->set_id("n1");
  report.mutable_health()->set_train_samples(10);
  auto poll = [&] {
    rpc::PollReply r;
    EXPECT_TRUE(r.ParseFromString(site.rpc("Poll", report.SerializeAsString())));
    return r;
  };
  EXPECT_EQ(poll().work_size(), 0);  // joined (the hub holds an empty poll for its hold time)
  ASSERT_TRUE(grid.hub.up("n1"));
  audit::AuditLog log(dir + "/orch.db", true);
  NodeClient c = grid.client("n1", {}, &log);
  TrainJob job;
  job.run = "r9";
  job.family = "cnn";
  job.design_json = Design{{{"width", "4"}}}.to_json();
  job.return_model = true;

  // Each job: the orchestrator asks in a thread; the site collects it and answers with `wire(seq)`.
  std::vector<secure::Bytes> sent;
  auto exchange = [&](const std::function<secure::Bytes(uint64_t seq)>& wire) {
    std::string error;
    std::thread ask([&] { error = test::error_of([&] { c.train(job); }); });
    rpc::PollReply got;
    for (int i = 0; i < 5 && got.work_size() == 0; ++i) got = poll();
    EXPECT_EQ(got.work_size(), 1);
    rpc::TrainRequest req;
    EXPECT_TRUE(got.work_size() == 1 && req.ParseFromString(got.work(0).body()));
    rpc::TrainReply reply;
    (*reply.mutable_metrics())["accuracy"] = 0.5;
    const secure::Bytes w = wire(req.seq());
    reply.set_model_envelope(w.data(), w.size());
    rpc::Result r;
    r.set_id(got.work_size() == 1 ? got.work(0).id() : 0);
    r.set_incarnation("rogue");
    r.set_status(200);
    r.set_body(reply.SerializeAsString());
    site.rpc("Result", r.SerializeAsString());
    ask.join();
    return error;
  };
  auto sealed = [&](uint64_t seq) {
    Sealed s = seal_for(pki().n1, site.last_session(), "r9", seq, pack_model("{}", "weights"), {});
    sent.push_back(s.wire);
    return s.wire;
  };
  EXPECT_EQ(exchange(sealed), "no error");  // a genuine answer is taken
  std::string e = exchange([&](uint64_t seq) {
    secure::Bytes w = sealed(seq);
    w[w.size() / 2] ^= 1;  // one bit flipped inside the sealed model
    return w;
  });
  EXPECT_NE(e.find("n1: the model is rejected: "), std::string::npos) << e;
  e = exchange([&](uint64_t) { return sent.front(); });  // the first answer again
  EXPECT_NE(e.find("n1: the model is rejected: "), std::string::npos) << e;
  EXPECT_NE(e.find("replay"), std::string::npos) << e;
  int rejections = 0;
  for (const auto& entry : log.entries(0, log.size())) rejections += entry.kind == "rejection";
  EXPECT_EQ(rejections, 2);
}

}  // namespace
}  // namespace gng::node
