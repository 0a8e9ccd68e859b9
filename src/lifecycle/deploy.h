#pragma once
// Deploy & observe: the promoted model (when it changed) goes sealed to every node, which serves it;
// at the start of the next cycle the deployed model's telemetry from every node (the worst of each
// signal) shapes the objective, within the policy's telemetry bounds, and every change is audited.
#include <string>
#include <vector>

#include "lifecycle/config.h"
#include "lifecycle/nodes.h"
#include "lifecycle/run_state.h"

namespace gng {

// The worst of each signal over the nodes' telemetry snapshots (serve/serve.h's JSON): the largest
// drift and p99 latency, the lowest feedback accuracy. gng::Error on a snapshot that is not JSON.
Policy::Telemetry worst_telemetry(const std::vector<std::string>& snapshots);

// Sends the promoted model to every node that is up unless `deployed` (its digest) already is;
// updates `deployed` when at least one node accepted it (else the next cycle tries again).
void deploy(RunState& run, NodePool& nodes, int cycle, std::string& deployed);

// Pulls the deployed model's telemetry and lets the policy react (Policy::react).
void observe(RunState& run, NodePool& nodes, int cycle, const std::string& deployed);

}  // namespace gng
