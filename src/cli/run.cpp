// gng run / approve / status — the loop on one machine, its approval gate and its summary.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "audit/log.h"
#include "cli/commands.h"
#include "core/args.h"
#include "core/error.h"
#include "core/file.h"
#include "lifecycle/run.h"
#include "lifecycle/summary.h"
#include "report/report.h"

namespace gng::cli {

namespace {

namespace fs = std::filesystem;

std::string report_path(const std::string& dir) { return (fs::path(dir) / "report.html").string(); }

// The run's audit trail, verified (gng audit verify gives the detail): prints its verdict and
// returns whether it holds (true for a run that keeps none).
bool print_audit_verdict(const std::string& dir) {
  const std::string key = dir + "/" + audit::kKeyFile;
  if (!std::filesystem::exists(dir + "/" + audit::kLogFile) || !std::filesystem::exists(key)) return true;
  const auto report = audit::AuditLog(dir + "/" + audit::kLogFile, false).verify(secure::PublicKey::from_pem(read_file(key)));
  std::cout << "audit log: " << report.line() << "\n";
  return report.ok;
}

}  // namespace

int run(const std::vector<std::string>& argv) {
  Args args("gng run");
  args.option("resume", "continue the run in this folder (runs/<id>)")
      .option("runs", "where new runs are created (default: runs)")
      .flag("help", "show this help");
  args.parse(argv);
  if (args.has("help")) {
    std::printf("usage: gng run CONFIG [--runs DIR]\n       gng run --resume runs/<id>\n\n%s", args.help().c_str());
    return 0;
  }
  std::string dir;
  if (args.has("resume")) {
    if (!args.positional().empty()) throw Error("give either CONFIG or --resume DIR, not both");
    dir = args.str("resume");
    resume_run(dir, std::cout);
  } else {
    if (args.positional().size() != 1) throw Error("usage: gng run CONFIG (a run file such as examples/fashion-mnist.yaml)");
    dir = start_run(args.positional()[0], args.has("runs") ? args.str("runs") : "runs", std::cout);
  }
  const ReportData r = summarize_run(dir);
  write_report(report_path(dir), r);
  std::cout << "\n" << render_text(r) << "\nreport: " << report_path(dir) << "\n";
  const bool trail_ok = print_audit_verdict(dir);
  const std::string promoted = dir + "/promoted.pt";
  if (std::filesystem::exists(promoted))
    std::cout << "promoted model: " << promoted << " (serve it: gng serve " << promoted << ")\n";
  return trail_ok ? 0 : 1;
}

int approve(const std::vector<std::string>& argv) {
  Args args("gng approve");
  args.option("by", "who approves (default: $USER)").flag("help", "show this help");
  args.parse(argv);
  if (args.has("help") || args.positional().size() != 2) {
    std::printf("usage: gng approve RUN_DIR CANDIDATE\n\n%s", args.help().c_str());
    return args.has("help") ? 0 : 2;
  }
  const std::string& id = args.positional()[1];
  const std::string digits = id.substr(id[0] == 'c' ? 1 : 0);
  if (digits.empty() || digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos)
    throw Error("CANDIDATE must be a candidate id such as 7 or c7, got '" + id + "'");
  const char* user = std::getenv("USER");
  approve_candidate(args.positional()[0], std::stoi(digits), args.has("by") ? args.str("by") : (user ? user : "operator"));
  std::printf("approved c%s in %s\n", digits.c_str(), args.positional()[0].c_str());
  return 0;
}

int status(const std::vector<std::string>& argv) {
  Args args("gng status");
  args.flag("help", "show this help");
  args.parse(argv);
  if (args.has("help") || args.positional().size() != 1) {
    std::printf("usage: gng status RUN_DIR\n");
    return args.has("help") ? 0 : 2;
  }
  const std::string dir = args.positional()[0];
  std::cout << render_text(summarize_run(dir));
  return print_audit_verdict(dir) ? 0 : 1;
}

}  // namespace gng::cli
