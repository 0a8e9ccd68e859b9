#pragma once
// NAS-Bench-201 (CIFAR-10) as a tabular benchmark for measuring the search alone: every cell of
// six edges × five operations, with its 12-epoch validation and test accuracy. Design bits:
// bit 5·edge + op, one-hot per edge; edges (0→1), (0→2), (1→2), (0→3), (1→3), (2→3); ops none,
// skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3.
#include <optional>
#include <string>
#include <vector>

#include "qubo/qubo.h"

namespace gng {

class Nb201 {
 public:
  static constexpr int kEdges = 6, kOps = 5, kBits = 30, kCells = 15625;

  // Reads the CSV (index,cell,val_acc_12ep,test_acc_12ep,…); errors name file and line.
  static Nb201 load(const std::string& path);

  static std::vector<std::vector<uint32_t>> groups();
  // Cell code Σ op_e·5^e of a one-hot design, or nullopt if some edge is not one-hot.
  static std::optional<int> decode(const Bits& x);
  static Bits encode(int code);

  double val(int code) const { return val_[code]; }
  double test(int code) const { return test_[code]; }
  double best_test() const { return best_test_; }  // the regret reference (89.16)

 private:
  std::vector<double> val_, test_;
  double best_test_ = 0;
};

}  // namespace gng
