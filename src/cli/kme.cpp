// gng kme — an ETSI GS QKD 014 key management entity over gng's PQ-TLS, fed by simulated BB84 links.
#include <csignal>
#include <cstdio>
#include <string>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/address.h"
#include "core/args.h"
#include "core/error.h"
#include "net/rpc.h"
#include "qkd/kme.h"

namespace gng::cli {

int kme(const std::vector<std::string>& argv) {
  Args args("gng kme");
  args.option("pki", "the PKI directory (gng pki init)")
      .option("id", "this KME's certificate id (issued with --role kme)")
      .option("listen", "HOST:PORT or [IPV6]:PORT to serve on (default 127.0.0.1:8443; port 0: any free one)")
      .option("km", "fibre length of every simulated link (default 25)")
      .option("eve", "intercept-resend eavesdropper on this fraction of pulses (default 0)")
      .option("seed", "reproducible simulated links (default: OpenSSL's DRBG)")
      .flag("help", "show this help");
  args.parse(argv);
  if (args.has("help")) {
    std::printf(
        "usage: gng kme --pki DIR --id KME_ID [--listen HOST:PORT] [--km L] [--eve F] [--seed S]\n\n"
        "Serves GET .../status, POST|GET .../enc_keys, POST|GET .../dec_keys under /api/v1/keys/{SAE_ID}/\n"
        "(ETSI GS QKD 014 v1.1.1) over TLS 1.3 with X25519MLKEM768 and mutual ML-DSA certificates.\n"
        "Keys come from simulated BB84 links (a model, not photonic hardware): one process plays both\n"
        "KMEs of every link. Stops on SIGINT or SIGTERM.\n\n%s",
        args.help().c_str());
    return 0;
  }
  if (!args.has("pki") || !args.has("id")) throw Error("gng kme needs --pki DIR and --id KME_ID (see --help)");
  const std::string listen = args.str("listen", "127.0.0.1:8443");
  const Address address = parse_address(listen, "--listen");

  const secure::Identity me = secure::load_identity(args.str("pki"), args.str("id"));
  if (me.role() != "kme") throw Error("'" + me.id() + "' has a " + me.role() + " certificate, not a kme one");
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
