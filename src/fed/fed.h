#pragma once
// Federated aggregation without libtorch: a model state (or a delta) is a list of named float
// tensors; several nodes' updates become one by FedAvg or by a robust rule that outvotes poisoned
// updates. (src/nn converts libtorch state dicts to and from Update.)
//
// Every update must match the first one exactly: the same tensor names in the same order, the
// same shapes, as many values as each shape holds, only finite values, and samples finite and
// ≥ 0. Anything else is a gng::Error that names the sender (see check_update).
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace gng::fed {

struct Tensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> values;  // row-major, product(shape) of them
};

// A node's model state (or delta) and its weight: the number of samples it was trained on.
struct Update {
  std::string from;
  double samples = 0;
  std::vector<Tensor> tensors;
};

struct Rule {
  enum Kind {
    fedavg,        // mean weighted by samples (McMahan et al. 2017); a batch-norm running_var is
                   // pooled with its running_mean (the variance of all nodes' data, not the mean
                   // of their variances), here and in Multi-Krum's mean
    trimmed_mean,  // per coordinate: drop the ⌊trim·n⌋ largest and smallest, mean of the rest,
                   // unweighted (Yin et al. 2018)
    median,        // per coordinate, unweighted; the mean of the two middle values for even n
    krum,          // Blanchard et al. 2017: the update with the least sum of squared distances to
                   // its n − f − 2 nearest others; with multi = m > 1, the samples-weighted mean of
                   // the m best (Multi-Krum). Needs n ≥ 2f + 3, 1 ≤ m ≤ n − f.
  } kind = fedavg;
  double trim = 0.1;  // trimmed_mean: fraction cut from each end, in [0, 0.5)
  int byzantine = 1;  // krum: f, the number of attackers tolerated
  int multi = 1;      // krum: m, how many of the best-scored updates are averaged
};

// The aggregate of `updates` under `rule`: the first update's names and shapes, values computed in
// double and rounded to float. Its `from` is empty; its `samples` is the sum over the updates that
// contributed (all of them, or Krum's choice). Throws gng::Error on empty input, on an update that
// fails check_update against the first, on a rule the input cannot satisfy (all-zero samples for
// fedavg, n < 2f + 3 for krum, trim outside [0, 0.5)).
Update aggregate(std::span<const Update> updates, const Rule& rule = {});

// Throws gng::Error naming u.from (and like.from where they differ) unless u can be aggregated with
// `like`: see the header comment. A server calls it on receipt to refuse one bad sender and keep
// the others.
void check_update(const Update& u, const Update& like);

// The wire form of an update (what a sealed envelope carries), all integers big-endian, floats
// IEEE-754 little-endian:
//   "GNGU" 01 ‖ str from ‖ f64 samples ‖ u32 tensors ‖ per tensor: str name ‖ u8 rank ‖ i64 dims… ‖ f32 values…
//   (str = u16 n ‖ n bytes). decode() checks every length against the bytes present and throws
//   gng::Error on anything malformed; values are checked by check_update, not here.
std::string encode(const Update& u);
Update decode(std::string_view bytes);

// reference + scale·(u − reference) for every value: with scale < 0 the update of a sign-flipping,
// scaling attacker, which bench/fed and the poisoning test send to measure the robust rules.
Update scaled_from(const Update& u, const Update& reference, double scale);

// Euclidean distance between two matching updates over all their values (check_update applies).
double l2_distance(const Update& a, const Update& b);

}  // namespace gng::fed
