// gng kme — an ETSI GS QKD 014 key management entity over gng's PQ-TLS, fed by simulated BB84 links:
// alone (both ends of every link in this process) or, with --topology, one site's KME of a network.
#include <csignal>
#include <filesystem>
#include <cstdio>
#include <string>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/address.h"
#include "core/args.h"
#include "core/error.h"
#include "net/rpc.h"
#include "qkd/kme.h"
#include "qkd/network.h"

namespace gng::cli {

namespace {

int site_kme(const Args& args, const secure::Identity& me) {
  qkd::SiteKmeConfig config;
  config.pki = args.str("pki");
  config.topology = qkd::load_topology(args.str("topology"));
  if (args.has("seed")) config.seed = static_cast<uint64_t>(args.integer("seed", 0, 0, INT64_MAX));
  config.audit_dir = args.str("audit", "");
  const qkd::KmeSite* self = config.topology.kme(me.id());
  if (!self) throw Error(args.str("topology") + ": has no KME '" + me.id() + "'");
  if (!config.audit_dir.empty()) std::filesystem::create_directories(config.audit_dir);
  qkd::SiteKme kme(me, config);
  const sigset_t stop = block_stop_signals();
  net::Server server(me, secure::TrustStore::load(config.pki), qkd::site_kme_limits());
  kme.mount(server);
  // Peers dial the topology's address; --listen may bind another (0.0.0.0 behind that address).
  const Address bind = args.has("listen") ? parse_address(args.str("listen"), "--listen") : self->address;
  if (bind.port == 0 && !args.has("listen")) throw Error(args.str("topology") + ": gives KME '" + me.id() + "' no address to listen on");
  const int bound = server.listen(bind.host, bind.port);
  kme.start();
  std::printf("gng kme '%s' serving ETSI GS QKD 014 on https://%s/api/v1/keys/ for %zu SAE(s), %zu link(s) "
              "(simulated BB84 links; post-processing with the peer KMEs)\n",
              me.id().c_str(), Address{bind.host, bound}.text().c_str(), self->saes.size(),
              config.topology.links_of(me.id()).size());
  std::fflush(stdout);
  const int sig = wait_for_stop(stop);
  kme.stop();
  server.stop();
  std::printf("gng kme: stopped (%s)\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
  return 0;
}

}  // namespace

int kme(const std::vector<std::string>& argv) {
  Args args("gng kme");
  args.option("pki", "the PKI directory (gng pki init)")
      .option("id", "this KME's certificate id (issued with --role kme)")
      .option("listen", "HOST:PORT or [IPV6]:PORT to serve on (default 127.0.0.1:8443, with --topology its address there; port 0: any free one)")
      .option("km", "fibre length of every simulated link (default 25)")
      .option("eve", "intercept-resend eavesdropper on this fraction of pulses (default 0)")
      .option("seed", "reproducible simulated links (default: OpenSSL's DRBG)")
      .option("topology", "a QKD network's plan (KMEs, their SAEs and addresses, links): serve as its KME --id")
      .option("audit", "with --topology: keep the KME's audit log (audit.db) in this directory")
      .flag("help", "show this help");
  args.parse(argv);
  if (args.has("help")) {
    std::printf(
        "usage: gng kme --pki DIR --id KME_ID [--listen HOST:PORT] [--km L] [--eve F] [--seed S]\n"
        "       gng kme --pki DIR --id KME_ID --topology FILE [--listen HOST:PORT] [--audit DIR] [--seed S]\n\n"
        "Serves GET .../status, POST|GET .../enc_keys, POST|GET .../dec_keys under /api/v1/keys/{SAE_ID}/\n"
        "(ETSI GS QKD 014 v1.1.1) over TLS 1.3 with X25519MLKEM768 and mutual ML-DSA certificates.\n"
        "Keys come from simulated BB84 links (a model, not photonic hardware). Alone, one process plays\n"
        "both KMEs of every link. With --topology it is one site's KME: it serves that site's SAEs,\n"
        "listens on its address in the file, runs BB84's post-processing with the KMEs it is linked to\n"
        "and relays keys for sites it has no link to; GET /api/v1/gng/links and /metrics show its\n"
        "links. Stops on SIGINT or SIGTERM.\n\n%s",
        args.help().c_str());
    return 0;
  }
  if (!args.has("pki") || !args.has("id")) throw Error("gng kme needs --pki DIR and --id KME_ID (see --help)");
  const secure::Identity me = secure::load_identity(args.str("pki"), args.str("id"));
  if (me.role() != "kme") throw Error("'" + me.id() + "' has a " + me.role() + " certificate, not a kme one");
  if (args.has("topology")) {
    for (const char* o : {"km", "eve"})
      if (args.has(o)) throw Error(std::string("--") + o + " comes from the topology file with --topology");
    return site_kme(args, me);
  }
  if (args.has("audit")) throw Error("--audit needs --topology");
  const std::string listen = args.str("listen", "127.0.0.1:8443");
  const Address address = parse_address(listen, "--listen");

  qkd::KmeConfig config;
  config.pki = args.str("pki");
  config.link.km = args.real("km", 25, 0, 1000);
  config.link.eve_fraction = args.real("eve", 0, 0, 1);
  if (args.has("seed")) config.seed = static_cast<uint64_t>(args.integer("seed", 0, 0, INT64_MAX));
  qkd::Kme kme(me.id(), config);

  // Block the stop signals before any thread starts, then wait for one.
  const sigset_t stop = block_stop_signals();
  net::Server server(me, secure::TrustStore::load(args.str("pki")), qkd::kme_limits());
  kme.mount(server);
  const int bound = server.listen(address.host, address.port);
  std::printf("gng kme '%s' serving ETSI GS QKD 014 on https://%s/api/v1/keys/ (simulated BB84 links, %.0f km%s)\n",
              me.id().c_str(), Address{address.host, bound}.text().c_str(), config.link.km, config.link.eve_fraction > 0 ? ", eavesdropper on" : "");
  std::fflush(stdout);
  const int sig = wait_for_stop(stop);
  server.stop();
  std::printf("gng kme: stopped (%s)\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
  return 0;
}

}  // namespace gng::cli
