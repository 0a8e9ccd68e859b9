#pragma once
// Generate: a cycle's new designs. Until four candidates have a lowest-fidelity score they are
// random feasible designs; after that each is a Thompson sample of the quadratic surrogate fitted to
// every lowest-fidelity score so far (Select → Generate), minimised as a QUBO by the run's sampler.
#include <string>
#include <vector>

#include "core/rng.h"
#include "lifecycle/config.h"
#include "lifecycle/registry.h"
#include "lifecycle/run_state.h"
#include "nn/nn.h"
#include "search/search.h"
#include "space/space.h"

namespace gng {

std::string bits_text(const Bits& x);         // "0110…"
Bits parse_bits(const std::string& s);

// The space as the run uses it: the policy's cost limits added to its budgets, costs from nn.
SearchSpace load_space(const RunConfig& c, const Policy& p, const InputShape& in);
// The space's encoding rules as the samplers and the surrogate see them (refers to `space`).
Feasibility feasibility(const SearchSpace& space);

struct Proposal {
  std::vector<Bits> designs;  // untried, valid, at most `count`
  std::string origin;         // how they were made, as the registry records it
};
// `count` new designs given the run's candidates and evaluations so far; deterministic for `rng`.
Proposal propose_designs(const std::vector<CandidateRow>& candidates, const std::vector<EvaluationRow>& evaluations,
                         const SearchSpace& space, const Feasibility& feasible, int count, Rng& rng,
                         const std::string& sampler);

// The cycle's candidate ids: read back when a killed run had generated them, else proposed now and
// committed together with the decision. Empty when the candidate budget is spent.
std::vector<int> generate(RunState& run, const SearchSpace& space, const Feasibility& feasible, int cycle);

}  // namespace gng
