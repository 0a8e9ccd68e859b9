// bench/qkd — the QKD network's costs, measured side by side in one run (medians). Every link is the
// simulated BB84 link model (bb84.h), not photonic hardware; the KMEs, their post-processing over
// PQ-TLS, relays and the ETSI API are the real code (qkd/network.h), on loopback.
//
//   build/bench/qkd [--km 10,25,50,80] [--blocks 5] [--reps 201]
//
// 1. Secret key rate per link against distance: a pair of KMEs linked at each distance runs
//    --blocks blocks of 2^19 sifted bits (the default block): secret bits per second of simulated
//    link time next to the BB84 asymptotic bound at the same parameters, and the wall time of a
//    block's post-processing between the two KMEs next to the same block run in one process.
// 2. Relay latency per hop: KMEs in a line a–b–c–d; a key from a to the SAE at b, c, d (1, 2, 3 hops).
// 3. Cost per model exchange: an exchange in the grid takes two keys (the request's and the answer's),
//    each an enc_keys at the sender's KME and a dec_keys at the receiver's: direct against relayed once.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "core/args.h"
#include "core/error.h"
#include "qkd/network.h"

using namespace gng;
using namespace gng::qkd;

namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

std::vector<double> parse_km(const std::string& text) {
  std::vector<double> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t comma = std::min(text.find(',', pos), text.size());
    out.push_back(std::stod(text.substr(pos, comma - pos)));
    pos = comma + 1;
  }
  return out;
}

int free_port() {
  net::Server probe(secure::load_identity(std::filesystem::temp_directory_path() / "gng-bench-qkd", "orch"),
                    secure::TrustStore::load(std::filesystem::temp_directory_path() / "gng-bench-qkd"));
  const int port = probe.listen("127.0.0.1", 0);
  probe.stop();
  return port;
}

// KMEs kme-a, kme-b, … each serving one SAE (orch at kme-a, then s-b, s-c, …), linked as told.
struct Grid {
  std::string pki;
  std::vector<std::unique_ptr<SiteKme>> kmes;
  std::vector<std::unique_ptr<net::Server>> servers;
  std::vector<int> ports;
  Grid(const std::string& pki_dir, int n, const std::vector<std::pair<int, Params>>& links_after, std::size_t pool) : pki(pki_dir) {
    std::string y = "kmes:\n";
    for (int i = 0; i < n; ++i) {
      ports.push_back(free_port());
      y += "  - {id: " + id(i) + ", address: 127.0.0.1:" + std::to_string(ports.back()) + ", saes: [" + sae(i) + "]}\n";
    }
    y += "links:\n";
    for (const auto& [i, p] : links_after)
      y += "  - {between: [" + id(i) + ", " + id(i + 1) + "], km: " + std::to_string(p.km) + ", pulses: " + std::to_string(p.pulses) + "}\n";
    const Topology t = parse_topology(y, "bench");
    for (int i = 0; i < n; ++i) {
      SiteKmeConfig c;
      c.pki = pki;
      c.topology = t;
      c.pool_bytes = pool;
      c.key_wait = std::chrono::milliseconds(60000);
      const secure::Identity me = secure::load_identity(pki, id(i));
      kmes.push_back(std::make_unique<SiteKme>(me, c));
      servers.push_back(std::make_unique<net::Server>(me, secure::TrustStore::load(pki), site_kme_limits()));
      kmes.back()->mount(*servers.back());
      servers.back()->listen("127.0.0.1", ports[i]);
    }
    for (auto& k : kmes) k->start();
  }
  ~Grid() {
    for (auto& k : kmes) k->stop();
    for (auto& s : servers) s->stop();
  }
  static std::string id(int i) { return std::string("kme-") + static_cast<char>('a' + i); }
  static std::string sae(int i) { return i == 0 ? "orch" : std::string("s-") + static_cast<char>('a' + i); }
  nlohmann::json link(int kme, int peer) const {
    for (const auto& l : kmes[kme]->links())
      if (l["peer"] == id(peer)) return l;
    return nullptr;
  }
};

}  // namespace

