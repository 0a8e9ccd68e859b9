#pragma once
// Federate: a model refined across the run's nodes, round by round, through a fed::Strategy (Flower's
// shape: the strategy configures each round and aggregates the answers). Each node trains the global
// state on its own shard; the states come back sealed; a round needs answers from a quorum of the
// nodes and enough for the strategy, else the nodes are restarted and the round repeated (four
// tries). Every aggregate is scored on the orchestrator's validation set. Nothing is promoted here.
#include <functional>
#include <optional>
#include <string>

#include "fed/strategy.h"
#include "lifecycle/nodes.h"
#include "lifecycle/promotion.h"
#include "lifecycle/run_state.h"

namespace gng {

// A model state's metrics on the orchestrator's validation set.
using MeasureState = std::function<Metrics(const std::string& design_json, const fed::Update& state)>;

// Refines the model at `base` (candidate's design) for the run's rounds; saves the last aggregate at
// run.federated_path(candidate, cycle). Empty when no round completed (the wall-clock budget).
std::optional<FederatedModel> federate(RunState& run, NodePool& nodes, const fed::Strategy& strategy,
                                       const MeasureState& measure, const std::string& family, int cycle, int candidate,
                                       const std::string& design_json, const std::string& base);

// The strategy the run file's `federation:` names.
std::unique_ptr<fed::Strategy> strategy_of(const RunConfig::Federation& f);

// The "federated" decision, written once the caller has acted on the result (a run killed in
// between federates again rather than losing the result): one per cycle.
void note_federated(RunState& run, int cycle, int candidate, const std::optional<FederatedModel>& f,
                    const std::string& outcome);

}  // namespace gng
