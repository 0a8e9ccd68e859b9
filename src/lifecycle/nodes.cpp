#include "lifecycle/nodes.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <sstream>
#include <thread>

#include "core/file.h"
#include "lifecycle/run.h"
#include "secure/pki.h"
#include "qkd/kme.h"

namespace gng {

namespace fs = std::filesystem;

NodePool::NodePool(RunState& run) : run_(run) {}

NodePool::~NodePool() { stop(); }

namespace {

// Starts `gng ARGS…` (this binary) with its output appended to `log`; it gets SIGTERM when this
// process ends (PR_SET_PDEATHSIG). Returns its pid.
pid_t start_gng(const std::string& what, const std::string& log, const std::vector<std::string>& args) {
  std::vector<char*> argv{const_cast<char*>("gng")};  // made before fork: the child only execs
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (!freopen(log.c_str(), "a", stdout) || !freopen(log.c_str(), "a", stderr)) _exit(126);
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  if (pid < 0) throw Error("cannot start " + what + ": fork failed");
  return pid;
}

// The id of local node k (0-based): n1, n2, …
std::string local_id(int k) { return std::string("n").append(std::to_string(k + 1)); }

// A port free on loopback now (bound to 0, then let go) for a KME whose peers must know it first.
int free_port(const secure::Identity& me, const secure::TrustStore& trust) {
  net::Server probe(me, trust);
  const int port = probe.listen("127.0.0.1", 0);
  probe.stop();
  return port;
}

}  // namespace

void NodePool::start_kmes(const std::string& pki) {
  if (run_.policy.qkd == "off" || orchestrator_qkd_.for_sending) return;
  net::Limits quick;
  quick.nodelay = true;  // key requests are small: no waiting on Nagle and delayed ACKs
  const bool required = run_.policy.qkd == "required";
  if (run_.c.kme.port) {  // the operator's QKD network
    orchestrator_qkd_ = qkd::kme_access(std::make_unique<net::Client>(me_, trust_, run_.c.kme.host, run_.c.kme.port, quick), required);
    run_.note(-1, "kme", "QKD " + run_.policy.qkd + ": the orchestrator site's KME is " + run_.c.kme.text() +
                             " (ETSI GS QKD 014; its network's links as the operator runs them)");
    return;
  }
  // The embedded default: a KME per site on this machine, linked in a star to the orchestrator's.
  const fs::path dir = fs::path(run_.dir) / "qkd";
  fs::create_directories(dir);
  std::vector<std::string> saes{me_.id()};
  for (int k = 0; k < run_.c.nodes; ++k) saes.push_back(local_id(k));
  std::ostringstream topo;
  topo << "# The run's QKD network (written by gng run): a KME per site, simulated BB84 links.\nkmes:\n";
  for (const auto& sae : saes) {
    kme_ports_[sae] = free_port(me_, trust_);
    topo << "  - {id: kme-" << sae << ", address: 127.0.0.1:" << kme_ports_[sae] << ", saes: [" << sae << "]}\n";
  }
  topo << "links:\n";
  for (std::size_t i = 1; i < saes.size(); ++i)
    topo << "  - {between: [kme-" << saes[0] << ", kme-" << saes[i] << "], km: " << run_.c.link_km << ", eve: " << run_.c.eavesdropper << "}\n";
  const std::string topology = (dir / "topology.yaml").string();
  write_file_atomic(topology, topo.str());
  for (const auto& sae : saes) {
    const std::string id = "kme-" + sae;
    if (!fs::exists(fs::path(pki) / "issued" / (id + ".pem"))) secure::pki_issue(pki, {"kme", id});
    const std::string log = (dir / (id + ".log")).string(), audit = (dir / id).string();
    fs::create_directories(audit);
    kme_pids_.push_back(start_gng("KME " + id, log, {"kme", "--pki", pki, "--id", id, "--topology", topology, "--audit", audit}));
  }
  // Each serves once its log says so (or it has ended: its log says why).
  for (std::size_t i = 0; i < saes.size(); ++i) {
    const std::string log = (dir / ("kme-" + saes[i] + ".log")).string();
    for (int t = 0;; ++t) {
      const std::string said = fs::exists(log) ? read_file(log) : "";
      if (said.find("serving ETSI GS QKD 014") != std::string::npos) break;
      if (waitpid(kme_pids_[i], nullptr, WNOHANG) == kme_pids_[i] || t > 300) {
        kme_pids_[i] = -1;
        throw Error("KME kme-" + saes[i] + " did not start: " + (said.empty() ? "no log" : said));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  orchestrator_qkd_ = qkd::kme_access(std::make_unique<net::Client>(me_, trust_, "127.0.0.1", kme_ports_.at(me_.id()), quick), required);
  run_.note(-1, "kme", "QKD " + run_.policy.qkd + ": a KME per site on 127.0.0.1 (" + std::to_string(saes.size()) +
                           " gng kme processes, " + topology + "; ETSI GS QKD 014, BB84 post-processing between the KMEs over " +
                           "PQ-TLS; simulated BB84 links, " + fixed(run_.c.link_km, 0) + " km" +
                           (run_.c.eavesdropper > 0 ? ", eavesdropper on " + fixed(run_.c.eavesdropper, 2) : "") + ")");
}

void NodePool::stop_kmes() {
  for (const pid_t pid : kme_pids_)
    if (pid > 0) kill(pid, SIGTERM);
  for (const pid_t pid : kme_pids_)
    if (pid > 0) waitpid(pid, nullptr, 0);
  kme_pids_.clear();
  kme_ports_.clear();
}

namespace {

std::string shape_text(const std::vector<std::size_t>& shape, int classes) {
  std::string out;
  for (std::size_t d : shape) out += (out.empty() ? "" : "×") + std::to_string(d);
  return (out.empty() ? "no data" : out) + " with " + std::to_string(classes) + " classes";
}

}  // namespace

std::string NodePool::node_yaml(int k, const std::string& pki, const std::string& home) const {
  const RunConfig& c = run_.c;
  const std::string host = c.listen.host == "0.0.0.0" || c.listen.host == "::" ? "127.0.0.1" : c.listen.host;
  std::ostringstream y;
  y << "id: " << sites_[static_cast<std::size_t>(k)].id << "\npki: " << pki << "\ndir: " << home
    << "\norchestrator: \"" << Address{host, hub_port_}.text() << "\""  // quoted: an IPv6 address is in brackets
    << "\ndata: " << c.data_dir << "\nshard: {index: " << k << ", of: " << c.nodes << ", partition: " << c.partition
    << ", alpha: " << c.alpha << ", seed: " << c.seed << "}\nvalidation: " << std::max<std::size_t>(1, c.validation / c.nodes)
    << "\ntrain_limit: " << c.train_limit << "\nholdout: " << c.validation << "\n";  // the orchestrator's validation images are in no shard
  if (const auto it = kme_ports_.find(sites_[static_cast<std::size_t>(k)].id); it != kme_ports_.end())
    y << "kme: 127.0.0.1:" << it->second << "\nqkd: " << run_.policy.qkd << "\n";
  return y.str();
}

std::string NodePool::admit(const node::SiteInfo& s) const {
  if (s.input_shape != task_.input_shape || s.classes != task_.classes)
    return "site '" + s.id + "' holds data of " + shape_text(s.input_shape, s.classes) + "; the run's task is " +
           shape_text(task_.input_shape, task_.classes);
  if (s.train_samples == 0) return "site '" + s.id + "' holds no training data";
  if (run_.policy.qkd == "required" && s.qkd == "off")
    return "the run's policy requires QKD keys and site '" + s.id + "' has no KME (qkd: off)";
  return "";
}

void NodePool::changed(const node::SiteInfo& s) {
  nlohmann::json data = {{"input_shape", s.input_shape}, {"classes", s.classes}, {"train_samples", s.train_samples},
                         {"validation_samples", s.validation_samples}, {"label_counts", s.label_counts},
                         {"qkd", s.qkd}, {"incarnation", s.incarnation}, {"busy", s.busy}};
  std::string before;
  {
    std::lock_guard lock(states_mu_);
    auto& last = states_[s.id + "\n" + s.incarnation];
    before = last;
    last = s.state;
  }
  {
    std::lock_guard lock(run_.mutex);
    run_.reg.put_site({s.id, s.fingerprint, s.address, data.dump(), s.first_seen, s.last_seen, s.state, s.why});
  }
  if (before == s.state) return;
  std::string local;
  {
    std::lock_guard lock(procs_mu_);
    for (const auto& [pid, id] : procs_)
      if (id == s.id) local = "local node, pid " + std::to_string(pid) + "; ";
  }
  if (s.state == "up")
    run_.note(-1, "site", s.id + " joined from " + s.address + " (" + local + "certificate " + s.fingerprint.substr(0, 16) + "…): " +
                              std::to_string(s.train_samples) + " training / " + std::to_string(s.validation_samples) +
                              " validation samples of its own, " + shape_text(s.input_shape, s.classes) + ", QKD " + s.qkd);
  else
    run_.note(-1, "site", s.id + " " + s.state + ": " + s.why);
}

int NodePool::listen(const Task& task) {
  if (hub_) return hub_port_;
  task_ = task;
  const std::string pki = run_.pki_dir();
  me_ = secure::load_identity(pki, "orchestrator");
  trust_ = secure::TrustStore::load(pki);
  start_kmes(pki);
  node::Hub::Options o;
  o.listen = run_.c.listen;
  auto hub = std::make_unique<node::Hub>(me_, trust_, o);
  hub->admit([this](const node::SiteInfo& s) { return admit(s); });
  hub->on_change([this](const node::SiteInfo& s) { changed(s); });
  hub_port_ = hub->start();
  hub_ = std::move(hub);
  // Every site keeps the run's latest signed audit head in its own trail (gng audit verify --witness).
  auto witness = [this](const std::string& head) { hub_->witness(witness_of(run_.id(), head)); };
  if (const auto head = run_.reg.meta("audit_head")) witness(*head);
  run_.on_audit_head = witness;
  run_.note(-1, "hub", "sites dial in to " + Address{o.listen.host, hub_port_}.text() +
                           " (TLS 1.3, X25519MLKEM768, ML-DSA certificates of the CA in " + pki + ")");
  return hub_port_;
}

void NodePool::spawn(Site& n, int k) {
  const std::string pki = run_.pki_dir();
  const fs::path home = fs::path(run_.dir) / "nodes" / n.id;
  fs::create_directories(home);
  const std::string config = (home / "node.yaml").string(), log = (home / "node.log").string();
  write_file_atomic(config, node_yaml(k, pki, home.string()));
  const pid_t pid = start_gng("node " + n.id, log, {"node", "--config", config});
  n.pid = pid;
  std::lock_guard lock(procs_mu_);
  procs_[pid] = n.id;
  if (!watcher_.joinable()) watcher_ = std::thread([this] { watch(); });
}

// A local node whose process ended is lost at once: the calls waiting on it need not wait for
// the hub to miss its polls.
void NodePool::watch() {
  std::unique_lock lock(procs_mu_);
  while (!stopping_) {
    std::vector<std::pair<std::string, std::string>> ended;  // id, why
    for (auto it = procs_.begin(); it != procs_.end();) {
      int status = 0;
      if (waitpid(it->first, &status, WNOHANG) != it->first) {
        ++it;
        continue;
      }
      ended.emplace_back(it->second, "node " + it->second + "'s process ended (" +
                                         (WIFSIGNALED(status) ? "signal " + std::to_string(WTERMSIG(status))
                                                              : "exit " + std::to_string(WEXITSTATUS(status))) + ")");
      it = procs_.erase(it);
    }
    if (!ended.empty()) {  // the hub tells changed(), which takes procs_mu_
      lock.unlock();
      for (const auto& [id, why] : ended) hub_->drop(id, why);
      lock.lock();
      continue;
    }
    watch_cv_.wait_for(lock, std::chrono::milliseconds(100));
  }
}

bool NodePool::alive(pid_t pid) {
  std::lock_guard lock(procs_mu_);
  return procs_.count(pid) > 0;
}

void NodePool::end(Site& n, int sig) {
  if (n.pid <= 0) return;
  bool ours = false;
  {
    std::lock_guard lock(procs_mu_);  // not held while it ends: its goodbye reaches changed(), which takes it
    ours = procs_.erase(n.pid) > 0;
  }
  if (ours) {
    kill(n.pid, sig);
    waitpid(n.pid, nullptr, 0);
  }
  n.pid = -1;
}

void NodePool::start(const Task& task) {
  if (!enabled()) return;
  listen(task);
  for (int k = 0; k < run_.c.nodes; ++k) {
    const std::string id = local_id(k);
    auto it = std::find_if(sites_.begin(), sites_.end(), [&](const Site& s) { return s.id == id; });
    if (it == sites_.end()) it = sites_.insert(sites_.end(), Site(id));
    if (it->pid < 0 && !it->client) spawn(*it, k);
  }
  const auto need = static_cast<std::size_t>(run_.c.min_nodes);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(run_.c.wait_s);
  for (;;) {
    const std::vector<std::string> ups = hub_->wait_for(need, std::chrono::milliseconds(200));
    for (Site& n : sites_)
      if (n.pid > 0 && !alive(n.pid)) {
        n.pid = -1;
        const std::string log = (fs::path(run_.dir) / "nodes" / n.id / "node.log").string();
        throw Error("node " + n.id + " did not start: " + (fs::exists(log) ? read_file(log) : "no log"));
      }
    if (ups.size() >= need) break;
    if (std::chrono::steady_clock::now() > deadline) {
      std::string up, refused;
      for (const auto& s : hub_->roster()) {
        if (s.state == "up")
          up += ' ' + s.id;
        else
          refused += ' ' + s.id + " (" + s.state + ": " + s.why + ")";
      }
      throw Error("the run needs " + std::to_string(need) + " site(s) and " + std::to_string(ups.size()) + " joined within " +
                  fixed(run_.c.wait_s, 0) + " s (nodes.wait); up:" + (up.empty() ? " none" : up) +
                  (refused.empty() ? "" : "; not up:" + refused) + ". Sites dial in to port " + std::to_string(hub_port_));
    }
  }
  refresh();
}

void NodePool::refresh() {
  if (!hub_) return;
  for (const auto& s : hub_->roster())
    if (s.state == "up" && std::none_of(sites_.begin(), sites_.end(), [&](const Site& n) { return n.id == s.id; }))
      sites_.emplace_back(s.id);
  for (Site& n : sites_)
    if (!n.client && hub_->up(n.id))
      n.client = std::make_unique<node::NodeClient>(*hub_, n.id, me_, trust_, orchestrator_qkd_, &run_.audit);
}

void NodePool::restart_down() {
  for (std::size_t k = 0; k < sites_.size(); ++k) {
    Site& n = sites_[k];
    if (!n.client && k < static_cast<std::size_t>(run_.c.nodes)) {  // a local node
      end(n, SIGKILL);  // it stopped answering: it does not get to finish anything
      spawn(n, static_cast<int>(k));
    }
  }
  // Up to a minute for restarted local nodes to dial in again; remote sites come back by themselves.
  for (int i = 0; i < 300; ++i) {
    refresh();
    if (std::none_of(sites_.begin(), sites_.end(), [&](const Site& n) { return n.pid > 0 && alive(n.pid) && !n.client; })) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

void NodePool::stop(const std::string& ended) {
  if (hub_ && !ended.empty()) hub_->end(ended, std::chrono::seconds(3));
  for (auto& n : sites_) n.client.reset();
  for (auto& n : sites_) end(n, SIGTERM);
  {
    std::lock_guard lock(procs_mu_);
    stopping_ = true;
  }
  watch_cv_.notify_all();
  if (watcher_.joinable()) watcher_.join();
  stopping_ = false;
  if (hub_ && !ended.empty())
    for (const auto& s : hub_->roster()) changed(s);  // the roster as the run ends: who left, last seen
  {
    std::lock_guard lock(run_.mutex);
    run_.on_audit_head = nullptr;
  }
  if (hub_) hub_->stop();
  hub_.reset();
  orchestrator_qkd_ = {};
  stop_kmes();  // after the nodes, whose KME connections are gone with them
}

}  // namespace gng
