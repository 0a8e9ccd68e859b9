#pragma once
// The two Trainers of the halving schedule (halving.h): one trains in this process on worker
// threads, one dispatches each training to the run's nodes over PQ-TLS.
#include <functional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "lifecycle/halving.h"

namespace gng {

class NodePool;

// Trains on `workers` threads here, on the orchestrator's own training and validation splits.
class LocalTrainer : public Trainer {
 public:
  LocalTrainer(const Dataset& train, const Dataset& val, int workers) : train_(train), val_(val), workers_(workers) {}
  int slots(std::size_t tasks) override;
  Metrics train(int slot, const TrainTask& task) override;

 private:
  const Dataset& train_;
  const Dataset& val_;
  int workers_;
  bool lone_ = false;  // a rung of one training: it gets every worker's core
};

// Trains on the run's nodes, one slot per node that is up. A top-rung model comes back sealed and is
// written beside the run; `measure` scores it on the orchestrator's validation set, as every finalist
// and federated model is, rather than on the node's own share: the scores that select compare.
class NodeTrainer : public Trainer {
 public:
  using Measure = std::function<Metrics(const std::string& model, const std::string& design_json)>;
  NodeTrainer(NodePool& nodes, std::string run, Measure measure)
      : nodes_(nodes), run_(std::move(run)), measure_(std::move(measure)) {}
  int slots(std::size_t tasks) override;
  Metrics train(int slot, const TrainTask& task) override;
  std::string where(int slot) const override;
  bool recover() override;

 private:
  NodePool& nodes_;
  std::string run_;
  Measure measure_;
  std::vector<std::size_t> active_;  // slot → node index, as of slots()
};

}  // namespace gng
