#pragma once
// Generate and Select: a seeded search over binary designs that alternates fitting the quadratic
// surrogate to everything observed, drawing a Thompson sample of it as a QUBO (plus one-hot
// penalties whose weight provably exceeds the sample's range), and asking a sampler for its best
// distinct bitstrings; the best one that decodes and was not seen before is evaluated next.
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/rng.h"
#include "qubo/qubo.h"

namespace gng {

struct SearchOptions {
  int budget = 100;           // distinct designs evaluated, including the initial ones
  uint64_t seed = 1;
  int initial = 10;           // random valid designs before the first fit
  int batch = 1;              // designs proposed per fit (one Thompson sample each)
  std::string sampler = "tabu";
};

struct Observation {
  Bits x;
  double score;  // maximised
};

// f(x) + P·Σ_g (Σ_{i∈g} x_i − 1)² with P = 1 + Σ|a_i| + Σ|b_ij|: every violation costs at least P,
// more than f can vary, so the minimum is always valid.
Qubo with_one_hot_penalty(const Qubo& f, const std::vector<std::vector<uint32_t>>& groups);

// Normal scores: the score of rank k (0-based, ties sharing their mean rank) among m becomes
// Φ⁻¹((k + ½)/m). The surrogate is fitted to these: it then models the ordering of designs, not
// the size of their failures — a few disastrous designs (NAS spaces have many) would otherwise
// dominate the least-squares fit and blur the good region (NB-201 regret at 100: 0.53 → 0.27).
std::vector<double> normal_scores(const std::vector<double>& y);

// The constraints of a design space as the search sees them.
struct Feasibility {
  std::vector<std::vector<uint32_t>> groups;         // at most one bit set in each (the surrogate's
                                                     // features leave out their within-group pairs)
  std::vector<std::vector<uint32_t>> one_hot;        // exactly one bit set in each, in every valid
                                                     // design (QAOA's XY mixer keeps to them)
  std::function<Qubo(const Qubo&)> penalise;         // objective + penalties that exceed its range
  std::function<bool(const Bits&)> valid;            // exact validity
  std::function<Bits(Rng&)> random;                  // a random valid design
};
// Exactly one bit in each group, nothing else.
Feasibility one_hot_feasibility(std::size_t n, std::vector<std::vector<uint32_t>> groups);

class QuadraticSurrogate;
// Generate from Select: `count` designs, each the best valid design not yet in `tried` among a
// sampler's best answers to one Thompson sample of `model` (penalised), or a random valid untried
// design when the sample's optima are all known. Adds them to `tried`; returns fewer when the space
// seems exhausted.
std::vector<Bits> propose(const QuadraticSurrogate& model, const Feasibility& f, std::set<Bits>& tried, int count,
                          Rng& rng, const std::string& sampler);

// evaluate(x) returns the score of a valid design, or nullopt if the design cannot be evaluated
// (it is then never proposed again). Returns the observations in evaluation order.
std::vector<Observation> surrogate_search(std::size_t n, const Feasibility& f,
                                          const std::function<std::optional<double>(const Bits&)>& evaluate,
                                          const SearchOptions& o);

}  // namespace gng
