#include "lifecycle/run_state.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/file.h"
#include "secure/crypto.h"

namespace gng {

namespace fs = std::filesystem;

std::string sign_audit_head(audit::AuditLog& log, const std::string& run_dir, Registry& reg) {
  const std::string key = (fs::path(run_dir) / kAuditKey).string();
  if (!fs::exists(key)) return "";
  const std::string head = audit::head_json(log.sign_head(secure::SigningKey::from_pem(read_file(key))));
  reg.set_meta("audit_head", head);
  return head;
}

std::string fixed(double v, int digits) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(digits) << v;
  return s.str();
}

std::string clock_text(double seconds) {
  const long s = std::max(0L, std::lround(seconds));
  char buf[32];
  snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

namespace {
Policy stored_policy(const RunConfig& c) {
  return Policy::from_yaml(c.policy_text, c.policy_source.empty() ? "<policy>" : c.policy_source);
}
}  // namespace

RunState::RunState(const std::string& dir_, RunConfig config, std::ostream& out_)
    : dir(dir_),
      c(std::move(config)),
      policy(stored_policy(c)),
      base(policy),
      reg((fs::path(dir_) / "registry.db").string(), true),
      audit((fs::path(dir_) / audit::kLogFile).string(), true),
      out(out_) {
  if (const auto w = reg.meta("objectives"))  // weights the telemetry changed before a resume
    policy.objectives = nlohmann::json::parse(*w).get<std::map<std::string, double>>();
  fs::create_directories(fs::path(dir) / "models");
}

void RunState::begin_session() {
  session_ = reg.begin_session();
  used_before_ = reg.used_seconds();
  started_ = std::chrono::steady_clock::now();
}

double RunState::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
}

double RunState::used() const { return used_before_ + elapsed(); }

std::string RunState::id() const { return fs::path(dir).filename().string(); }

void RunState::note(int cycle, const std::string& kind, const std::string& text) {
  std::lock_guard lock(mutex);
  audit.append("decision", "orchestrator", {{"cycle", cycle}, {"kind", kind}, {"text", text}});
  if (kind == "cycle-done" || kind == "end")
    if (const std::string head = sign_audit_head(audit, dir, reg); !head.empty() && on_audit_head) on_audit_head(head);
  reg.add_decision(used(), cycle, kind, text);
  reg.set_session_seconds(session_, elapsed());
  out << "[" << clock_text(used()) << "] " << kind << ": " << text << "\n" << std::flush;
}

void RunState::save_time() { reg.set_session_seconds(session_, elapsed()); }

void RunState::print(const std::string& line) { out << "[" << clock_text(used()) << "] " << line << "\n" << std::flush; }

std::string RunState::pki_dir() const { return c.pki.empty() ? (fs::path(dir) / "pki").string() : c.pki; }

std::string RunState::model_path(int candidate) const {
  return (fs::path(dir) / "models" / ("c" + std::to_string(candidate) + ".pt")).string();
}

std::string RunState::federated_path(int candidate, int cycle) const {
  return (fs::path(dir) / "models" / ("c" + std::to_string(candidate) + "-fed" + std::to_string(cycle + 1) + ".pt")).string();
}

}  // namespace gng
