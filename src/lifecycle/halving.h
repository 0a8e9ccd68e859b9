#pragma once
// Successive halving: every candidate of a cycle is trained at the lowest fidelity rung, the best
// ⌈n/eta⌉ (or the rung's `keep`) go on to the next, and so on to the top rung. A rung's trainings
// run on a Trainer — in this process (LocalTrainer) or on the run's nodes (NodeTrainer) — and each
// result is handed back as it arrives, to be committed before the next one.
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "lifecycle/config.h"
#include "lifecycle/registry.h"
#include "nn/nn.h"

namespace gng {

// One training: a candidate's design at one rung's fidelity.
struct TrainTask {
  int candidate = 0, rung = 0;
  bool top = false;          // the highest rung: the trained model is kept (at `save`)
  std::string family, design_json;
  TrainBudget budget;
  EvalSettings eval;
  std::string save;          // where the model goes (top rung only), else empty
};

// Thrown by Trainer::train when the slot's worker went away (a node that stopped answering): the
// task goes back to the queue for the other slots. Any other exception means the design failed.
struct SlotLost : Error {
  using Error::Error;
};

// The seam between the halving schedule and where trainings run (a test double is allowed here).
class Trainer {
 public:
  virtual ~Trainer() = default;
  // How many trainings run at once for a rung of `tasks` trainings (0: none can run now).
  virtual int slots(std::size_t tasks) = 0;
  // Trains on slot `slot` (0 ≤ slot < slots()); called from one thread per slot. Returns the
  // metrics as the rung's scores should compare them.
  virtual Metrics train(int slot, const TrainTask& task) = 0;
  // Where slot `slot` runs, for progress lines and errors ("" in this process, the node's id).
  virtual std::string where(int slot) const { return ""; }
  // Brings lost slots back (between a rung's attempts, and after each rung). False: nothing can.
  virtual bool recover() { return false; }
};

// How many contenders go on to a rung: its `keep`, else ⌈contenders / eta⌉.
std::size_t rung_keep(const Rung& rung, std::size_t contenders, int eta);

// The best `keep` of `ids` by their score at `rung` (ids without one are dropped; ties keep order).
std::vector<int> best_of(const std::vector<int>& ids, const std::map<std::pair<int, int>, EvaluationRow>& evals, int rung,
                         std::size_t keep);

struct TrainResult {
  int candidate = 0;
  Metrics metrics;       // {{"failed", 1}} when the design failed to train
  std::string error;     // why it failed, else empty
  double seconds = 0;
  std::string where;      // Trainer::where of its slot
};

struct RungWork {
  std::deque<int> queue;                               // candidates still to train at this rung
  std::function<TrainTask(int candidate)> task;        // built when a slot takes it (its time cap follows the clock)
  std::function<bool()> time_left;                     // false: take no more tasks
  std::function<void(const TrainResult&)> done;        // each result, from the slot's thread
  std::function<void(int candidate, const std::string& why)> lost;  // a slot went away (why: SlotLost's message)
};

// Trains the queue on the trainer's slots, retrying on recovered slots (three attempts) when every
// slot was lost with work left. Returns false when the time ran out first; throws gng::Error when
// the slots keep failing.
bool train_rung(Trainer& trainer, RungWork work, int rung);

}  // namespace gng
