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

}  // namespace gng
