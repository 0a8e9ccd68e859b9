#pragma once
// Federated model states without libtorch: a model state (or a delta) is a list of named float
// tensors, an Update, with the samples it was trained on as its weight. Here: the checks every
// update must pass before it is aggregated, its wire form, and two helpers for attacks and
// distances. Aggregation itself (FedAvg, FedProx and the robust rules) is fed/strategy.h's
// Strategy. (src/nn converts libtorch state dicts to and from Update.)
//
// Every update must match the first one exactly: the same tensor names in the same order, the
// same shapes, as many values as each shape holds, only finite values, and samples finite and
// ≥ 0. Anything else is a gng::Error that names the sender (see check_update).
#include <cstdint>
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
// Its square, without the check: for callers that checked the updates already (Krum's scores).
double squared_distance(const Update& a, const Update& b);

}  // namespace gng::fed
