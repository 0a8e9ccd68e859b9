// gng pki — the project's certificate authority: init, issue, deny, show.
#include <csignal>
#include <cstdio>
#include <mutex>
#include <ctime>
#include <filesystem>
#include <string>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/args.h"
#include "core/error.h"
#include "core/address.h"
#include "core/file.h"
#include "core/yaml.h"
#include "net/enrol.h"
#include "secure/pki.h"

namespace gng::cli {

namespace {

constexpr const char* kUsage = R"(usage: gng pki init DIR [--algorithm ML-DSA-87|SLH-DSA-SHA2-256s] [--days N]
       gng pki issue DIR --role node|kme|orchestrator --id NAME [--hosts H1,H2] [--days N]
       gng pki sign DIR REQUEST.pem --role node|kme|orchestrator [--days N]
       gng pki deny DIR --id NAME
       gng pki token DIR --id NAME [--expires 1h]
       gng pki serve DIR --listen HOST:PORT [--as orchestrator]
       gng pki show DIR

init   a CA: DIR/ca.pem, DIR/ca.key.pem (0600), DIR/crl.pem (the signed deny list, empty)
issue  an ML-DSA-65 key and certificate (CN = id, OU = role) in DIR/issued/NAME.{pem,key.pem};
       subjectAltName from --hosts (default: NAME, localhost, 127.0.0.1, ::1)
sign   a site's certificate request (gng node init makes one; its key stays at the site): verified,
       then certified as --role in DIR/issued/<its id>.pem. Send the site that file, ca.pem and crl.pem
deny   put NAME's certificate on the deny list (re-signs DIR/crl.pem); peers refuse it from then on,
       those already connected on their next call
token  a one-time enrolment token for site NAME (default: expires in 1 h); give it to the site
       with ca.pem. DIR/tokens.db keeps only its hash
serve  the enrolment service: a site sends its request with a token (gng node init DIR --id NAME
       --enrol HOST:PORT --token T --ca ca.pem) and gets its certificate; TLS 1.3, X25519MLKEM768,
       the server's certificate DIR/issued/<--as>.pem. Each token admits one request. Until SIGTERM
show   the CA and every issued certificate with its state
)";

std::string date(long long t) {
  char buf[32];
  const time_t tt = static_cast<time_t>(t);
  std::strftime(buf, sizeof buf, "%Y-%m-%d", std::gmtime(&tt));
  return buf;
}

}  // namespace

