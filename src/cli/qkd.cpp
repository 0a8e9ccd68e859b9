// gng qkd simulate — the BB84 link simulator over a list of distances: key rates next to the bound.
#include <algorithm>
#include <charconv>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/args.h"
#include "core/error.h"
#include "core/timer.h"
#include "core/file.h"
#include "qkd/bb84.h"
#include "qkd/network_sim.h"

namespace gng::cli {

namespace {

constexpr const char* kModel =
    "simulated BB84 link: a model of a fibre QKD link (ideal single-photon source, loss, detector efficiency, "
    "dark counts, misalignment, intercept-resend), not photonic hardware";

std::vector<double> parse_km(const std::string& text) {
  std::vector<double> out;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const std::size_t comma = std::min(text.find(',', pos), text.size());
    const std::string item = text.substr(pos, comma - pos);
    double v = 0;
    auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (item.empty() || ec != std::errc() || p != item.data() + item.size())
      throw Error("--km: expected distances in km like 10,25,50, got '" + item + "'");
    out.push_back(v);
    pos = comma + 1;
  }
  return out;
}

nlohmann::json row_json(double km, const qkd::BlockStats& s, const qkd::Prediction& pr, double pulse_rate, double time_s) {
  nlohmann::json j;
  j["km"] = km;
  j["pulses"] = s.pulses;
  j["detections"] = s.detections;
  j["sifted"] = s.sifted;
  j["pe_bits"] = s.pe_bits;
  j["pe_errors"] = s.pe_errors;
  j["reconciled"] = s.reconciled;
  j["qber_estimated"] = s.qber_estimated;
  j["qber_bound"] = s.qber_bound;
  j["qber_true"] = s.qber_true;
  j["qber_predicted"] = pr.qber;
  j["errors_corrected"] = s.errors_corrected;
  j["leak_ec"] = s.leak_ec;
  j["leak_verify"] = s.leak_verify;
  j["ec_efficiency"] = s.ec_efficiency;
  j["final_bits"] = s.final_bits;
  j["key_rate_bits_per_pulse"] = s.key_rate;
  j["key_rate_bps"] = s.key_rate_bps;
  j["bound_bits_per_pulse"] = pr.key_rate;
  j["bound_bps"] = pr.key_rate * pulse_rate;
  j["ratio"] = pr.key_rate > 0 ? nlohmann::json(s.key_rate / pr.key_rate) : nlohmann::json(nullptr);
  j["link_seconds"] = s.link_seconds;
  j["aborted"] = s.aborted;
  j["reason"] = s.aborted ? nlohmann::json(s.reason) : nlohmann::json(nullptr);
  j["time_s"] = time_s;
  return j;
}

int simulate(const std::vector<std::string>& argv) {
  Args args("gng qkd simulate");
  args.option("km", "fibre lengths in km, comma-separated (default 10,25,50,100)")
      .option("eve", "fraction of pulses an intercept-resend eavesdropper measures, 0..1 (default 0)")
      .option("seed", "seed: a reproducible run (default: Alice's bits and the hashing seed from the OpenSSL DRBG)")
      .option("pulses", "pulses per block (default: enough for about 2^19 sifted bits at each distance)")
      .option("loss", "fibre loss in dB/km (default 0.2)")
      .option("efficiency", "detector efficiency (default 0.10)")
      .option("dark-count", "dark-count probability per detector and gate (default 1e-6)")
      .option("misalignment", "optical misalignment error e_d (default 0.015)")
      .flag("json", "print one JSON object")
      .flag("help", "show this help");
  args.parse(argv);
  if (args.has("help")) {
    std::printf("usage: gng qkd simulate [OPTIONS]\n\nOne block of BB84 per distance on a simulated link (a model, not photonic "
                "hardware); key rates next to the asymptotic bound.\n\n%s",
                args.help().c_str());
    return 0;
  }
  if (!args.positional().empty()) throw Error("unexpected argument '" + args.positional()[0] + "'");
  qkd::Params base;
  base.eve_fraction = args.real("eve", base.eve_fraction, 0, 1);
  base.loss_db_per_km = args.real("loss", base.loss_db_per_km, 0, 10);
  base.detector_efficiency = args.real("efficiency", base.detector_efficiency, 0, 1);
  base.dark_count = args.real("dark-count", base.dark_count, 0, 1);
  base.misalignment = args.real("misalignment", base.misalignment, 0, 0.5);
  const int64_t pulses = args.integer("pulses", 0, 1, 1'000'000'000'000);
  base.pulses = static_cast<uint64_t>(pulses);
  std::optional<uint64_t> seed;
  if (args.has("seed")) {
    const int64_t s = args.integer("seed", 0, 0, INT64_MAX);
    seed = static_cast<uint64_t>(s);
  }
  const std::vector<double> kms = parse_km(args.str("km", "10,25,50,100"));
  std::vector<qkd::Params> params;
  for (double km : kms) {
    qkd::Params p = base;
    p.km = km;
    qkd::validate(p);
    params.push_back(p);
  }
  const bool json = args.has("json");
  if (!json) {
    std::printf("%s\n", kModel);
    std::printf("fibre %g dB/km; detectors %g %% efficient, %g dark counts per gate; misalignment %g %%; %g GHz; "
                "Eve on %g %% of pulses; %s\n\n",
                base.loss_db_per_km, 100 * base.detector_efficiency, base.dark_count, 100 * base.misalignment,
                base.pulse_rate_hz / 1e9, 100 * base.eve_fraction,
                seed ? ("seed " + std::to_string(*seed)).c_str() : "randomness from the OpenSSL DRBG");
    std::printf("%6s %10s %10s %9s %9s %9s %6s %9s %10s %9s %10s %9s %6s %7s\n", "km", "pulses", "detections", "sifted",
                "est QBER", "true QBER", "f_EC", "key bits", "bits/pulse", "kbit/s", "bound b/p", "bound k/s", "ratio", "time s");
  }
  nlohmann::json rows = nlohmann::json::array();
  for (std::size_t i = 0; i < params.size(); ++i) {
    const qkd::Params& p = params[i];
    const Stopwatch sw;
    const qkd::Block b = qkd::run_block(p, seed, i);  // row i: block i of the seed
    const double t = sw.seconds();
    const qkd::Prediction pr = qkd::predict(p);
    const auto& s = b.stats;
    if (json) {
      rows.push_back(row_json(p.km, s, pr, p.pulse_rate_hz, t));
      continue;
    }
    std::printf("%6g %10.3g %10llu %9llu", p.km, static_cast<double>(s.pulses), static_cast<unsigned long long>(s.detections),
                static_cast<unsigned long long>(s.sifted));
    if (s.pe_bits > 0)
      std::printf(" %7.2f %% %7.2f %%", 100 * s.qber_estimated, 100 * s.qber_true);
    else
      std::printf(" %9s %9s", "-", "-");
    if (s.aborted) {
      std::printf("  aborted: %s  (bound %.3g bits/pulse; %.2f s)\n", s.reason.c_str(), pr.key_rate, t);
      continue;
    }
    std::printf(" %6.3f %9llu %10.3e %9.2f %10.3e %9.2f %6.3f %7.2f\n", s.ec_efficiency, static_cast<unsigned long long>(s.final_bits),
                s.key_rate, s.key_rate_bps / 1e3, pr.key_rate, pr.key_rate * p.pulse_rate_hz / 1e3,
                pr.key_rate > 0 ? s.key_rate / pr.key_rate : 0.0, t);
  }
  if (json) {
    nlohmann::json j;
    j["simulated"] = true;
    j["model"] = kModel;
    j["seed"] = seed ? nlohmann::json(*seed) : nlohmann::json(nullptr);
    j["params"] = {{"loss_db_per_km", base.loss_db_per_km},
                   {"detector_efficiency", base.detector_efficiency},
                   {"dark_count", base.dark_count},
                   {"misalignment", base.misalignment},
                   {"eve_fraction", base.eve_fraction},
                   {"pulse_rate_hz", base.pulse_rate_hz},
                   {"pe_fraction", base.pe_fraction},
                   {"qber_threshold", base.qber_threshold},
                   {"eps_pe", base.eps_pe},
                   {"eps_pa", base.eps_pa},
                   {"cascade_passes", base.cascade_passes}};
    j["rows"] = rows;
    std::printf("%s\n", j.dump().c_str());
  }
  return 0;
}

// gng qkd network simulate TOPOLOGY: key rates per pair, hops and relay load over a network's links.
int network_simulate(const std::vector<std::string>& argv) {
  Args args("gng qkd network simulate");
  args.option("km", "with ring:N or star:N, every link's length (default 25)")
      .option("fail", "probability that a link is down in a trial, 0..1 (default 0)")
      .option("trials", "random failure draws (default 20)")
      .option("eve", "links with an intercept-resend eavesdropper: A/B,C/D (KME ids)")
      .option("seed", "seed of the links' blocks and the failures (default 1)")
      .option("html", "write the heat map of key rates per pair, the links and relay load to this file")
      .flag("json", "print one JSON object")
      .flag("help", "show this help");
  args.parse(argv);
  if (args.has("help")) {
    std::printf("usage: gng qkd network simulate TOPOLOGY|ring:N|star:N [OPTIONS]\n\n"
                "Simulates a QKD network (qkd/network_sim.h): each link one block of the BB84 link model (a model,\n"
                "not photonic hardware), links failing at random, every pair of KMEs routed as gng's KMEs route\n"
                "(fewest hops over links with key), each link's rate shared by the routes over it. TOPOLOGY is a\n"
                "file as gng kme --topology reads (addresses may be left out).\n\n%s",
                args.help().c_str());
    return 0;
  }
  if (args.positional().size() != 1) throw Error("gng qkd network simulate needs one TOPOLOGY (a file, ring:N or star:N)");
  const std::string what = args.positional()[0];
  const double km = args.real("km", 25, 0, 1000);
  qkd::Topology t;
  if (what.rfind("ring:", 0) == 0 || what.rfind("star:", 0) == 0) {
    const std::string count = what.substr(5);
    if (count.empty() || count.size() > 4 || count.find_first_not_of("0123456789") != std::string::npos)
      throw Error("'" + what + "': expected ring:N or star:N with N a number of KMEs");
    t = what[0] == 'r' ? qkd::ring_topology(std::stoi(count), km) : qkd::star_topology(std::stoi(count), km);
  } else {
    if (args.has("km")) throw Error("--km is for ring:N and star:N; a topology file gives each link's length");
    t = qkd::load_topology(what);
  }
  qkd::NetworkSimOptions o;
  o.fail_probability = args.real("fail", 0, 0, 1);
  o.trials = static_cast<int>(args.integer("trials", 20, 1, 100000));
  o.seed = static_cast<uint64_t>(args.integer("seed", 1, 0, INT64_MAX));
  for (const std::string& e : split_list(args.str("eve", ""))) {
    const auto slash = e.find('/');
    if (slash == std::string::npos) throw Error("--eve: expected links as A/B, got '" + e + "'");
    o.eavesdropped.push_back(qkd::link_name(e.substr(0, slash), e.substr(slash + 1)));
  }
  const qkd::NetworkSim s = qkd::simulate_network(t, o);
  if (args.has("html")) write_file_atomic(args.str("html"), qkd::network_sim_html(s, "QKD network: " + what));
  std::vector<double> rates;
  std::size_t unreachable = 0;
  for (const auto& p : s.pairs) {
    rates.push_back(p.rate_bps);
    unreachable += p.reachable == 0;
  }
  std::sort(rates.begin(), rates.end());
  const auto pct = [&](double q) { return rates.empty() ? 0.0 : rates[static_cast<std::size_t>(q * static_cast<double>(rates.size() - 1))]; };
  if (args.has("json")) {
    nlohmann::json j;
    j["simulated"] = kModel;
    for (const auto& l : s.links)
      j["links"].push_back({{"a", l.link.first}, {"b", l.link.second}, {"km", l.km}, {"qber", l.qber}, {"rate_bps", l.rate_bps},
                            {"bound_bps", l.bound_bps}, {"eavesdropped", l.eavesdropped}, {"aborted", l.aborted}, {"failed", l.failed}, {"load", l.load}});
    for (const auto& p : s.pairs)
      j["pairs"].push_back({{"a", p.a}, {"b", p.b}, {"reachable", p.reachable}, {"hops", p.hops}, {"rate_bps", p.rate_bps}});
    j["relayed"] = s.relayed;
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("%s\n%zu KMEs, %zu links, %zu pairs; %d trial(s), links down with probability %.2f\n\n", kModel, t.kmes.size(),
              t.links.size(), s.pairs.size(), o.trials, o.fail_probability);
  std::printf("%-28s %7s %7s %14s %14s %6s %7s\n", "link", "km", "QBER", "key rate", "bound", "down", "routes");
  for (const auto& l : s.links)
    std::printf("%-30s %7.1f %6.2f%% %10.0f b/s %10.0f b/s %6.2f %7.1f%s\n", (l.link.first + "–" + l.link.second).c_str(), l.km,
                100 * l.qber, l.rate_bps, l.bound_bps, l.aborted.empty() ? l.failed : 1.0, l.load,
                l.aborted.empty() ? "" : ("  no key: " + l.aborted.substr(0, 60)).c_str());
  std::printf("\nkey rate per pair (bits/s, mean over trials): min %.0f, median %.0f, max %.0f; %zu pair(s) never reachable\n",
              pct(0), pct(0.5), pct(1), unreachable);
  std::vector<std::pair<double, std::string>> relays;
  for (const auto& [id, r] : s.relayed) relays.push_back({r, id});
  std::sort(relays.rbegin(), relays.rend());
  std::printf("busiest relays:");
  for (std::size_t i = 0; i < relays.size() && i < 5; ++i) std::printf(" %s (%.1f routes)", relays[i].second.c_str(), relays[i].first);
  std::printf("\n");
  return 0;
}

}  // namespace

int qkd(const std::vector<std::string>& argv) {
  if (argv.empty() || argv[0] == "--help" || argv[0] == "help") {
    std::fputs("usage: gng qkd simulate [OPTIONS]\n       gng qkd network simulate TOPOLOGY [OPTIONS]\n\n"
               "  simulate           BB84 link simulator: key rates over distances next to the asymptotic bound\n"
               "  network simulate   a network of links: key rates per pair, hops, relay load, failures\n",
               argv.empty() ? stderr : stdout);
    return argv.empty() ? 2 : 0;
  }
  if (argv[0] == "simulate") return simulate({argv.begin() + 1, argv.end()});
  if (argv[0] == "network" && argv.size() > 1 && argv[1] == "simulate") return network_simulate({argv.begin() + 2, argv.end()});
  throw Error("unknown subcommand '" + argv[0] + "' (expected simulate or network simulate)");
}

}  // namespace gng::cli
