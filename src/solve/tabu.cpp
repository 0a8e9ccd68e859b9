// One-flip tabu search. Each move flips the variable with the lowest Δ among those not tabu (ties
// broken at random); a tabu move is still allowed when it would beat the best energy of the read
// (aspiration). A flipped variable stays tabu for a randomised tenure. After `stall` moves without
// improvement the search restarts from its best state with a random fraction of the bits flipped
// (elite perturbation, as in iterated tabu search). Δs are kept incrementally: O(n + degree) a move.
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/rng.h"
#include "solve/run.h"
#include "solve/sampler.h"

namespace gng {
namespace {

class TabuSampler final : public Sampler {
 public:
  std::string_view name() const override { return "tabu"; }

  SampleSet sample(const Qubo& q, const SampleOptions& o) const override {
    const std::size_t n = q.size();
    if (n == 0) throw Error("tabu: empty QUBO");
    const int64_t moves = o.steps > 0 ? o.steps : std::max<int64_t>(100000, 200 * static_cast<int64_t>(n));
    const int64_t tenure_base = std::max<int64_t>(1, static_cast<int64_t>(n) / 100);
    const int64_t stall_limit = std::max<int64_t>(2000, 10 * static_cast<int64_t>(n));
    const uint64_t* row = q.row().data();
    const uint32_t* col = q.col().data();
    const double* val = q.val().data();
    detail::ReadRunner runner(q, o, 8);
    return runner.run([&](int64_t read) {
      Rng rng(o.seed, static_cast<uint64_t>(read));
      Bits x(n);
      std::vector<double> delta(n);
      std::vector<int64_t> tabu_until(n, 0);
      double energy = 0;
      // Δ_i = (1 − 2x_i)(a_i + Σ_j b_ij x_j), recomputed exactly on every (re)start.
      auto reset = [&]() {
        const std::vector<double> field = q.fields(x);
        for (std::size_t i = 0; i < n; ++i) delta[i] = x[i] ? -field[i] : field[i];
        energy = q.energy(x);
        std::fill(tabu_until.begin(), tabu_until.end(), 0);
      };
      for (auto& b : x) b = rng.next() >> 63;
      reset();
      Bits best = x;
      double best_energy = energy;
      int64_t since_improvement = 0, move = 0;
      for (; move < moves; ++move) {
        if ((move & 255) == 0 && runner.should_stop()) break;
        // Select the move.
        std::size_t pick = n;
        double pick_delta = std::numeric_limits<double>::infinity();
        uint64_t ties = 0;
        const double aspiration = best_energy - energy;  // a tabu move is allowed if Δ < this
        for (std::size_t i = 0; i < n; ++i) {
          const double d = delta[i];
          if (d > pick_delta) continue;
          if (tabu_until[i] > move && !(d < aspiration)) continue;
          if (d < pick_delta) {
            pick_delta = d;
            pick = i;
            ties = 1;
          } else if (rng.below(++ties) == 0) {
            pick = i;
          }
        }
        if (pick == n) {  // everything tabu and nothing aspirates: release the oldest
          std::fill(tabu_until.begin(), tabu_until.end(), 0);
          continue;
        }
        // Apply it.
        x[pick] ^= 1;
        energy += pick_delta;
        delta[pick] = -pick_delta;
        const double sgn = x[pick] ? 1.0 : -1.0;
        for (uint64_t e = row[pick]; e < row[pick + 1]; ++e) {
          const uint32_t j = col[e];
          delta[j] += (x[j] ? -sgn : sgn) * val[e];
        }
        tabu_until[pick] = move + tenure_base + 1 + static_cast<int64_t>(rng.below(10));
        if (energy < best_energy) {
          best_energy = energy;
          best = x;
          since_improvement = 0;
          if (runner.report(best_energy, best)) break;
        } else if (++since_improvement > stall_limit) {
          // Elite perturbation: back to the best state, flip between n/20 and n/5 random bits.
          x = best;
          const std::size_t lo = std::max<std::size_t>(1, n / 20), hi = std::max<std::size_t>(lo, n / 5);
          const std::size_t flips = lo + rng.below(hi - lo + 1);
          for (std::size_t f = 0; f < flips; ++f) x[rng.below(n)] ^= 1;
          reset();
          since_improvement = 0;
        }
      }
      runner.add_steps(static_cast<uint64_t>(move));
      return best;
    });
  }
};

}  // namespace

std::unique_ptr<Sampler> make_tabu_sampler() { return std::make_unique<TabuSampler>(); }

}  // namespace gng
