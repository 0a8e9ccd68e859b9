#pragma once
// Labelled data for training: IDX files (optionally gzip-compressed, as Debian's
// dataset-fashion-mnist ships them) and CSV tables, held in memory as float images in [0, 1].
#include <cstdint>
#include <string>
#include <vector>

namespace gng {

struct Dataset {
  std::size_t count = 0, channels = 1, height = 0, width = 0;
  int classes = 0;                // 1 + largest label
  std::vector<float> pixels;      // count × channels × height × width
  std::vector<int32_t> labels;    // count entries in [0, classes)

  std::size_t features() const { return channels * height * width; }
};

// IDX image file (magic 0x00000803, N×H×W uint8 → /255) and label file (0x00000801, N uint8).
// ".gz" files are decompressed. Throws gng::Error naming the file on a missing file, a bad magic
// number, truncated or trailing data, a count mismatch between the two files.
Dataset read_idx(const std::string& images, const std::string& labels);

// The Fashion-MNIST (or MNIST) file set in `dir`: train- or t10k-{images-idx3,labels-idx1}-ubyte[.gz].
Dataset read_mnist_dir(const std::string& dir, bool train);
// Debian's dataset-fashion-mnist location.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// CSV with a header row: `label_column` holds integer labels ≥ 0; every other column is a numeric
// feature (shape 1 × 1 × features, values as written). Throws gng::Error("FILE:LINE: ...") on a
// missing column, a non-numeric cell, a row of the wrong width, a negative or fractional label.
Dataset read_csv(const std::string& path, const std::string& label_column = "label");

// The rows `index` of `d`, in that order.
Dataset subset(const Dataset& d, const std::vector<std::size_t>& index);

// A seeded, stratified split: about `fraction` of every class goes to `second`.
struct Split {
  Dataset first, second;
};
Split split(const Dataset& d, double fraction, uint64_t seed);

// Partitions for federated learning: `parts` lists of row indices, each sorted, together covering
// every row of `d` exactly once; seeded and reproducible. Throw gng::Error when parts < 1, when
// there are fewer rows than parts, or on a label outside 0..classes-1.
//
// IID: rows shuffled within each class and dealt round-robin, so parts differ in size by at most 1
// and each part holds within 1 of count_c / parts rows of every class c.
std::vector<std::vector<std::size_t>> partition_iid(const Dataset& d, int parts, uint64_t seed);

// Non-IID by label (Hsu et al. 2019): for each class, proportions p ~ Dirichlet(alpha, ..., alpha)
// over the parts, and the class's shuffled rows cut at round(cumsum(p) · count_c). Small alpha
// (0.1) gives parts dominated by a few classes; large alpha (100) is close to IID. A part that the
// draw leaves empty gets one row, taken at random from the largest part, so that every part has at
// least one row (at most parts - 1 rows move). Throws gng::Error unless alpha is finite and > 0.
std::vector<std::vector<std::size_t>> partition_dirichlet(const Dataset& d, int parts, double alpha, uint64_t seed);

}  // namespace gng
