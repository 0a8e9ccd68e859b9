#pragma once
// A federated strategy, after Flower's Strategy: it says what every site does in a round
// (configure_round, Flower's configure_fit) and turns the sites' results into the new global state
// (aggregate, Flower's aggregate_fit). It is the one way gng aggregates; make_strategy builds one
// from a StrategyConfig. The rules:
//   fedavg        mean weighted by samples (McMahan et al. 2017); a batch-norm running_var is
//                 pooled with its running_mean (the variance of all sites' data, not the mean of
//                 their variances), here and in Multi-Krum's mean
//   fedprox       FedAvg's aggregation; each site adds mu/2·‖w − w_global‖² to its loss
//                 (Li et al. 2020), which configure_round tells it
//   trimmed_mean  per coordinate: drop the ⌊trim·n⌋ largest and smallest, mean of the rest,
//                 unweighted (Yin et al. 2018)
//   median        per coordinate, unweighted; the mean of the two middle values for even n
//                 (Yin et al. 2018)
//   krum          Blanchard et al. 2017: the result with the least sum of squared distances to its
//                 n − f − 2 nearest others; with multi = m > 1, the samples-weighted mean of the
//                 min(m, n − f) best (Multi-Krum). Needs n ≥ 2f + 3.
// A robust rule with mu > 0 aggregates by that rule and still sends mu to the sites.
#include <memory>
#include <span>
#include <string>

#include "fed/fed.h"

namespace gng::fed {

// What every site is asked to do in one round (Flower's configure_fit).
struct RoundConfig {
  double mu = 0;  // FedProx: weight of the proximal term mu/2·‖w − w_global‖² in each site's loss (0: none)
};

class Strategy {
 public:
  virtual ~Strategy() = default;
  virtual std::string name() const = 0;  // "fedavg", "fedprox", "trimmed_mean", "median", "krum"
  // The instructions for round `round` (1-based).
  virtual RoundConfig configure_round(int round) const;  // default: {mu_}
  // The new global state from the sites' results (Flower's aggregate_fit): the first result's names and
  // shapes, computed in double and rounded to float, `from` empty, `samples` the sum over the results
  // that contributed. Throws gng::Error on no results, on a result that fails check_update against the
  // first, or on too few results for the rule.
  virtual Update aggregate(std::span<const Update> results) const = 0;

 protected:
  double mu_ = 0;
};

struct StrategyConfig {
  std::string rule = "fedavg";  // fedavg | trimmed_mean | median | krum
  double mu = 0;                // > 0: FedProx (with fedavg the strategy is "fedprox"; with a robust rule, that rule's name, sites still get mu)
  double trim = 0.2;            // trimmed_mean: fraction cut from each end, in [0, 0.5)
  int byzantine = 1;            // krum: f, attackers tolerated (>= 0)
  int multi = 1;                // krum: m >= 1; aggregate averages the min(m, n − f) best (Multi-Krum)
};

// Throws gng::Error on an unknown rule or a setting out of range (message names the rule and the value).
// Only the chosen rule's settings are checked (trim for trimmed_mean, byzantine and multi for krum);
// mu must be finite and >= 0 for every rule.
std::unique_ptr<Strategy> make_strategy(const StrategyConfig& c);

}  // namespace gng::fed
