#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>

#include "core/error.h"
#include "support/error_of.h"
#include "core/rng.h"
#include "data/dataset.h"

namespace gng {
namespace {

namespace fs = std::filesystem;

// Each test writes its fixtures into its own directory, removed afterwards.
class Files : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("gng-data-" + std::string(info->test_suite_name()) + "-" + info->name() + "-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  std::string write(const std::string& name, const std::string& bytes) const {
    std::ofstream(path(name), std::ios::binary) << bytes;
    return path(name);
  }

  std::string write_gz(const std::string& name, const std::string& bytes) const {
    gzFile f = gzopen(path(name).c_str(), "wb");
    EXPECT_NE(f, nullptr);
    EXPECT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
    gzclose(f);
    return path(name);
  }

  fs::path dir_;
};

std::string be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

std::string idx_images(uint32_t n, uint32_t h, uint32_t w, const std::string& pixels) {
  return be32(0x803) + be32(n) + be32(h) + be32(w) + pixels;
}

std::string idx_labels(const std::string& labels) {
  return be32(0x801) + be32(static_cast<uint32_t>(labels.size())) + labels;
}

using test::error_of;

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

// ---- the real Fashion-MNIST files (Debian's dataset-fashion-mnist) -----------------------------

void expect_fashion_mnist(const Dataset& d, std::size_t count) {
  EXPECT_EQ(d.count, count);
  EXPECT_EQ(d.channels, 1u);
  EXPECT_EQ(d.height, 28u);
  EXPECT_EQ(d.width, 28u);
  EXPECT_EQ(d.features(), 784u);
  EXPECT_EQ(d.classes, 10);
  ASSERT_EQ(d.pixels.size(), count * 784);
  ASSERT_EQ(d.labels.size(), count);
  // Both splits are balanced: a tenth of the images in each class.
  std::vector<std::size_t> histogram(10, 0);
  for (int32_t c : d.labels) {
    ASSERT_GE(c, 0);
    ASSERT_LT(c, 10);
    ++histogram[c];
  }
  for (int c = 0; c < 10; ++c) EXPECT_EQ(histogram[c], count / 10) << "class " << c;
  const auto [lo, hi] = std::minmax_element(d.pixels.begin(), d.pixels.end());
  EXPECT_EQ(*lo, 0.0f);
  EXPECT_EQ(*hi, 1.0f);
  // Every value is k/255 for a byte k.
  for (std::size_t i = 0; i < d.pixels.size(); i += 997) {
    const float k = d.pixels[i] * 255.0f;
    EXPECT_NEAR(k, std::round(k), 1e-3) << "pixel " << i;
  }
}

TEST(FashionMnist, TrainingSetLoadsQuickly) {
  const auto start = std::chrono::steady_clock::now();
  const Dataset d = read_mnist_dir(kFashionMnistDir, true);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  expect_fashion_mnist(d, 60000);
  // The first training image is an ankle boot (class 9), the second a T-shirt/top (class 0).
  EXPECT_EQ(d.labels[0], 9);
  EXPECT_EQ(d.labels[1], 0);
  // Inflating 26 MB and converting 47 M pixels takes well under a second on one core; allow for a busy machine.
  EXPECT_LT(seconds, 10.0);
}

TEST(FashionMnist, TestSetLoads) {
  const Dataset d = read_mnist_dir(kFashionMnistDir, false);
  expect_fashion_mnist(d, 10000);
}

// ---- IDX: values, layout, plain and compressed --------------------------------------------------

TEST_F(Files, IdxImagesAreScaledAndLaidOutRowMajor) {
  // 2 images of 2 × 3: bytes 0, 51, 102, 153, 204, 255 then 255 … 0.
  const std::string px = {0, 51, 102, char(153), char(204), char(255), char(255), char(204), char(153), 102, 51, 0};
  const Dataset d = read_idx(write("i", idx_images(2, 2, 3, px)), write("l", idx_labels({3, 1})));
  EXPECT_EQ(d.count, 2u);
  EXPECT_EQ(d.height, 2u);
  EXPECT_EQ(d.width, 3u);
  EXPECT_EQ(d.classes, 4);
  EXPECT_EQ(d.labels, (std::vector<int32_t>{3, 1}));
  ASSERT_EQ(d.pixels.size(), 12u);
  for (int i = 0; i < 12; ++i) EXPECT_FLOAT_EQ(d.pixels[i], static_cast<unsigned char>(px[i]) / 255.0f) << i;
}

TEST_F(Files, CompressedAndPlainFilesReadTheSame) {
  std::string px(5 * 4 * 4, 0);
  for (std::size_t i = 0; i < px.size(); ++i) px[i] = static_cast<char>(i * 7);
  const std::string labels = {0, 1, 2, 1, 0};
  const Dataset plain = read_idx(write("i", idx_images(5, 4, 4, px)), write("l", idx_labels(labels)));
  const Dataset gz = read_idx(write_gz("i.gz", idx_images(5, 4, 4, px)), write_gz("l.gz", idx_labels(labels)));
  EXPECT_EQ(plain.pixels, gz.pixels);
  EXPECT_EQ(plain.labels, gz.labels);
  EXPECT_EQ(gz.classes, 3);
}

TEST_F(Files, MnistDirFallsBackToUncompressedNames) {
  write("train-images-idx3-ubyte", idx_images(1, 1, 2, {10, 20}));
  write("train-labels-idx1-ubyte", idx_labels({4}));
  write_gz("t10k-images-idx3-ubyte.gz", idx_images(2, 1, 1, {30, 40}));
  write_gz("t10k-labels-idx1-ubyte.gz", idx_labels({1, 2}));
  const Dataset train = read_mnist_dir(dir_.string(), true);
  EXPECT_EQ(train.count, 1u);
  EXPECT_EQ(train.labels, (std::vector<int32_t>{4}));
  EXPECT_FLOAT_EQ(train.pixels[1], 20 / 255.0f);
  const Dataset test = read_mnist_dir(dir_.string(), false);
  EXPECT_EQ(test.count, 2u);
  EXPECT_FLOAT_EQ(test.pixels[1], 40 / 255.0f);
  // Neither name exists: the error names the uncompressed one that was tried last.
  fs::remove(path("train-images-idx3-ubyte"));
  EXPECT_TRUE(starts_with(error_of([&] { read_mnist_dir(dir_.string(), true); }),
                          path("train-images-idx3-ubyte") + ": cannot open: No such file or directory"));
}

// ---- IDX errors name the file and say what is wrong ---------------------------------------------

TEST_F(Files, IdxErrorsNameTheFile) {
  const std::string labels = write("l", idx_labels({1, 2}));
  const std::string good = write("good", idx_images(2, 1, 2, {1, 2, 3, 4}));

  EXPECT_EQ(error_of([&] { read_idx(path("absent"), labels); }), path("absent") + ": cannot open: No such file or directory");
  EXPECT_EQ(error_of([&] { read_idx(dir_.string(), labels); }), dir_.string() + ": cannot read: not a regular file");

  // A label file where images belong.
  EXPECT_EQ(error_of([&] { read_idx(labels, labels); }), labels + ": bad IDX magic 0x00000801 (expected 0x00000803 for images)");
  EXPECT_EQ(error_of([&] { read_idx(good, good); }), good + ": bad IDX magic 0x00000803 (expected 0x00000801 for labels)");

  const std::string short_header = write("h", be32(0x803) + be32(2));
  EXPECT_EQ(error_of([&] { read_idx(short_header, labels); }), short_header + ": truncated: expected a 16-byte IDX header, got 8 bytes");

  const std::string truncated = write("t", idx_images(2, 1, 2, {1, 2, 3}));
  EXPECT_EQ(error_of([&] { read_idx(truncated, labels); }), truncated + ": truncated: expected 4 bytes of pixels, got 3");

  const std::string trailing = write("x", idx_images(2, 1, 2, {1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(error_of([&] { read_idx(trailing, labels); }), trailing + ": 2 bytes of trailing data after 4 bytes of pixels");

  const std::string short_labels = write("sl", be32(0x801) + be32(3) + std::string{1, 2});
  EXPECT_EQ(error_of([&] { read_idx(good, short_labels); }), short_labels + ": truncated: expected 3 bytes of labels, got 2");

  const std::string three = write("three", idx_labels({0, 1, 2}));
  EXPECT_EQ(error_of([&] { read_idx(good, three); }), good + ": 2 images but " + three + " has 3 labels");

  const std::string none = write("none", idx_images(0, 1, 2, ""));
  EXPECT_EQ(error_of([&] { read_idx(none, labels); }), none + ": the IDX file holds no images");
}

TEST_F(Files, CorruptGzipIsReported) {
  // Random bytes under a .gz name: not gzip at all.
  Rng rng(7);
  std::string noise(64, 0);
  for (char& c : noise) c = static_cast<char>(rng.below(256));
  noise[0] = 'x';  // never the gzip magic by chance
  const std::string labels = write("l", idx_labels({1}));
  const std::string x = write("x.gz", noise);
  EXPECT_EQ(error_of([&] { read_idx(x, labels); }), x + ": not a gzip file (no gzip header)");

  // A gzip header followed by garbage: inflate fails.
  const std::string header = {0x1f, char(0x8b), 8, 0, 0, 0, 0, 0, 0, 3};
  const std::string garbage = write("g.gz", header + std::string(40, char(0xff)));
  EXPECT_EQ(error_of([&] { read_idx(garbage, labels); }), garbage + ": gzip error: invalid block type");

  // A valid stream cut short, and one with a flipped byte in its body (caught by inflate or the CRC).
  std::string px(4000, 0);
  for (std::size_t i = 0; i < px.size(); ++i) px[i] = static_cast<char>(rng.below(256));
  const std::string whole = write_gz("w.gz", idx_images(1, 40, 100, px));
  std::ifstream in(whole, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(bytes.size(), 1000u);
  const std::string cut = write("cut.gz", bytes.substr(0, bytes.size() / 2));
  EXPECT_EQ(error_of([&] { read_idx(cut, labels); }), cut + ": gzip error: unexpected end of file");
  std::string flipped = bytes;
  flipped[bytes.size() / 2] ^= 0x55;
  const std::string f = write("flip.gz", flipped);
  const std::string fe = error_of([&] { read_idx(f, labels); });
  EXPECT_TRUE(fe == f + ": gzip error: incorrect data check" || fe == f + ": gzip error: invalid stored block lengths") << fe;
  // The intact stream reads.
  EXPECT_EQ(read_idx(whole, labels).pixels.size(), 4000u);
}

// ---- CSV ----------------------------------------------------------------------------------------

TEST_F(Files, CsvReadsFeaturesAroundTheLabelColumn) {
  const std::string p = write("t.csv", "x, label ,y\r\n1.5,2,-3\r\n\r\n 4e1 , 0 , +7\r\n0,1.0,0.25\n");
  const Dataset d = read_csv(p);
  EXPECT_EQ(d.count, 3u);
  EXPECT_EQ(d.channels, 1u);
  EXPECT_EQ(d.height, 1u);
  EXPECT_EQ(d.width, 2u);
  EXPECT_EQ(d.classes, 3);
  EXPECT_EQ(d.labels, (std::vector<int32_t>{2, 0, 1}));
  EXPECT_EQ(d.pixels, (std::vector<float>{1.5f, -3, 40, 7, 0, 0.25f}));
  // Another column can be the label.
  const Dataset by_y = read_csv(write("y.csv", "a,y\n0.5,3\n"), "y");
  EXPECT_EQ(by_y.labels, (std::vector<int32_t>{3}));
  EXPECT_EQ(by_y.pixels, (std::vector<float>{0.5f}));
}

TEST_F(Files, CsvErrorsNameFileAndLine) {
  auto err = [&](const std::string& text) {
    const std::string p = write("e.csv", text);
    const std::string e = error_of([&] { read_csv(p); });
    EXPECT_TRUE(starts_with(e, p + ":")) << e;
    return e.substr(p.size());
  };
  EXPECT_EQ(err(""), ":1: empty file, expected a header row naming the columns");
  EXPECT_EQ(err("\n \n"), ":1: empty file, expected a header row naming the columns");
  EXPECT_EQ(err("a,b\n1,2\n"), ":1: no label column 'label' in the header");
  EXPECT_EQ(err("a,label,a\n"), ":1: column 'a' appears twice in the header");
  EXPECT_EQ(err("a,label\n"), ":2: no data rows after the header");
  EXPECT_EQ(err("a,label\n1,2\n3\n"), ":3: expected 2 cells, got 1");
  EXPECT_EQ(err("a,label\n1,2\n3,4,5\n"), ":3: expected 2 cells, got 3");
  EXPECT_EQ(err("a,label\n\n1,2\nabc,1\n"), ":4: column 'a': 'abc' is not a finite number");
  EXPECT_EQ(err("a,label\n1x,1\n"), ":2: column 'a': '1x' is not a finite number");
  EXPECT_EQ(err("a,label\n,1\n"), ":2: column 'a': '' is not a finite number");
  EXPECT_EQ(err("a,label\nnan,1\n"), ":2: column 'a': 'nan' is not a finite number");
  EXPECT_EQ(err("a,label\n1,-1\n"), ":2: label '-1' in column 'label' is not a non-negative integer");
  EXPECT_EQ(err("a,label\n1,2.5\n"), ":2: label '2.5' in column 'label' is not a non-negative integer");
  EXPECT_EQ(err("a,label\n1,two\n"), ":2: label 'two' in column 'label' is not a non-negative integer");
  EXPECT_EQ(error_of([&] { read_csv(path("absent.csv")); }), path("absent.csv") + ": cannot open: No such file or directory");
}

// ---- subset and split ---------------------------------------------------------------------------

// n rows, 2 features; feature 0 holds the row number so that rows can be traced through a split.
Dataset numbered(const std::vector<int32_t>& labels) {
  Dataset d;
  d.count = labels.size();
  d.width = 2;
  d.height = 1;
  d.labels = labels;
  d.classes = 1 + *std::max_element(labels.begin(), labels.end());
  for (std::size_t i = 0; i < labels.size(); ++i) {
    d.pixels.push_back(static_cast<float>(i));
    d.pixels.push_back(static_cast<float>(labels[i]) + 0.5f);
  }
  return d;
}

std::vector<std::size_t> rows_of(const Dataset& d) {
  std::vector<std::size_t> rows;
  for (std::size_t i = 0; i < d.count; ++i) {
    rows.push_back(static_cast<std::size_t>(d.pixels[i * 2]));
    EXPECT_EQ(d.pixels[i * 2 + 1], static_cast<float>(d.labels[i]) + 0.5f) << "row " << i << " lost its label";
  }
  return rows;
}

TEST(Subset, TakesRowsInTheGivenOrder) {
  const Dataset d = numbered({0, 1, 2, 1, 0});
  const Dataset s = subset(d, {4, 1, 1});
  EXPECT_EQ(s.count, 3u);
  EXPECT_EQ(s.classes, 3);
  EXPECT_EQ(s.labels, (std::vector<int32_t>{0, 1, 1}));
  EXPECT_EQ(rows_of(s), (std::vector<std::size_t>{4, 1, 1}));
  EXPECT_EQ(subset(d, {}).count, 0u);
  EXPECT_EQ(error_of([&] { subset(d, {0, 5}); }), "subset: row 5 is outside 0..5-1");
}

TEST(Split, IsStratifiedDisjointCompleteAndSeeded) {
  // Unbalanced classes: 50, 30, 17, 3 rows, interleaved.
  std::vector<int32_t> labels;
  Rng rng(1);
  std::vector<int> left = {50, 30, 17, 3};
  while (left[0] + left[1] + left[2] + left[3] > 0) {
    const int c = static_cast<int>(rng.below(4));
    if (left[c] > 0) {
      labels.push_back(c);
      --left[c];
    }
  }
  const Dataset d = numbered(labels);
  const Split s = split(d, 0.2, 42);
  EXPECT_EQ(s.first.count + s.second.count, d.count);
  EXPECT_EQ(s.first.classes, 4);
  EXPECT_EQ(s.second.classes, 4);

  const auto a = rows_of(s.first), b = rows_of(s.second);
  std::set<std::size_t> all(a.begin(), a.end());
  for (std::size_t r : b) EXPECT_TRUE(all.insert(r).second) << "row " << r << " is in both parts";
  EXPECT_EQ(all.size(), d.count);
  EXPECT_TRUE(std::is_sorted(a.begin(), a.end()));

  // About a fifth of every class: round(0.2 n_c) = 10, 6, 3, 1.
  std::vector<int> per_class(4, 0);
  for (int32_t c : s.second.labels) ++per_class[c];
  EXPECT_EQ(per_class, (std::vector<int>{10, 6, 3, 1}));

  // The same seed gives the same split; another seed a different one.
  EXPECT_EQ(rows_of(split(d, 0.2, 42).second), b);
  EXPECT_NE(rows_of(split(d, 0.2, 43).second), b);

  // The edges.
  EXPECT_EQ(split(d, 0, 1).second.count, 0u);
  EXPECT_EQ(split(d, 1, 1).first.count, 0u);
  EXPECT_EQ(error_of([&] { split(d, 1.5, 1); }), "split: fraction 1.500000 is outside [0, 1]");
}

TEST(Split, KeepsFashionMnistBalanced) {
  const Dataset d = read_mnist_dir(kFashionMnistDir, false);
  const Split s = split(d, 0.1, 5);
  std::vector<int> per_class(10, 0);
  for (int32_t c : s.second.labels) ++per_class[c];
  for (int c = 0; c < 10; ++c) EXPECT_EQ(per_class[c], 100) << "class " << c;
  EXPECT_EQ(s.first.count, 9000u);
  EXPECT_EQ(s.first.pixels.size(), 9000u * 784);
}

}  // namespace
}  // namespace gng
