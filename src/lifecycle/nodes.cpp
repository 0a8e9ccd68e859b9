#include "lifecycle/nodes.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <regex>
#include <sstream>
#include <thread>

#include "core/file.h"
#include "secure/pki.h"
#include "qkd/kme.h"

namespace gng {

namespace fs = std::filesystem;

NodePool::NodePool(RunState& run, int count) : run_(run) {
  for (int k = 0; k < count; ++k) nodes_.push_back({"n" + std::to_string(k + 1)});
}

NodePool::~NodePool() { stop(); }

void NodePool::adopt(std::string id, std::unique_ptr<node::NodeClient> client) {
  nodes_.push_back({std::move(id), -1, std::move(client), true});
}

void NodePool::start_kme(const std::string& pki, const secure::Identity& me, const secure::TrustStore& trust) {
  if (run_.policy.qkd == "off" || kme_server_) return;
  if (!fs::exists(fs::path(pki) / "issued" / "kme.pem")) secure::pki_issue(pki, {"kme", "kme"});  // once per run
  qkd::KmeConfig kc;
  kc.link.km = run_.c.link_km;
  kc.link.eve_fraction = run_.c.eavesdropper;
  auto kme = std::make_unique<qkd::Kme>("kme", kc);
  auto server = std::make_unique<net::Server>(secure::load_identity(pki, "kme"), trust);
  kme->mount(*server);
  kme_port_ = server->listen("127.0.0.1", 0);
  kme_ = std::move(kme);
  kme_server_ = std::move(server);
  // The orchestrator's own keys, shared by its clients of every node (one KME connection).
  orchestrator_qkd_ = qkd::kme_access(std::make_unique<net::Client>(me, trust, "127.0.0.1", kme_port_),
                                              run_.policy.qkd == "required");
  run_.note(-1, "kme", "QKD " + run_.policy.qkd + ": KME on 127.0.0.1:" + std::to_string(kme_port_) +
                           " (ETSI GS QKD 014; simulated BB84 links, " + fixed(run_.c.link_km, 0) + " km" +
                           (run_.c.eavesdropper > 0 ? ", eavesdropper on " + fixed(run_.c.eavesdropper, 2) : "") + ")");
}

std::string NodePool::node_yaml(std::size_t k, const std::string& pki, const std::string& home) const {
  const RunConfig& c = run_.c;
  std::ostringstream y;
  y << "id: " << nodes_[k].id << "\npki: " << pki << "\ndir: " << home << "\nlisten: 127.0.0.1:0\ndata: " << c.data_dir
    << "\nshard: {index: " << k << ", of: " << nodes_.size() << ", partition: " << c.partition << ", alpha: " << c.alpha
    << ", seed: " << c.seed << "}\nvalidation: " << std::max<std::size_t>(1, c.validation / nodes_.size())
    << "\ntrain_limit: " << c.train_limit << "\nholdout: " << c.validation << "\n";  // the orchestrator's validation images are in no shard
  if (kme_server_) y << "kme: 127.0.0.1:" << kme_port_ << "\nqkd: " << run_.policy.qkd << "\n";
  return y.str();
}

void NodePool::start() {
  if (nodes_.empty()) return;
  const std::string pki = (fs::path(run_.dir) / "pki").string();
  const secure::Identity me = secure::load_identity(pki, "orchestrator");
  const secure::TrustStore trust = secure::TrustStore::load(pki);
  start_kme(pki, me, trust);
  for (std::size_t k = 0; k < nodes_.size(); ++k) {
    Proc& n = nodes_[k];
    if (n.client || n.adopted) continue;
    const fs::path home = fs::path(run_.dir) / "nodes" / n.id;
    fs::create_directories(home);
    const std::string config = (home / "node.yaml").string(), log = (home / "node.log").string();
    write_file_atomic(config, node_yaml(k, pki, home.string()));
    fs::remove(log);
    const pid_t pid = fork();
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (!freopen(log.c_str(), "w", stdout) || !freopen(log.c_str(), "a", stderr)) _exit(126);
      execl("/proc/self/exe", "gng", "node", "--config", config.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    if (pid < 0) throw Error("cannot start node " + n.id + ": fork failed");
    n.pid = pid;
    int port = 0;
    for (int i = 0; i < 1200 && port == 0; ++i) {  // up to two minutes to load its shard
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      std::smatch m;
      const std::string out = fs::exists(log) ? read_file(log) : "";
      if (std::regex_search(out, m, std::regex("serving on 127\\.0\\.0\\.1:(\\d+)"))) port = std::stoi(m[1]);
      if (waitpid(pid, nullptr, WNOHANG) == pid) throw Error("node " + n.id + " did not start: " + out);
    }
    if (port == 0) throw Error("node " + n.id + " did not start within two minutes (see " + log + ")");
    net::Limits limits;
    limits.timeout = std::chrono::hours(12);  // trainings are long; a dead node shows as a broken connection
    limits.retries = 0;
    n.client = std::make_unique<node::NodeClient>(me, trust, "127.0.0.1", port, limits, orchestrator_qkd_, &run_.audit);
    const node::NodeHealth h = n.client->health();
    run_.note(-1, "node", n.id + " up on 127.0.0.1:" + std::to_string(port) + " (pid " + std::to_string(pid) + "): " +
                              std::to_string(h.train_samples) + " training / " + std::to_string(h.validation_samples) +
                              " validation images of its own");
  }
}

void NodePool::restart_down() {
  bool any = false;
  for (auto& n : nodes_)
    if (!n.client && n.pid > 0) {
      kill(n.pid, SIGKILL);  // it stopped answering: it does not get to finish anything
      waitpid(n.pid, nullptr, 0);
      n.pid = -1;
      any = true;
    }
  if (any) start();
}

void NodePool::stop() {
  for (auto& n : nodes_) {
    n.client.reset();  // close the kept-alive connections first: the servers wait for them
    if (n.pid > 0) {
      kill(n.pid, SIGTERM);
      waitpid(n.pid, nullptr, 0);
      n.pid = -1;
    }
  }
  orchestrator_qkd_ = {};
  kme_server_.reset();  // after the nodes, whose KME connections are gone with them
  kme_.reset();
}

}  // namespace gng
