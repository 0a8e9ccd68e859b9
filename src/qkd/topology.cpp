#include "qkd/topology.h"

#include <algorithm>
#include <map>
#include <queue>
#include <regex>
#include <tuple>

#include "core/error.h"
#include "core/yaml.h"

namespace gng::qkd {

LinkName link_name(const std::string& x, const std::string& y) { return x < y ? LinkName{x, y} : LinkName{y, x}; }

const KmeSite* Topology::kme(const std::string& id) const {
  for (const auto& k : kmes)
    if (k.id == id) return &k;
  return nullptr;
}

const KmeSite* Topology::kme_of_sae(const std::string& sae) const {
  for (const auto& k : kmes)
    if (std::find(k.saes.begin(), k.saes.end(), sae) != k.saes.end()) return &k;
  return nullptr;
}

const LinkPlan* Topology::link(const std::string& x, const std::string& y) const {
  const LinkName n = link_name(x, y);
  for (const auto& l : links)
    if (l.a == n.first && l.b == n.second) return &l;
  return nullptr;
}

std::vector<const LinkPlan*> Topology::links_of(const std::string& id) const {
  std::vector<const LinkPlan*> out;
  for (const auto& l : links)
    if (l.a == id || l.b == id) out.push_back(&l);
  return out;
}

std::map<std::string, std::string> Topology::shortest(const std::string& from, const std::string& to,
                                                     const std::set<LinkName>& excluded) const {
  // (hops, km), lexicographic; ties beyond that by id, so routes are deterministic.
  using Cost = std::pair<int, double>;
  std::map<std::string, Cost> best;
  std::map<std::string, std::string> prev;
  using Item = std::tuple<Cost, std::string>;
  std::priority_queue<Item, std::vector<Item>, std::greater<>> q;
  best[from] = {0, 0};
  prev[from] = "";
  q.push({{0, 0}, from});
  while (!q.empty()) {
    const auto [c, at] = q.top();
    q.pop();
    if (c > best[at]) continue;
    if (at == to) break;
    for (const LinkPlan* l : links_of(at)) {
      if (excluded.count({l->a, l->b})) continue;
      const std::string& next = l->a == at ? l->b : l->a;
      const Cost nc{c.first + 1, c.second + l->params.km};
      const auto it = best.find(next);
      if (it == best.end() || nc < it->second) {
        best[next] = nc;
        prev[next] = at;
        q.push({nc, next});
      }
    }
  }
  return prev;
}

namespace {
std::vector<std::string> walk_back(const std::map<std::string, std::string>& prev, const std::string& from, const std::string& to) {
  std::vector<std::string> path{to};
  while (path.back() != from) path.push_back(prev.at(path.back()));
  std::reverse(path.begin(), path.end());
  return path;
}
}  // namespace

std::vector<std::string> Topology::route(const std::string& from, const std::string& to, const std::set<LinkName>& excluded) const {
  const auto prev = shortest(from, to, excluded);
  if (!prev.count(to)) return {};
  return walk_back(prev, from, to);
}

std::map<std::string, std::vector<std::string>> Topology::routes_from(const std::string& from, const std::set<LinkName>& excluded) const {
  const auto prev = shortest(from, "", excluded);
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& [to, before] : prev)
    if (to != from) out[to] = walk_back(prev, from, to);
  return out;
}

namespace {

const std::regex kId("[A-Za-z0-9][A-Za-z0-9._-]{0,63}");

std::string id_at(const YAML::Node& n, const std::string& source, const std::string& what) {
  const auto id = yaml::get<std::string>(n, source, what);
  if (!std::regex_match(id, kId)) throw Error(yaml::where(source, n) + ": " + what + " '" + id.substr(0, 80) + "' is not a valid id");
  return id;
}

}  // namespace

