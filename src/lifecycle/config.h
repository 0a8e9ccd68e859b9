#pragma once
// What humans set: the run configuration (data, space, search, fidelity) and the policy
// (objectives, budgets, safety constraints, approval gate), both YAML. The loop never acts outside
// them. Every unknown key, wrong type or impossible value is a gng::Error naming file and line.
#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/address.h"

namespace gng {

struct Policy {
  std::map<std::string, double> objectives{{"accuracy", 1.0}};  // score = Σ weight × metric
  int cycles = 3;                     // generate → train → evaluate → select cycles
  int candidates = 24;                // designs evaluated in all (each first at the lowest fidelity)
  double wall_clock_s = 1800;         // whole run, across resumes
  std::map<std::string, double> max_cost;  // params, flops: added to the space's budgets
  double min_accuracy = 0, min_robustness = 0, max_latency_ms = 0;  // 0 = no limit
  bool manual_approval = false;       // manual: promotion waits for `gng approve RUN CANDIDATE`
  // telemetry: how the loop may react to what the deployed model reports — within these bounds only.
  // Input drift above drift_psi raises the robustness weight, a p99 latency above the safety
  // max_latency_ms makes the latency weight more negative, feedback accuracy below min_accuracy
  // raises the accuracy weight: each time ×boost, never beyond max_boost × its weight in the policy
  // (a weight the policy left at 0 starts from 0.1 for robustness, −0.001 for latency).
  double drift_psi = 0.25, boost = 1.5, max_boost = 4;
  // qkd: whether model exchanges with nodes need a QKD key besides PQ-TLS. required: every envelope
  // carries one and envelopes without are refused; optional: a key when the KME can deliver one,
  // else pqc-only (audited as such); off: pqc-only, no KME.
  std::string qkd = "required";

  static Policy from_yaml(const std::string& text, const std::string& source);
  // Empty when the metrics meet every safety constraint, else the first one broken.
  std::string safety_violation(const std::map<std::string, double>& metrics) const;
  double score(const std::map<std::string, double>& metrics) const;

  struct Telemetry {
    double drift_psi = 0, latency_p99_ms = 0, feedback_accuracy = -1;  // −1: no feedback yet
  };
  // Adjusts `objectives` (this policy) to what the deployed model reports, relative to `base` (the
  // policy as the operator wrote it) and within its telemetry bounds. Returns what changed and why
  // ("" when nothing did).
  std::string react(const Telemetry& t, const Policy& base);
};

struct Rung {
  double epochs = 1;
  std::size_t samples = 0;  // per epoch (0 = the whole training split)
  bool augment = false;
  int keep = 0;             // contenders promoted to this rung (0: ⌈previous / eta⌉)
};

struct RunConfig {
  std::string name = "run";
  std::string space_text, space_source;    // the space's YAML, and where it came from
  std::string policy_text, policy_source;  // the policy's YAML, and where it came from
  // data
  std::string data_dir;                    // an MNIST-style IDX directory (Fashion-MNIST by default)
  std::size_t validation = 10000;          // held out of the training files for selection
  std::size_t train_limit = 0, test_limit = 0;  // use only the first N (0 = all): small test runs
  // search
  std::string sampler = "tabu";
  uint64_t seed = 1;
  int per_cycle = 8;                       // designs proposed per cycle
  // fidelity: successive halving, each rung keeps the best ⌈n/eta⌉
  std::vector<Rung> rungs{{1, 10000, false, 0}, {3, 0, false, 0}};
  int eta = 3;
  int batch = 128;
  std::size_t eval_samples = 5000;         // validation images scored below the top rung (0 = all)
  int workers = 2;                         // trainings at once (one thread each)
  double noise_sigma = 0.1;                // robustness: input noise
  double watts = 5.0;                      // energy estimate: latency × this power per core
  // nodes: the sites that train, all dialling in to the run's hub (node/hub.h) on `listen` over
  // PQ-TLS. `local`: N `gng node` processes this run starts on loopback, each holding one shard of
  // the training images (partition iid, or dirichlet with alpha). `min`: sites needed before the
  // first cycle (default: local), waited for up to `wait`; sites beyond the local ones are remote:
  // enrolled with the run's CA (gng node init, gng pki sign) and bringing their own data.
  // No nodes at all: training in this process.
  // pki: the operator's CA directory (gng pki init), used in place, so `gng pki deny DIR` reaches
  // the running hub; it holds issued/orchestrator.pem and its key, or the CA key to issue them.
  // Empty: the run makes its own CA in RUN_DIR/pki. Relative to the run file; absolute once read.
  std::string pki;
  int nodes = 0;                 // local
  int min_nodes = 0;
  double wait_s = 600;
  Address listen{"127.0.0.1", 0};
  int sites() const { return std::max(nodes, min_nodes); }
  std::string partition = "iid";
  double alpha = 0.5;
  // QKD keys (when the policy wants them). Embedded default: the run starts a KME per site on this
  // machine (`gng kme --topology` processes: the orchestrator's and one per local node, linked in a
  // star) over simulated BB84 links of this length, an intercept-resend eavesdropper measuring this
  // fraction of pulses. With kme (HOST:PORT), the orchestrator's site KME of the operator's own
  // QKD network instead, whose sites name theirs in their node.yaml; then no local nodes.
  double link_km = 25, eavesdropper = 0;
  Address kme;  // port 0: none
  // federation (with nodes): after each cycle's selection the promoted model is refined across the
  // nodes for `rounds` rounds of local training (epochs over samples per node) and aggregation by
  // `rule` (fedavg | trimmed_mean | median | krum; trim, byzantine, multi: Multi-Krum's m), FedProx
  // when mu > 0. A round needs answers from at least `quorum` of the nodes. rounds 0: no federation.
  struct Federation {
    int rounds = 0;
    double epochs = 1;
    std::size_t samples = 0;
    std::string rule = "fedavg";
    double mu = 0, quorum = 0.5, trim = 0.2;
    int byzantine = 1, multi = 1;
  } federation;

  // Reads a run file; `space:` and `policy:` name files relative to it (or hold them inline).
  static RunConfig from_file(const std::string& path);
  // The same from stored texts (resume): no file is read.
  static RunConfig from_yaml(const std::string& text, const std::string& source, const std::string& space_text,
                             const std::string& policy_text);
  std::string text;  // the run file's YAML as read
};

}  // namespace gng
