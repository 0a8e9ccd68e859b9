#pragma once
// The run's local nodes: `gng node` processes on loopback, one shard of the training images each,
// reached over PQ-TLS with the run's PKI, and the run's KME (ETSI GS QKD 014 over the same PQ-TLS,
// in this process, fed by simulated BB84 links) when the policy wants QKD keys. A node that stops
// answering is marked down; restart_down() brings it back with its shard. Every node dies with
// this process (PR_SET_PDEATHSIG).
#include <memory>
#include <string>
#include <sys/types.h>
#include <vector>

#include "lifecycle/run_state.h"
#include "node/node.h"

namespace gng {

namespace qkd {
class Kme;
}

class NodePool {
 public:
  // `count` nodes n1..nK, not started yet.
  NodePool(RunState& run, int count);
  ~NodePool();
  NodePool(const NodePool&) = delete;
  NodePool& operator=(const NodePool&) = delete;

  void start();          // the KME (once) and every node that is not running
  // Adds a node this pool did not start, reached through `client` (e.g. one in this process): it
  // takes part like the others, but restart_down() cannot bring it back once it is down.
  void adopt(std::string id, std::unique_ptr<node::NodeClient> client);
  void restart_down();   // kills what is left of the nodes marked down and starts them again
  void stop();

  std::size_t size() const { return nodes_.size(); }
  bool empty() const { return nodes_.empty(); }
  const std::string& id(std::size_t i) const { return nodes_.at(i).id; }
  bool up(std::size_t i) const { return nodes_.at(i).client != nullptr; }
  node::NodeClient& client(std::size_t i) { return *nodes_.at(i).client; }
  // Marks node i down (it stopped answering); only the thread that talks to node i may call it.
  void mark_down(std::size_t i) { nodes_.at(i).client.reset(); }

 private:
  struct Proc {
    std::string id;
    pid_t pid = -1;
    std::unique_ptr<node::NodeClient> client;  // null while the node is down
    bool adopted = false;                       // not started here (adopt)
  };
  void start_kme(const std::string& pki, const secure::Identity& me, const secure::TrustStore& trust);
  std::string node_yaml(std::size_t k, const std::string& pki, const std::string& home) const;

  RunState& run_;
  std::vector<Proc> nodes_;
  std::unique_ptr<qkd::Kme> kme_;
  std::unique_ptr<net::Server> kme_server_;
  int kme_port_ = 0;
  qkd::Keys orchestrator_qkd_;  // its keys from that KME; none when QKD is off
};

}  // namespace gng
