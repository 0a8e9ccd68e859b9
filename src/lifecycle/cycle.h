#pragma once
// The cycle: the order of a run's steps, its budgets (cycles, candidates, wall-clock across
// sessions) and its resume (a cycle whose "cycle-done" decision is in the registry is skipped; a
// step half done is read back from the registry and finished).
#include <iosfwd>
#include <string>

#include "lifecycle/config.h"

namespace gng {

// Runs (or continues) the loop in the run folder `dir`, whose registry and audit trail exist.
void run_cycles(const std::string& dir, RunConfig config, std::ostream& out);

}  // namespace gng
