#pragma once
// A QKD network's plan: its KMEs (one per site: its address and the SAEs it serves) and the
// simulated fibre links between them, read from a YAML file, and shortest routes over it.
//
//   kmes:
//     - {id: kme-a, address: 10.0.0.1:8443, saes: [orchestrator]}
//     - {id: kme-b, address: 10.0.0.2:8443, saes: [node-1]}
//   links:
//     - {between: [kme-a, kme-b], km: 25}            # any bb84.h parameter: eve, loss, pulses, …
//   block_pulses: 0                                  # every link's pulses per block (0: the default)
//
// A KME that runs needs its address and its peers'. Every error names the file and line: an unknown KME, a link to itself, a link twice, an SAE at
// two KMEs, a bad address or parameter.
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/address.h"
#include "qkd/bb84.h"

namespace gng::qkd {

struct KmeSite {
  std::string id;
  Address address;  // port 0: none given (a plan only simulated: gng qkd network simulate)
  std::vector<std::string> saes;
};

struct LinkPlan {
  std::string a, b;  // a < b: a is the link's Alice (runs the blocks), b its Bob
  Params params;
};

using LinkName = std::pair<std::string, std::string>;  // (lower id, higher id)
LinkName link_name(const std::string& x, const std::string& y);

struct Topology {
  std::vector<KmeSite> kmes;
  std::vector<LinkPlan> links;

  const KmeSite* kme(const std::string& id) const;
  const KmeSite* kme_of_sae(const std::string& sae) const;  // the KME that serves this SAE
  const LinkPlan* link(const std::string& x, const std::string& y) const;
  std::vector<const LinkPlan*> links_of(const std::string& kme) const;
  // The fewest hops from `from` to `to` (ties: the shortest fibre), avoiding `excluded` links; the
  // KME ids along it, both ends included; empty when there is none.
  std::vector<std::string> route(const std::string& from, const std::string& to, const std::set<LinkName>& excluded = {}) const;
  // The same routes from `from` to every KME it reaches (itself excluded), by destination.
  std::map<std::string, std::vector<std::string>> routes_from(const std::string& from, const std::set<LinkName>& excluded = {}) const;

 private:
  // Dijkstra on (hops, km) from `from`, stopping at `to` when it is not empty: each KME reached and
  // the one before it on its route.
  std::map<std::string, std::string> shortest(const std::string& from, const std::string& to, const std::set<LinkName>& excluded) const;
};

Topology parse_topology(const std::string& yaml_text, const std::string& source);
Topology load_topology(const std::string& path);

}  // namespace gng::qkd
