#pragma once
// Select: which model the run promotes. The rules are pure functions over registry rows (tested
// without a run); promote() acts on them: the approval gate, the copy to promoted.pt, the audit
// entry with the model's SHA-256 and the registry row, in that order.
//
// The challenger rule: the best safe candidate at the top rung (not refused before) challenges the
// promoted model. Where the run federates, the challenger is federated first, as the promoted model
// was (a model refined on every shard is not replaced by one that was not); it brings its federated
// model when that scores above its own top-rung model and is safe. It is promoted only when it then
// scores above the promoted model as that is now; otherwise it is refused for good.
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "lifecycle/config.h"
#include "lifecycle/registry.h"
#include "lifecycle/run_state.h"
#include "nn/nn.h"

namespace gng {

struct Challenger {
  int candidate = -1;    // -1: no candidate is promotable
  double score = 0;
  std::string model;     // its top-rung model
  std::string unsafe;    // the candidates the policy's safety constraints rule out: " c3 (why) c5 (why)"
};
// The best safe top-rung candidate with a model that is not in `refused` (the first of equal scores).
Challenger best_safe(const std::vector<EvaluationRow>& evals, int top, const std::set<int>& refused, const Policy& policy);

// A candidate's model refined by federation (lifecycle/federation.h).
struct FederatedModel {
  Metrics metrics;       // of the last aggregate, on the orchestrator's validation set
  double score = 0;      // its score
  double before = 0;     // the score of the model it started from, measured the same way
  std::string path;      // models/c<candidate>-fed<cycle>.pt
};
// True when the federated model scores above the model it started from and is safe.
bool improves(const FederatedModel& f, const Policy& policy);

// What a challenger brings: its federated model (when `improves`) or its own top-rung model, scored
// as the promoted model is measured (f->before when it was federated, else its top-rung score).
struct Offer {
  std::string model;
  double score = 0;
  bool federated = false;
  Metrics metrics;       // the federated model's, when federated
};
Offer challenger_offer(const Challenger& c, const std::optional<FederatedModel>& f, const Policy& policy);

// The file the promoted model was copied from (promoted.pt may be half-replaced by a run killed
// while promoting): its federated model of that cycle, or its top-rung model.
std::string promoted_source(const PromotionRow& p, const RunState& run, const std::string& top_model);

// Promotes `offer` for `candidate`: through the approval gate unless `approved_by` is given (a
// model already approved), waiting for `gng approve` when the gate is manual.
void promote(RunState& run, int cycle, int candidate, const Offer& offer, std::string approved_by = "");

}  // namespace gng