int main(int argc, char** argv) {
  Args args("bench/qkd");
  args.option("km", "distances of section 1 (default 10,25,50,80)")
      .option("blocks", "blocks per distance (default 5)")
      .option("reps", "key requests per measurement of sections 2 and 3 (default 201)");
  args.parse(std::vector<std::string>(argv + 1, argv + argc));
  const std::vector<double> kms = parse_km(args.str("km", "10,25,50,80"));
  const int blocks = static_cast<int>(args.integer("blocks", 5, 1, 1000));
  const int reps = static_cast<int>(args.integer("reps", 201, 1, 100000));

  const std::string pki = std::filesystem::temp_directory_path() / "gng-bench-qkd";
  std::filesystem::remove_all(pki);
  secure::pki_init(pki);
  for (int i = 0; i < 4; ++i) {
    secure::pki_issue(pki, {"kme", Grid::id(i)});
    secure::pki_issue(pki, {i == 0 ? "orchestrator" : "node", Grid::sae(i)});
  }
  std::printf("bench/qkd: simulated BB84 links (a model, not photonic hardware); KMEs, post-processing over PQ-TLS, relays real\n\n");

  std::printf("1. secret key rate per link vs distance (blocks of 2^19 sifted bits, %d per distance)\n", blocks);
  std::printf("   %6s %14s %14s %7s %14s %14s %7s\n", "km", "key rate", "bound", "ratio", "block, 2 KMEs", "in 1 process", "ratio");
  for (const double km : kms) {
    Params p;
    p.km = km;
    p.pulses = pulses_for_sifted(p, kDefaultSiftedBits);
    // In one process first (both ends, no network), the same parameters.
    std::vector<double> local;
    for (int b = 0; b < blocks; ++b) {
      const double t0 = now_s();
      run_block(p, std::nullopt, static_cast<uint64_t>(b));
      local.push_back(now_s() - t0);
    }
    Grid g(pki, 2, {{0, p}}, std::size_t{1} << 30);  // a pool never full: blocks back to back
    std::vector<double> at;                          // when each block ended, as kme-a saw it
    int seen = 0;
    while (seen < blocks + 1) {
      const int now = g.link(0, 1)["blocks"].get<int>();
      if (now > seen) {
        seen = now;
        at.push_back(now_s());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    std::vector<double> gaps;
    for (std::size_t i = 1; i < at.size(); ++i) gaps.push_back(at[i] - at[i - 1]);
    const nlohmann::json l = g.link(0, 1);
    const double bound = asymptotic_key_rate(p) * p.pulse_rate_hz;
    std::printf("   %6.0f %10.0f b/s %10.0f b/s %7.3f %11.0f ms %11.0f ms %7.2f\n", km, l["key_rate_bps"].get<double>(), bound,
                l["key_rate_bps"].get<double>() / bound, 1e3 * median(gaps), 1e3 * median(local), median(gaps) / median(local));
  }

  std::printf("\n2. relay latency per hop (a key of 256 bits from orch at kme-a; medians of %d)\n", reps);
  Params p;
  p.km = 10;
  p.pulses = pulses_for_sifted(p, 1 << 18);
  {
    // Pools large enough for every request here, full before measuring: no block runs meanwhile
    // (refills start below half the pool).
    const std::size_t pool = std::size_t{64} * static_cast<std::size_t>(reps) * 4 + (64u << 10);
    Grid g(pki, 4, {{0, p}, {1, p}, {2, p}}, pool);
    for (int i = 0; i < 3; ++i)
      for (int side : {i, i + 1})
        while (g.link(side, side == i ? i + 1 : i)["pool_bytes"]["mine"].get<std::size_t>() < pool)
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const secure::Identity orch = secure::load_identity(pki, "orch");
    net::Client to_a(orch, secure::TrustStore::load(pki), "127.0.0.1", g.ports[0], kme_limits());  // TCP_NODELAY, as SAEs do
    KmeClient master(to_a);
    for (int hops = 1; hops <= 3; ++hops) master.enc_keys(Grid::sae(hops), 1, 256);  // connections made
    std::map<int, std::vector<double>> t;  // interleaved: 1, 2, 3 hops in turn
    for (int r = 0; r < reps; ++r)
      for (int hops = 1; hops <= 3; ++hops) {
        const double t0 = now_s();
        master.enc_keys(Grid::sae(hops), 1, 256);
        t[hops].push_back(now_s() - t0);
      }
    for (int hops = 1; hops <= 3; ++hops)
      if (hops == 1)
        std::printf("   1 hop:  %7.2f ms\n", 1e3 * median(t[1]));
      else
        std::printf("   %d hops: %7.2f ms (%+.2f ms)\n", hops, 1e3 * median(t[hops]), 1e3 * (median(t[hops]) - median(t[hops - 1])));

    std::printf("\n3. keys for one model exchange (one key each way, each enc_keys + dec_keys), direct vs relayed once\n");
    std::map<int, std::unique_ptr<net::Client>> to_site;
    for (int to : {1, 2})
      to_site[to] = std::make_unique<net::Client>(secure::load_identity(pki, Grid::sae(to)), secure::TrustStore::load(pki), "127.0.0.1",
                                                  g.ports[to], kme_limits());
    std::map<int, std::vector<double>> cost;  // interleaved, direct and relayed in turn
    for (int r = 0; r < reps; ++r)
      for (int to : {1, 2}) {
        KmeClient s(*to_site[to]);
        const double t0 = now_s();
        const auto out = master.enc_keys(Grid::sae(to), 1, 256);  // the orchestrator's request
        s.dec_keys("orch", {out[0].id});
        const auto back = s.enc_keys("orch", 1, 256);  // the site's answer
        master.dec_keys(Grid::sae(to), {back[0].id});
        cost[to].push_back(now_s() - t0);
      }
    std::printf("   direct    %7.2f ms\n   relayed   %7.2f ms\n   relayed / direct: %.2f\n", 1e3 * median(cost[1]), 1e3 * median(cost[2]),
                median(cost[2]) / median(cost[1]));
  }
  std::filesystem::remove_all(pki);
  return 0;
}