Topology parse_topology(const std::string& text, const std::string& source) {
  const YAML::Node root = yaml::load(text, source);
  yaml::check_keys(root, source, "a QKD topology", {"kmes", "links", "block_pulses"});
  Topology t;
  if (!root["kmes"] || !root["kmes"].IsSequence() || root["kmes"].size() == 0)
    throw Error(source + ": 'kmes' must list the network's KMEs");
  std::map<std::string, std::string> sae_at;
  for (const auto& k : root["kmes"]) {
    if (!k.IsMap()) throw Error(yaml::where(source, k) + ": each KME is a mapping {id, address, saes}");
    yaml::check_keys(k, source, "a KME", {"id", "address", "saes"});
    if (!k["id"]) throw Error(yaml::where(source, k) + ": a KME needs 'id'");
    KmeSite s;
    s.id = id_at(k["id"], source, "KME id");
    if (t.kme(s.id)) throw Error(yaml::where(source, k["id"]) + ": KME '" + s.id + "' is listed twice");
    if (k["address"]) try {
        s.address = parse_address(yaml::get<std::string>(k["address"], source, "address"), "address");
      } catch (const Error& e) {
        throw Error(yaml::where(source, k["address"]) + ": " + e.what());
      }
    if (k["saes"]) {
      if (!k["saes"].IsSequence()) throw Error(yaml::where(source, k["saes"]) + ": 'saes' must be a list of SAE ids");
      for (const auto& sae : k["saes"]) {
        const std::string id = id_at(sae, source, "SAE id");
        if (const auto it = sae_at.find(id); it != sae_at.end())
          throw Error(yaml::where(source, sae) + ": SAE '" + id + "' is served by both '" + it->second + "' and '" + s.id + "'");
        sae_at[id] = s.id;
        s.saes.push_back(id);
      }
    }
    t.kmes.push_back(std::move(s));
  }
  Params defaults;
  if (root["block_pulses"]) defaults.pulses = static_cast<uint64_t>(yaml::number(root["block_pulses"], source, "block_pulses", 0, 1e12));
  if (root["links"]) {
    if (!root["links"].IsSequence()) throw Error(yaml::where(source, root["links"]) + ": 'links' must be a list");
    for (const auto& l : root["links"]) {
      if (!l.IsMap()) throw Error(yaml::where(source, l) + ": each link is a mapping {between: [KME, KME], km, …}");
      yaml::check_keys(l, source, "a link",
                       {"between", "km", "loss", "efficiency", "dark_count", "misalignment", "eve", "pulses", "pulse_rate", "qber_threshold"});
      const YAML::Node ends = l["between"];
      if (!ends || !ends.IsSequence() || ends.size() != 2)
        throw Error(yaml::where(source, l) + ": a link needs 'between: [KME, KME]'");
      const std::string x = id_at(ends[0], source, "KME id"), y = id_at(ends[1], source, "KME id");
      for (const auto& [id, node] : {std::pair{x, ends[0]}, std::pair{y, ends[1]}})
        if (!t.kme(id)) throw Error(yaml::where(source, node) + ": link names '" + id + "', which is not a KME of this topology");
      if (x == y) throw Error(yaml::where(source, l) + ": a link from '" + x + "' to itself");
      if (t.link(x, y)) throw Error(yaml::where(source, l) + ": the link " + x + "–" + y + " is listed twice");
      LinkPlan p{link_name(x, y).first, link_name(x, y).second, defaults};
      const auto num = [&](const char* key, double& into, double lo, double hi) {
        if (l[key]) into = yaml::number(l[key], source, key, lo, hi);
      };
      num("km", p.params.km, 0, 1000);
      num("loss", p.params.loss_db_per_km, 0, 10);
      num("efficiency", p.params.detector_efficiency, 1e-6, 1);
      num("dark_count", p.params.dark_count, 0, 0.5);
      num("misalignment", p.params.misalignment, 0, 0.5);
      num("eve", p.params.eve_fraction, 0, 1);
      num("pulse_rate", p.params.pulse_rate_hz, 1, 1e12);
      num("qber_threshold", p.params.qber_threshold, 0.001, 0.5);
      if (l["pulses"]) p.params.pulses = static_cast<uint64_t>(yaml::number(l["pulses"], source, "pulses", 0, 1e12));
      try {
        validate(p.params);
      } catch (const Error& e) {
        throw Error(yaml::where(source, l) + ": " + e.what());
      }
      t.links.push_back(std::move(p));
    }
  }
  return t;
}

Topology load_topology(const std::string& path) { return parse_topology(yaml::slurp(path), path); }

}  // namespace gng::qkd
