#pragma once
// A QKD network simulated at the level of links and routes (gng qkd network simulate): no KMEs and no
// TLS, the same topology and routing as the running KMEs (qkd/topology.h). Each link's secret-key
// rate is one block of the BB84 link model at its parameters (finite-size; the asymptotic bound
// beside it); an eavesdropper's link aborts and gives none. Then, per trial, links fail at random,
// every pair of KMEs takes the route with the fewest hops over links that give key, and each link's
// rate is shared equally by the routes that use it: a pair gets its bottleneck's share. That
// sharing is a stated model, not max-min fair routing. All of it is SIMULATED.
#include <map>
#include <string>
#include <vector>

#include "qkd/topology.h"

namespace gng::qkd {

struct NetworkSimOptions {
  double fail_probability = 0;  // each link, independently per trial
  int trials = 20;
  uint64_t seed = 1;
  std::vector<LinkName> eavesdropped;  // intercept-resend on every pulse of these links
  uint64_t sifted_bits = uint64_t{1} << 16;  // per link block, when the topology names no pulses
};

struct LinkSim {
  LinkName link;
  double km = 0, qber = 0;
  double rate_bps = 0;   // the block's secret bits per second of link time (0: aborted)
  double bound_bps = 0;  // the asymptotic bound at the same parameters
  bool eavesdropped = false;
  std::string aborted;   // why the block gave no key ("" when it did)
  double failed = 0;     // share of trials it was down
  double load = 0;       // mean routes over it
};

struct PairSim {
  std::string a, b;
  double reachable = 0;  // share of trials with a route
  double hops = 0;       // mean, over trials with a route
  double rate_bps = 0;   // mean over all trials (0 when unreachable)
};

struct NetworkSim {
  std::vector<LinkSim> links;
  std::vector<PairSim> pairs;              // every pair of KMEs, a < b
  std::map<std::string, double> relayed;   // per KME: mean routes it relays (neither end)
};

NetworkSim simulate_network(const Topology& t, const NetworkSimOptions& o);

// Topologies to simulate: n KMEs in a ring, or a star around "kme-0"; links of `km` each.
Topology ring_topology(int n, double km);
Topology star_topology(int n, double km);

// A standalone HTML page: the pairs' key rates as a heat map, the links (failures, eavesdroppers,
// QBER, rate) and the relay load, with what is simulated said on it.
std::string network_sim_html(const NetworkSim& s, const std::string& title);

}  // namespace gng::qkd