int pki(const std::vector<std::string>& argv) {
  Args args("gng pki");
  args.option("algorithm", "CA signature algorithm (init)")
      .option("days", "validity in days")
      .option("role", "node, kme or orchestrator (issue)")
      .option("id", "the identity's name")
      .option("hosts", "comma-separated DNS names / IP addresses for subjectAltName (issue)")
      .option("expires", "how long a token stays good: 90, 30s, 10m, 2h (token; default 1h)")
      .option("listen", "HOST:PORT the enrolment service listens on (serve)")
      .option("as", "the identity the enrolment service presents (serve; default orchestrator)")
      .flag("help", "show this help");
  args.parse(argv);
  const auto& pos = args.positional();
  if (args.has("help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (pos.size() != (!pos.empty() && pos[0] == "sign" ? 3u : 2u)) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const std::string& verb = pos[0];
  const std::string& dir = pos[1];
  if (verb == "init") {
    const std::string alg = args.str("algorithm", "ML-DSA-87");
    secure::pki_init(dir, alg, static_cast<int>(args.integer("days", 3650, 1, 36500)));
    std::printf("CA (%s) created in %s: ca.pem, ca.key.pem (keep it offline), crl.pem\n", alg.c_str(), dir.c_str());
    return 0;
  }
  if (verb == "issue") {
    if (!args.has("role") || !args.has("id")) throw Error("pki issue needs --role and --id");
    secure::IssueOptions o;
    o.role = args.str("role");
    o.id = args.str("id");
    o.hosts = split_list(args.str("hosts"));
    o.days = static_cast<int>(args.integer("days", 365, 1, 36500));
    const secure::Identity me = secure::pki_issue(dir, o);
    std::printf("issued %s '%s' (%s, serial %s, until %s): %s/issued/%s.pem\n", o.role.c_str(), o.id.c_str(),
                me.key.algorithm().c_str(), me.cert.serial().c_str(), date(me.cert.not_after()).c_str(), dir.c_str(),
                o.id.c_str());
    return 0;
  }
  if (verb == "sign") {
    if (!args.has("role")) throw Error("pki sign needs --role (node, kme or orchestrator)");
    const std::string request = read_file(pos[2], 1 << 20);
    secure::Certificate cert;
    try {
      cert = secure::pki_sign(dir, request, args.str("role"), static_cast<int>(args.integer("days", 365, 1, 36500)));
    } catch (const Error& e) {
      throw Error(pos[2] + ": " + e.what());
    }
    std::printf("signed %s '%s' (%s, serial %s, until %s): %s/issued/%s.pem\n"
                "send the site that file with %s/ca.pem and %s/crl.pem (its key never left it)\n",
                args.str("role").c_str(), cert.subject_id().c_str(), cert.public_key().algorithm().c_str(), cert.serial().c_str(),
                date(cert.not_after()).c_str(), dir.c_str(), cert.subject_id().c_str(), dir.c_str(), dir.c_str());
    return 0;
  }
  if (verb == "deny") {
    if (!args.has("id")) throw Error("pki deny needs --id");
    secure::pki_deny(dir, args.str("id"));
    std::printf("'%s' is on the deny list (%s/crl.pem)\n", args.str("id").c_str(), dir.c_str());
    return 0;
  }
  if (verb == "token") {
    if (!args.has("id")) throw Error("pki token needs --id (the site's name)");
    const double ttl = yaml::seconds(YAML::Node(args.str("expires", "1h")), "--expires", "expires", 1, 30 * 86400);
    const std::string token = secure::pki_token(dir, args.str("id"), ttl);
    std::printf("%s\n", token.c_str());
    std::printf("(a one-time enrolment token for '%s', good for %.0f s; give it to the site with %s/ca.pem)\n",
                 args.str("id").c_str(), ttl, dir.c_str());
    return 0;
  }
  if (verb == "serve") {
    if (!args.has("listen")) throw Error("pki serve needs --listen HOST:PORT");
    const Address at = parse_address(args.str("listen"), "--listen");
    net::Limits limits;
    limits.anonymous_clients = true;
    net::Server server(secure::load_identity(dir, args.str("as", "orchestrator")), secure::TrustStore::load(dir), limits);
    std::mutex mu;
    net::serve_enrolment(server, dir, [&](const std::string& line) {
      std::lock_guard lock(mu);
      std::printf("%s\n", line.c_str());
      std::fflush(stdout);
    });
    const sigset_t stop = block_stop_signals();
    const int port = server.listen(at.host, at.port);
    std::printf("enrolment service for the CA in %s on %s\n", dir.c_str(), Address{at.host, port}.text().c_str());
    std::fflush(stdout);
    wait_for_stop(stop);
    server.stop();
    return 0;
  }
  if (verb == "show") {
    const secure::TrustStore trust = secure::TrustStore::load(dir);
    std::printf("CA %s (%s), until %s, key %s\n", trust.ca().subject_id().c_str(),
                trust.ca().public_key().algorithm().c_str(), date(trust.ca().not_after()).c_str(),
                trust.ca().public_key().fingerprint().substr(0, 16).c_str());
    for (const auto& e : std::filesystem::directory_iterator(dir + "/issued")) {
      const std::string name = e.path().filename().string();
      if (name.size() < 5 || name.ends_with(".key.pem") || !name.ends_with(".pem")) continue;
      const auto cert = secure::Certificate::from_pem(read_file(e.path().string()));
      std::string state = "valid";
      try {
        trust.check(cert);
      } catch (const Error& err) {
        state = err.what();
      }
      std::printf("  %-12s %-20s serial %s  until %s  %s\n", cert.role().c_str(), cert.subject_id().c_str(),
                  cert.serial().substr(0, 12).c_str(), date(cert.not_after()).c_str(), state.c_str());
    }
    return 0;
  }
  throw Error("unknown pki command '" + verb + "' (init, issue, sign, deny, token, serve, show)");
}

}  // namespace gng::cli
