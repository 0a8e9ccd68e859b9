#include "qkd/network_sim.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "core/error.h"
#include "core/html.h"
#include "core/rng.h"

namespace gng::qkd {

namespace {


std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string rate_text(double bps) {
  if (bps <= 0) return "0";
  if (bps >= 1e6) return fmt("%.2f Mbit/s", bps / 1e6);
  if (bps >= 1e3) return fmt("%.1f kbit/s", bps / 1e3);
  return fmt("%.0f bit/s", bps);
}

}  // namespace

NetworkSim simulate_network(const Topology& t, const NetworkSimOptions& o) {
  if (o.trials < 1) throw Error("network simulation: trials must be >= 1");
  if (!(o.fail_probability >= 0 && o.fail_probability <= 1)) throw Error("network simulation: failure probability must be in [0, 1]");
  for (const LinkName& e : o.eavesdropped)
    if (!t.link(e.first, e.second)) throw Error("network simulation: no link " + e.first + "–" + e.second + " to put an eavesdropper on");
  NetworkSim s;
  // Each link: one block of the link model.
  std::set<LinkName> dead;  // links that give no key at all
  for (std::size_t i = 0; i < t.links.size(); ++i) {
    const LinkPlan& l = t.links[i];
    LinkSim ls;
    ls.link = {l.a, l.b};
    Params p = l.params;
    ls.eavesdropped = std::find(o.eavesdropped.begin(), o.eavesdropped.end(), ls.link) != o.eavesdropped.end();
    if (ls.eavesdropped) p.eve_fraction = 1;
    if (p.pulses == 0) p.pulses = pulses_for_sifted(p, o.sifted_bits);
    ls.km = p.km;
    ls.bound_bps = asymptotic_key_rate(p) * p.pulse_rate_hz;
    const Block b = run_block(p, link_seed(o.seed, l.a, l.b), 0);
    ls.qber = b.stats.qber_estimated;
    if (b.stats.aborted) {
      ls.aborted = b.stats.reason;
      dead.insert(ls.link);
    } else {
      ls.rate_bps = b.stats.key_rate_bps;
    }
    s.links.push_back(ls);
  }
  std::map<LinkName, std::size_t> index;
  for (std::size_t i = 0; i < s.links.size(); ++i) index[s.links[i].link] = i;
  std::map<std::pair<std::string, std::string>, std::size_t> pair_index;
  for (std::size_t i = 0; i < t.kmes.size(); ++i)
    for (std::size_t j = i + 1; j < t.kmes.size(); ++j) {
      pair_index[link_name(t.kmes[i].id, t.kmes[j].id)] = s.pairs.size();
      s.pairs.push_back({link_name(t.kmes[i].id, t.kmes[j].id).first, link_name(t.kmes[i].id, t.kmes[j].id).second});
    }
  for (const auto& k : t.kmes) s.relayed[k.id] = 0;

  std::vector<double> hop_sum(s.pairs.size(), 0);
  for (int trial = 0; trial < o.trials; ++trial) {
    Rng rng(o.seed, static_cast<uint64_t>(trial) + 1);
    std::set<LinkName> down = dead;
    for (auto& ls : s.links)
      if (o.fail_probability > 0 && rng.uniform() < o.fail_probability) {
        down.insert(ls.link);
        ls.failed += 1.0 / o.trials;
      }
    // Every pair's route (from the lower id), then each link's load.
    std::vector<std::vector<std::string>> routes(s.pairs.size());
    std::vector<double> load(s.links.size(), 0);
    for (const auto& k : t.kmes) {
      for (auto& [to, route] : t.routes_from(k.id, down)) {
        if (to < k.id) continue;
        const std::size_t pi = pair_index.at(link_name(k.id, to));
        for (std::size_t h = 0; h + 1 < route.size(); ++h) load[index.at(link_name(route[h], route[h + 1]))] += 1;
        for (std::size_t h = 1; h + 1 < route.size(); ++h) s.relayed[route[h]] += 1.0 / o.trials;
        routes[pi] = std::move(route);
      }
    }
    for (std::size_t i = 0; i < s.links.size(); ++i) s.links[i].load += load[i] / o.trials;
    for (std::size_t pi = 0; pi < s.pairs.size(); ++pi) {
      const auto& r = routes[pi];
      if (r.empty()) continue;
      double rate = INFINITY;
      for (std::size_t h = 0; h + 1 < r.size(); ++h) {
        const std::size_t li = index.at(link_name(r[h], r[h + 1]));
        rate = std::min(rate, s.links[li].rate_bps / load[li]);
      }
      s.pairs[pi].reachable += 1.0 / o.trials;
      s.pairs[pi].rate_bps += rate / o.trials;
      hop_sum[pi] += static_cast<double>(r.size() - 1);
    }
  }
  for (std::size_t pi = 0; pi < s.pairs.size(); ++pi)
    if (s.pairs[pi].reachable > 0) s.pairs[pi].hops = hop_sum[pi] / (s.pairs[pi].reachable * o.trials);
  return s;
}

namespace {
Topology numbered(int n, double km, bool ring) {
  if (n < 2 || n > 1000) throw Error("a " + std::string(ring ? "ring" : "star") + " needs 2..1000 KMEs, got " + std::to_string(n));
  Topology t;
  for (int i = 0; i < n; ++i) t.kmes.push_back({"kme-" + std::to_string(i), {}, {}});
  const auto add = [&](int a, int b) {
    Params p;
    p.km = km;
    const LinkName name = link_name(t.kmes[a].id, t.kmes[b].id);
    if (!t.link(name.first, name.second)) t.links.push_back({name.first, name.second, p});
  };
  for (int i = 1; i < n; ++i) add(ring ? i - 1 : 0, i);
  if (ring && n > 2) add(n - 1, 0);
  return t;
}
}  // namespace

Topology ring_topology(int n, double km) { return numbered(n, km, true); }
Topology star_topology(int n, double km) { return numbered(n, km, false); }

std::string network_sim_html(const NetworkSim& s, const std::string& title) {
  std::vector<std::string> ids;
  for (const auto& [id, r] : s.relayed) ids.push_back(id);
  const std::size_t n = ids.size();
  std::map<std::pair<std::string, std::string>, double> rate;
  double lo = INFINITY, hi = 0;
  for (const auto& p : s.pairs) {
    rate[{p.a, p.b}] = rate[{p.b, p.a}] = p.rate_bps;
    if (p.rate_bps > 0) lo = std::min(lo, p.rate_bps), hi = std::max(hi, p.rate_bps);
  }
  const double cell = std::max(6.0, std::min(28.0, 640.0 / static_cast<double>(std::max<std::size_t>(n, 1))));
  const double margin = 90, size = cell * static_cast<double>(n);
  std::ostringstream h;
  h << "<!doctype html><html><head><meta charset=\"utf-8\"><title>" << html_escape(title)
    << "</title><style>body{font:14px sans-serif;margin:24px;max-width:1100px}table{border-collapse:collapse}"
       "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}th{background:#f3f3f3}.bad{color:#b00}</style></head><body>"
    << "<h1>" << html_escape(title) << "</h1><p><b>Simulated.</b> Every link is the BB84 link model of gng "
       "(bb84.h: fibre loss, detectors, intercept-resend), not photonic hardware; routes are gng's KME routing "
       "(fewest hops); a link's rate is shared equally by the routes over it.</p>";
  h << "<h2>Secret key per pair (bits per second of link time)</h2><svg xmlns=\"http://www.w3.org/2000/svg\" width=\""
    << size + margin + 10 << "\" height=\"" << size + margin + 40 << "\" font-size=\"" << std::min(11.0, cell) << "\">";
  for (std::size_t i = 0; i < n; ++i) {
    const double at = margin + cell * static_cast<double>(i) + cell * 0.7;
    h << "<text x=\"" << margin - 4 << "\" y=\"" << at << "\" text-anchor=\"end\">" << html_escape(ids[i]) << "</text>";
    h << "<text transform=\"translate(" << at << "," << margin - 4 << ") rotate(-60)\">" << html_escape(ids[i]) << "</text>";
    for (std::size_t j = 0; j < n; ++j) {
      std::string colour = "#eee";
      std::string tip = ids[i] + " – " + ids[j];
      if (i != j) {
        const double r = rate[{ids[i], ids[j]}];
        if (r > 0) {
          const double f = hi > lo ? (std::log(r) - std::log(lo)) / (std::log(hi) - std::log(lo)) : 1;
          const int g = static_cast<int>(220 - 170 * f);
          colour = "rgb(" + std::to_string(g / 2) + "," + std::to_string(g) + ",230)";
          tip += ": " + rate_text(r);
        } else {
          colour = "#c44";
          tip += ": unreachable";
        }
      }
      h << "<rect x=\"" << margin + cell * static_cast<double>(j) << "\" y=\"" << margin + cell * static_cast<double>(i) << "\" width=\""
        << cell - 1 << "\" height=\"" << cell - 1 << "\" fill=\"" << colour << "\"><title>" << html_escape(tip) << "</title></rect>";
    }
  }
  h << "<text x=\"" << margin << "\" y=\"" << size + margin + 24 << "\">light: " << (hi > 0 ? rate_text(lo) : "-") << ", dark: "
    << rate_text(hi) << " (log scale); red: no route</text></svg>";
  h << "<h2>Links</h2><table><tr><th>link</th><th>km</th><th>QBER</th><th>key rate</th><th>bound</th><th>down (share of trials)</th>"
       "<th>routes over it</th><th>note</th></tr>";
  for (const auto& l : s.links) {
    const bool bad = !l.aborted.empty() || l.failed > 0;
    h << "<tr" << (bad ? " class=\"bad\"" : "") << "><td>" << html_escape(l.link.first + " – " + l.link.second) << "</td><td>"
      << fmt("%.1f", l.km) << "</td><td>" << fmt("%.2f %%", 100 * l.qber) << "</td><td>" << rate_text(l.rate_bps) << "</td><td>"
      << rate_text(l.bound_bps) << "</td><td>" << fmt("%.2f", l.aborted.empty() ? l.failed : 1.0) << "</td><td>" << fmt("%.1f", l.load)
      << "</td><td>" << html_escape(l.eavesdropped ? "eavesdropper: " + l.aborted : l.aborted) << "</td></tr>";
  }
  h << "</table><h2>Relay load</h2><table><tr><th>KME</th><th>routes relayed (mean per trial)</th></tr>";
  for (const auto& [id, r] : s.relayed) h << "<tr><td>" << html_escape(id) << "</td><td>" << fmt("%.1f", r) << "</td></tr>";
  h << "</table></body></html>\n";
  return h.str();
}

}  // namespace gng::qkd
