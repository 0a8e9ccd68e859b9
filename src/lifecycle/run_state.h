#pragma once
// What every step of a run shares: its folder, its settings and policy, its registry and audit
// trail, its clock (the wall-clock budget counts every session of the run) and its progress log.
// Every decision goes to the audit trail first, then to the registry, then to the log, so the trail
// never lacks a step the registry holds (a kill in between leaves an audited step that the resumed
// run does again).
#include <chrono>
#include <functional>
#include <mutex>
#include <ostream>
#include <string>

#include "audit/log.h"
#include "lifecycle/config.h"
#include "lifecycle/registry.h"

namespace gng {

// The run's ML-DSA-65 key for its audit trail's tree heads (public half: audit::kKeyFile).
constexpr const char* kAuditKey = "audit-key.pem";

// Signs the trail's head with the run's key, when the run has one, and keeps a copy of the head
// outside the trail: in the registry's meta "audit_head" (the trail itself writes audit::kHeadFile).
// Returns the head as JSON ("" without a key).
std::string sign_audit_head(audit::AuditLog& log, const std::string& run_dir, Registry& reg);

std::string fixed(double v, int digits);  // v with `digits` decimals
std::string clock_text(double seconds);    // m:ss

class RunState {
 public:
  // Opens the run's registry and audit trail in `dir`; the policy is the stored one with the
  // objective weights that telemetry changed before a resume.
  RunState(const std::string& dir, RunConfig config, std::ostream& out);

  const std::string dir;
  const RunConfig c;
  Policy policy;       // the objective weights may change with telemetry
  const Policy base;   // the policy as written: telemetry reactions are bounded relative to it
  Registry reg;
  audit::AuditLog audit;
  std::ostream& out;
  std::mutex mutex;    // guards reg, audit and out across the training threads
  // Told each newly signed audit head (JSON), under `mutex`: the sites keep it (NodePool).
  std::function<void(const std::string& head)> on_audit_head;

  void begin_session();                 // counts this process's time from now
  int session() const { return session_; }
  double elapsed() const;               // this session's seconds
  double used() const;                  // the run's seconds, over every session
  double left() const { return policy.wall_clock_s - used(); }
  std::string id() const;               // the run's folder name

  // Audits, commits (with this session's time) and prints a decision.
  void note(int cycle, const std::string& kind, const std::string& text);
  // Commits this session's time (inside a caller's transaction or alone).
  void save_time();
  // Prints a progress line with the run's clock.
  void print(const std::string& line);

  std::string pki_dir() const;                              // the operator's (c.pki) or the run's own pki/
  std::string model_path(int candidate) const;              // models/c<id>.pt
  std::string federated_path(int candidate, int cycle) const;  // models/c<id>-fed<cycle + 1>.pt

 private:
  int session_ = 0;
  double used_before_ = 0;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

}  // namespace gng
