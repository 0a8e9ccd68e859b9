#pragma once
// Test data for src/nn: a small, fixed slice of Fashion-MNIST (first training and test images).
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "data/dataset.h"
#include "nn/nn.h"

namespace gng::test {

inline Design design(std::vector<std::pair<std::string, std::string>> v) { return Design{std::move(v)}; }

// The first 3000 training images and the first 1000 test images (after init_training_runtime()).
struct Small {
  Dataset train, val;
};
inline const Small& small() {
  static const Small s = [] {
    init_training_runtime();
    const Dataset tr = read_mnist_dir(kFashionMnistDir, true), te = read_mnist_dir(kFashionMnistDir, false);
    std::vector<std::size_t> a(3000), b(1000);
    std::iota(a.begin(), a.end(), 0);
    std::iota(b.begin(), b.end(), 0);
    return Small{subset(tr, a), subset(te, b)};
  }();
  return s;
}

// Rows [from, to) of `d`.
inline Dataset rows(const Dataset& d, std::size_t from, std::size_t to) {
  std::vector<std::size_t> index(to - from);
  std::iota(index.begin(), index.end(), from);
  return subset(d, index);
}

}  // namespace gng::test
