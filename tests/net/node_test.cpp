// A node holding a shard of Fashion-MNIST trains a design for the orchestrator over PQ-TLS and
// sends the weights back sealed.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "audit/log.h"
#include "net/fixture.h"
#include "net/node.h"
#include "support/error_of.h"
#include "support/paths.h"

namespace gng::net {
namespace {

using test::pki;

NodeConfig tiny_node(const std::string& id, int index, const std::string& dir) {
  NodeConfig c;
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

TEST(NodeConfig, ReadsAllSettingsAndRejectsBadOnes) {
  const NodeConfig c = NodeConfig::from_yaml(
      "id: n1\npki: p\ndir: d\nlisten: 127.0.0.1:7001\nshard: {index: 2, of: 3, partition: dirichlet, alpha: 0.5, seed: 4}\n"
      "validation: 500\nworkers: 2\n",
      "node.yaml");
  EXPECT_EQ(c.id, "n1");
  EXPECT_EQ(c.shard, 2);
  EXPECT_EQ(c.shards, 3);
  EXPECT_EQ(c.partition, "dirichlet");
  EXPECT_EQ(c.data, kFashionMnistDir);
  EXPECT_EQ(test::error_of([] { NodeConfig::from_yaml("id: n1\npki: p\n", "node.yaml"); }), "node.yaml: 'dir' is required");
  EXPECT_EQ(test::error_of([] { NodeConfig::from_yaml("id: n1\npki: p\ndir: d\nshard: {index: 3, of: 3}\n", "node.yaml"); }),
            "node.yaml:4: 'shard.index' must be in [0, 2], got 3");
  EXPECT_EQ(test::error_of([] { NodeConfig::from_yaml("id: n1\npki: p\ndir: d\nlisten: nowhere\n", "node.yaml"); }),
            "node.yaml:4: listen: expected HOST:PORT, got 'nowhere'");
  EXPECT_NE(test::error_of([] { NodeConfig::from_yaml("id: n1\npki: p\ndir: d\nshards: 3\n", "node.yaml"); })
                .find("node.yaml:4: unknown key 'shards'"),
            std::string::npos);
}

TEST(Node, TrainsOnItsShardAndSendsTheModelSealed) {
  const std::string dir = testing::TempDir() + "gng-node-" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  Node node(tiny_node("n1", 0, dir));
  // Half of 1200, about 200 of them held out for validation (a stratified split rounds per class).
  EXPECT_NEAR(static_cast<double>(node.train_samples()), 400, 10);
  const int port = node.listen();
  NodeClient c(pki().orch, pki().trust(), "127.0.0.1", port);
  const NodeHealth h = c.health();
  EXPECT_EQ(h.id, "n1");
  EXPECT_EQ(h.train_samples, node.train_samples());
  EXPECT_EQ(h.train_samples + h.validation_samples, 600u);
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
  EXPECT_EQ(t.weights, secure::read_file(dir + "/models/r1-c3.pt"));
  audit::AuditLog log(dir + "/audit.db", false);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_NE(log.entries(0, 1)[0].detail.find(t.model_digest), std::string::npos);

  // Without the model nothing is sealed; a node's certificate may not ask for training.
  job.return_model = false;
  EXPECT_TRUE(c.train(job).weights.empty());
  NodeClient peer(pki().n2, pki().trust(), "127.0.0.1", port);
  EXPECT_NE(test::error_of([&] { peer.train(job); }).find("(HTTP 401): {\"message\": \"'n2' (node) may not ask a node to train\"}"),
            std::string::npos);
  job.run = "../../etc";  // names a file on the node: refused before it reaches a path
  EXPECT_NE(test::error_of([&] { c.train(job); }).find("run name '../../etc' is not a plain name"), std::string::npos);
  job.run = "r1";
  job.design_json = "{\"width\": \"nine\"}";
  EXPECT_NE(test::error_of([&] { c.train(job); }).find("HTTP 400"), std::string::npos);
}

}  // namespace
}  // namespace gng::net

namespace gng::net {
namespace {

TEST(Node, ServesADeployedModelAndReportsItsTelemetry) {
  const std::string dir = testing::TempDir() + "gng-node-deploy-" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  Node node(tiny_node("n1", 1, dir));
  const int port = node.listen();
  NodeClient c(pki().orch, pki().trust(), "127.0.0.1", port);
  EXPECT_EQ(c.telemetry(), "");  // nothing deployed yet
  // A model trained (and sent back sealed) by the node, deployed to it again.
  TrainJob job;
  job.run = "r2";
  job.family = "cnn";
  job.design_json = Design{{{"width", "4"}}}.to_json();
  job.return_model = true;
  const Trained t = c.train(job);
  const std::string model = dir + "/orchestrator-copy.pt";
  secure::write_file_atomic(model + ".json", t.model_json);
  secure::write_file_atomic(model, t.weights);
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
  // Only the orchestrator deploys.
  NodeClient peer(pki().n2, pki().trust(), "127.0.0.1", port);
  EXPECT_NE(test::error_of([&] { peer.deploy("r2", model); }).find("may not deploy models"), std::string::npos);
}

}  // namespace
}  // namespace gng::net

namespace gng::net {
namespace {

TEST(Node, TheOrchestratorsHoldoutIsInNoShard) {
  const std::string dir = testing::TempDir() + "gng-node-holdout-" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  NodeConfig c = tiny_node("n1", 0, dir);
  c.holdout = 400;
  c.validation = 100;
  Node node(c);
  NodeClient client(pki().orch, pki().trust(), "127.0.0.1", node.listen());
  const NodeHealth h = client.health();
  EXPECT_EQ(h.train_samples + h.validation_samples, 400u);  // (1200 − 400) / 2
  c.holdout = 1200;
  EXPECT_EQ(test::error_of([&] { Node again(c); }), "node 'n1': holdout 1200 leaves no training images");
}

}  // namespace
}  // namespace gng::net
