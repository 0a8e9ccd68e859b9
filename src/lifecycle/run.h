#pragma once
// A run of the loop: generate → train (successive halving over the policy's fidelity rungs) →
// evaluate → select (surrogate refit, promotion through the approval gate) → federate → deploy &
// observe, each step committed to the run's registry before the next starts. A run killed at any
// moment resumes from its folder and loses at most the trainings that were in flight.
// (docs/architecture.md: the parts and their seams.)
#include <iosfwd>
#include <string>
#include <vector>

#include "audit/log.h"

namespace gng {

// Creates runs_dir/<name>-<UTC time>/ with the registry (the config, space and policy texts stored
// in it), runs the loop, and returns the run's folder. Progress lines go to `out`.
std::string start_run(const std::string& config_path, const std::string& runs_dir, std::ostream& out);

// Continues a run from its folder with the settings stored in its registry; a finished run only
// re-reports. Throws gng::Error when the folder holds no registry.
void resume_run(const std::string& run_dir, std::ostream& out);

// Records an operator's approval of a candidate for promotion (manual gate). Throws gng::Error when
// the candidate does not exist, has not been evaluated at the highest fidelity, or breaks the
// policy's safety constraints — approval cannot override the policy.
void approve_candidate(const std::string& run_dir, int candidate, const std::string& by);

// What each site keeps of the run's latest signed audit head (a "witness" entry in its own trail):
// {"run": RUN_ID, "head": HEAD_JSON}. And the heads of run `run_id` that the sites whose folders are
// `site_dirs` kept; gng::Error naming a trail that holds none, or a witness entry that is not one.
std::string witness_of(const std::string& run_id, const std::string& head_json);
std::vector<audit::TreeHead> witnessed_heads(const std::string& run_id, const std::vector<std::string>& site_dirs);

// DIR/audit.db verified with `key` against every head kept outside it (audit/log.h): DIR's
// audit-head.json (a log with entries and no such file fails), the registry's copy, and `more` (the
// sites' copies: gng audit verify --witness). gng run's closing verdict, and gng audit verify's.
audit::VerifyReport verify_trail(const std::string& dir, const secure::PublicKey& key, std::vector<audit::TreeHead> more = {});

}  // namespace gng
