#include "lifecycle/promotion.h"

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/file.h"
#include "secure/crypto.h"

namespace gng {

namespace fs = std::filesystem;

Challenger best_safe(const std::vector<EvaluationRow>& evals, int top, const std::set<int>& refused, const Policy& policy) {
  Challenger best;
  double best_score = -1e300;
  std::map<int, const EvaluationRow*> at_top;  // by candidate, as the registry orders them
  for (const auto& e : evals)
    if (e.rung == top) at_top[e.candidate] = &e;
  for (const auto& [id, e] : at_top) {
    if (e->model.empty() || refused.count(id)) continue;
    if (const auto why = policy.safety_violation(e->metrics); !why.empty()) {
      best.unsafe += " c" + std::to_string(id) + " (" + why + ")";
      continue;
    }
    if (e->score > best_score) best.candidate = id, best.score = best_score = e->score, best.model = e->model;
  }
  return best;
}

bool improves(const FederatedModel& f, const Policy& policy) {
  return f.score > f.before && policy.safety_violation(f.metrics).empty();
}

Offer challenger_offer(const Challenger& c, const std::optional<FederatedModel>& f, const Policy& policy) {
  Offer o{c.model, c.score, false, {}};
  if (!f) return o;
  o.score = f->before;  // its top-rung model measured as the promoted one is (idle, the orchestrator's set)
  if (improves(*f, policy)) o = {f->path, f->score, true, f->metrics};
  return o;
}

std::string promoted_source(const PromotionRow& p, const RunState& run, const std::string& top_model) {
  return p.federated ? run.federated_path(p.candidate, p.cycle) : top_model;
}

void promote(RunState& run, int cycle, int candidate, const Offer& offer, std::string approved_by) {
  std::string by = approved_by.empty() ? "policy (auto)" : approved_by;
  if (approved_by.empty() && run.policy.manual_approval) {
    run.note(cycle, "approval", "awaiting approval of c" + std::to_string(candidate) + " (score " + fixed(offer.score, 4) +
                                    "): run  gng approve " + run.dir + " " + std::to_string(candidate));
    while (!run.reg.approved(candidate)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      run.save_time();
    }
    by = "operator";
  }
  const std::string dest = (fs::path(run.dir) / "promoted.pt").string();
  copy_file_atomic(offer.model, dest);
  copy_file_atomic(offer.model + ".json", dest + ".json");
  std::lock_guard lock(run.mutex);
  run.audit.append("promotion", "orchestrator",
                   {{"candidate", candidate}, {"cycle", cycle}, {"approved_by", by + (offer.federated ? "; federated" : "")},
                    {"federated", offer.federated}, {"score", offer.score}, {"model", dest},
                    {"model_sha256", secure::hex(secure::sha256(secure::view(read_file(dest))))}});
  run.reg.begin();
  run.reg.promote({candidate, cycle, by, dest, offer.federated, offer.federated ? offer.metrics : Metrics{}});
  const std::string what = "c" + std::to_string(candidate) + (offer.federated ? "'s federated model" : "");
  const std::string shown = by + (offer.federated ? "; federated" : "");
  run.reg.add_decision(run.used(), cycle, "promote",
                       what + " promoted (score " + fixed(offer.score, 4) + ", approved by " + shown + ") → " + dest);
  run.save_time();
  run.reg.commit();
  run.print("promote: " + what + " (score " + fixed(offer.score, 4) + ", " + shown + ")");
}

}  // namespace gng
