#pragma once
// The run's sites. Every node dials in to the run's hub (node/hub.h) on nodes.listen over PQ-TLS,
// whether it is one of the embedded default's local `gng node` processes (nodes.local: one shard
// of the training images each, started here, dying with this process: PR_SET_PDEATHSIG) or a
// remote site enrolled with the run's CA and holding its own data. A site whose data does not fit
// the run's task (input shape, classes), or that cannot take QKD keys the policy requires, is
// refused when it joins. The roster (who joined, their data, first and last seen, state) is kept
// in the registry; each join, refusal and loss is a decision in the audit trail. When the policy
// wants QKD keys, every site has a KME of its own (ETSI GS QKD 014 over PQ-TLS, qkd/network.h): the
// embedded default starts them here as `gng kme --topology` processes (the orchestrator's and one
// per local node, linked in a star over simulated BB84 links, in runs/<id>/qkd/), or nodes.kme
// names the orchestrator site's KME of the operator's own QKD network.
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <sys/types.h>
#include <thread>
#include <vector>

#include "lifecycle/run_state.h"
#include "node/node.h"

namespace gng {

// What every site's data must be: the run's task.
struct Task {
  std::vector<std::size_t> input_shape;  // channels, height, width
  int classes = 0;
};

class NodePool {
 public:
  explicit NodePool(RunState& run);
  ~NodePool();
  NodePool(const NodePool&) = delete;
  NodePool& operator=(const NodePool&) = delete;

  bool enabled() const { return run_.c.sites() > 0; }
  // The KME (when the policy wants QKD) and the hub, once; returns the hub's port.
  int listen(const Task& task);
  // listen(), the local nodes that are not running started, then waits (nodes.wait) until
  // nodes.min sites are up; throws gng::Error naming who came and who did not.
  void start(const Task& task);
  // Sites that joined since, or came back, take part from now on (the training and federation
  // steps call it before each rung and round).
  void refresh();
  void restart_down();   // local nodes marked down: killed and started again; then refresh()
  // Stops the local nodes and the hub; with `ended` (the run's end: "finished", "stopped: …")
  // the sites hear it first, and a site that serves one run (gng node --once) leaves.
  void stop(const std::string& ended = "");

  std::size_t size() const { return sites_.size(); }
  const std::string& id(std::size_t i) const { return sites_.at(i).id; }
  bool up(std::size_t i) const { return sites_.at(i).client != nullptr; }
  node::NodeClient& client(std::size_t i) { return *sites_.at(i).client; }
  // Marks site i down (it stopped answering); only the thread that talks to site i may call it.
  void mark_down(std::size_t i) { sites_.at(i).client.reset(); }
  node::Hub& hub() { return *hub_; }

 private:
  struct Site {
    explicit Site(std::string i) : id(std::move(i)) {}
    std::string id;
    pid_t pid = -1;                            // a local node's process
    std::unique_ptr<node::NodeClient> client;  // null while the site is down
  };
  void start_kmes(const std::string& pki);  // the orchestrator's KME access, and the local sites' KMEs
  void stop_kmes();
  std::string node_yaml(int k, const std::string& pki, const std::string& home) const;
  std::string admit(const node::SiteInfo& s) const;
  void changed(const node::SiteInfo& s);
  void spawn(Site& n, int k);
  void watch();                  // the watcher thread
  bool alive(pid_t pid);         // a local node's process has not ended
  void end(Site& n, int sig);    // signals and reaps a local node's process

  RunState& run_;
  Task task_;
  std::vector<Site> sites_;
  std::map<std::string, int> kme_ports_;  // the run's own KMEs: by the SAE each serves
  std::vector<pid_t> kme_pids_;
  qkd::Keys orchestrator_qkd_;            // its keys from its site's KME; none when QKD is off
  std::unique_ptr<node::Hub> hub_;
  int hub_port_ = 0;
  secure::Identity me_;
  secure::TrustStore trust_;
  std::mutex procs_mu_;
  std::condition_variable watch_cv_;
  std::map<pid_t, std::string> procs_;         // local node processes not reaped yet
  bool stopping_ = false;
  std::thread watcher_;
  std::mutex states_mu_;
  std::map<std::string, std::string> states_;  // the roster's last state per site, for notes
};

}  // namespace gng
