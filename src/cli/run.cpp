// gng run / approve / status / nodes — the loop, its approval gate, its summary and its roster of sites.
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "audit/log.h"
#include "cli/commands.h"
#include "core/args.h"
#include "core/error.h"
#include "core/file.h"
#include "lifecycle/registry.h"
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
  const auto report = verify_trail(dir, secure::PublicKey::from_pem(read_file(key)));
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

int nodes(const std::vector<std::string>& argv) {
  Args args("gng nodes");
  args.flag("help", "show this help");
  args.parse(argv);
  if (args.has("help") || args.positional().size() != 1) {
    std::printf(
        "usage: gng nodes RUN_DIR\n\n"
        "The run's roster: every site that dialled in to it (local node processes and remote sites),\n"
        "with its certificate's fingerprint, where it called from, the data it reported (shape,\n"
        "classes, samples: the data itself never leaves the site), when it was first and last seen,\n"
        "and its state (up, lost, refused) with the reason. Reads the registry only.\n");
    return args.has("help") ? 0 : 2;
  }
  const std::string dir = args.positional()[0];
  const Registry reg((fs::path(dir) / "registry.db").string(), false, true);
  const auto sites = reg.sites();
  if (sites.empty()) {
    std::printf("no site has dialled in to %s\n", dir.c_str());
    return 0;
  }
  const auto when = [](double t) {
    char buf[32];
    const time_t tt = static_cast<time_t>(t);
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", std::gmtime(&tt));
    return std::string(buf);
  };
  std::printf("%-12s %-8s %-22s %-26s %-19s %-19s %s\n", "site", "state", "from", "data", "first seen (UTC)",
              "last seen (UTC)", "certificate");
  for (const auto& r : sites) {
    std::string data = "?";
    try {
      const auto j = nlohmann::json::parse(r.data);
      std::string shape;
      for (const auto& d : j.at("input_shape")) {
        if (!shape.empty()) shape += 'x';
        shape += std::to_string(d.get<long>());
      }
      data = shape + ", " + std::to_string(j.at("classes").get<int>()) + " cl, " +
             std::to_string(j.at("train_samples").get<long>() + j.at("validation_samples").get<long>()) + " samples";
    } catch (const nlohmann::json::exception&) {
      data = "(unreadable)";
    }
    std::printf("%-12s %-8s %-22s %-26s %-19s %-19s %s\n", r.id.c_str(), r.state.c_str(), r.address.c_str(), data.c_str(),
                when(r.first_seen).c_str(), when(r.last_seen).c_str(), r.fingerprint.substr(0, 16).c_str());
    if (!r.why.empty() && r.state != "up") std::printf("%12s %s\n", "", r.why.c_str());
  }
  return 0;
}

}  // namespace gng::cli
