// gng — the Global Neural Grid. Entry point: dispatches to one subcommand.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"

namespace {

constexpr const char* kUsage = R"(gng — the Global Neural Grid

usage: gng COMMAND [OPTIONS]

commands:
  run CONFIG     the loop: generate -> train -> evaluate -> select, with policy, registry and report
  run --resume DIR   continue a run (after a crash or kill) from runs/<id>
  approve DIR C  approve candidate C for promotion (policy with a manual approval gate)
  status DIR     summary of a run
  nodes DIR      the run's roster: the sites that dialled in, their data, state, first and last seen
  solve FILE     minimise a QUBO / Max-Cut / BQP instance with a sampler
  qaoa FILE      QAOA on a classical state-vector simulator, with OpenQASM 3 export
  search         the surrogate-QUBO search on a tabular benchmark (--benchmark nb201)
  node           one site: dials in to the orchestrator, trains on its own data; node init enrols it
  kme            an ETSI GS QKD 014 key server fed by simulated BB84 links, over PQ-TLS
  pki            the CA: init, issue node/kme/orchestrator certificates, sign requests, deny, show
  qkd simulate   BB84 QKD link simulator (a model): key rate over distance vs the asymptotic bound
  audit SUB DIR  the Merkle audit log: verify (names the first bad entry), show, proof --index I
  serve MODEL    HTTP inference endpoint for a trained model: /v1/predict, /metrics, telemetry, drift
  doctor         check the environment (OpenSSL >= 3.5 with ML-KEM/ML-DSA, one libcrypto, OpenBLAS)
  version        print the version

Run 'gng COMMAND --help' for a command's options.
)";

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  const std::string cmd = args[0];
  args.erase(args.begin());
  try {
    if (cmd == "solve") return gng::cli::solve(args);
    if (cmd == "qaoa") return gng::cli::qaoa(args);
    if (cmd == "search") return gng::cli::search(args);
    if (cmd == "run") return gng::cli::run(args);
    if (cmd == "approve") return gng::cli::approve(args);
    if (cmd == "status") return gng::cli::status(args);
    if (cmd == "nodes") return gng::cli::nodes(args);
    if (cmd == "node") return gng::cli::node(args);
    if (cmd == "kme") return gng::cli::kme(args);
    if (cmd == "pki") return gng::cli::pki(args);
    if (cmd == "qkd") return gng::cli::qkd(args);
    if (cmd == "audit") return gng::cli::audit(args);
    if (cmd == "doctor") return gng::cli::doctor(args);
    if (cmd == "serve") return gng::cli::serve(args);
    if (cmd == "version" || cmd == "--version") {
      std::puts("gng 0.1.0");
      return 0;
    }
    std::fprintf(stderr, "gng: unknown command '%s'\n\n%s", cmd.c_str(), kUsage);
    return 2;
  } catch (const gng::Error& e) {
    std::fprintf(stderr, "gng %s: error: %s\n", cmd.c_str(), e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gng %s: internal error: %s\n", cmd.c_str(), e.what());
    return 3;
  }
}
