#include "lifecycle/trainers.h"

#include <algorithm>

#include "core/file.h"
#include "lifecycle/nodes.h"

namespace gng {

int LocalTrainer::slots(std::size_t tasks) {
  lone_ = tasks == 1;
  return std::min<int>(workers_, static_cast<int>(tasks));
}

Metrics LocalTrainer::train(int, const TrainTask& t) {
  TrainBudget b = t.budget;
  if (lone_) b.threads = workers_;
  return train_and_evaluate(t.family, Design::from_json(t.design_json), train_, val_, b, t.eval, t.save);
}

int NodeTrainer::slots(std::size_t) {
  nodes_.refresh();  // a site that joined since takes part from this rung
  active_.clear();
  for (std::size_t i = 0; i < nodes_.size(); ++i)
    if (nodes_.up(i)) active_.push_back(i);
  return static_cast<int>(active_.size());
}

std::string NodeTrainer::where(int slot) const { return nodes_.id(active_.at(slot)); }

Metrics NodeTrainer::train(int slot, const TrainTask& t) {
  const std::size_t i = active_.at(slot);
  node::TrainJob job{run_, t.candidate, t.family, t.design_json, t.budget, t.eval, t.top};
  node::Trained got;
  try {
    got = nodes_.client(i).train(job);
  } catch (const net::Unreachable& e) {
    nodes_.mark_down(i);
    throw SlotLost(nodes_.id(i) + " is down (" + e.what() + ")");
  }
  if (!t.top) return got.metrics;
  // The sealed model arrived and verified: keep it beside the run, and score it as every finalist is.
  write_file_atomic(t.save + ".json", got.model_json);
  write_file_atomic(t.save, got.weights);
  Metrics m = measure_(t.save, t.design_json);
  for (const char* k : {"train_s", "epochs"})
    if (const auto it = got.metrics.find(k); it != got.metrics.end()) m[k] = it->second;
  return m;
}

bool NodeTrainer::recover() {
  nodes_.restart_down();
  return true;
}

}  // namespace gng
