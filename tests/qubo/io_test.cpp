#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/rng.h"
#include "qubo/io.h"
#include "support/paths.h"

namespace gng {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

std::string error_of(std::string_view text, Format f, int instance = 1) {
  try {
    parse_problem(text, f, "in.txt", instance);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(Bqp, ReadsEveryInstanceOfTheOrLibraryFiles) {
  for (int n : {50, 100, 250, 500}) {
    const std::string path = test::shared("data/qubo/bqp/bqp" + std::to_string(n) + ".txt");
    for (int k = 1; k <= 10; ++k) {
      const Problem p = read_problem(path, Format::bqp, k);
      EXPECT_EQ(p.name, "bqp" + std::to_string(n) + "-" + std::to_string(k));
      EXPECT_EQ(p.qubo.size(), static_cast<std::size_t>(n));
      EXPECT_TRUE(p.maximize);
    }
    EXPECT_THROW(read_problem(path, Format::bqp, 11), Error);
  }
}

TEST(Bqp, ObjectiveIsBeasleysValue) {
  // 2 variables: q11 = 3, q22 = −1, q12 = 2 (listed once, counts twice).
  const Problem p = parse_problem("1\n2 3\n1 1 3\n2 2 -1\n1 2 2\n", Format::bqp, "t");
  EXPECT_DOUBLE_EQ(p.objective(p.qubo.energy(Bits{1, 1})), 3 - 1 + 2 * 2);
  EXPECT_DOUBLE_EQ(p.objective(p.qubo.energy(Bits{1, 0})), 3);
  EXPECT_DOUBLE_EQ(p.energy_of(6), -6);
}

TEST(Rudy, ReadsGsetAndCutWeightIsTheObjective) {
  const Problem p = read_problem(test::shared("data/qubo/gset/G1"));
  EXPECT_EQ(p.format, Format::rudy);
  EXPECT_EQ(p.qubo.size(), 800u);
  EXPECT_EQ(p.qubo.quadratic().size(), 19176u);
  // Triangle with weights 1, 2, −1: cut {0} | {1, 2} cuts edges (0,1) and (0,2): 1 + 2.
  const Problem t = parse_problem("3 3\n1 2 1\n1 3 2\n2 3 -1\n", Format::rudy, "tri");
  EXPECT_DOUBLE_EQ(t.objective(t.qubo.energy(Bits{1, 0, 0})), 3);
  EXPECT_DOUBLE_EQ(t.objective(t.qubo.energy(Bits{0, 1, 0})), 0);
  EXPECT_DOUBLE_EQ(t.objective(t.qubo.energy(Bits{0, 0, 0})), 0);
  EXPECT_DOUBLE_EQ(t.objective(t.qubo.energy(Bits{0, 0, 1})), 1);
}

TEST(Formats, AreDetectedFromContent) {
  EXPECT_EQ(detect_format("10\n50 111\n", "x"), Format::bqp);
  EXPECT_EQ(detect_format("800 19176\n1 2 1\n", "x"), Format::rudy);
  EXPECT_EQ(detect_format(" {\"gng_qubo\":1}", "x"), Format::json);
  EXPECT_EQ(detect_format("", "x.json"), Format::json);
  EXPECT_THROW(detect_format("1 2 3\n", "x"), Error);
  EXPECT_THROW(parse_format("csv"), Error);
}

TEST(Readers, NameFileAndLineOfWhatIsWrong) {
  EXPECT_EQ(error_of("1\n2 1\n1 3 5\n", Format::bqp), "in.txt:3: j 3 is outside 1..2");
  EXPECT_EQ(error_of("1\n2 2\n1 1 5\n", Format::bqp), "in.txt:4: unexpected end of file, expected 'i j q'");
  EXPECT_EQ(error_of("1\n2 1\n1 2 x\n", Format::bqp), "in.txt:3: q must be a finite number, got 'x'");
  EXPECT_EQ(error_of("1\n2 1\n1 2\n", Format::bqp), "in.txt:3: expected 3 numbers 'i j q', got 2 fields");
  EXPECT_EQ(error_of("1\n0 0\n", Format::bqp), "in.txt:2: n = 0 is outside 1..16777216");
  EXPECT_EQ(error_of("1\n2 0\n", Format::bqp, 2), "in.txt: instance 2 requested, the file has 1");
  EXPECT_EQ(error_of("", Format::bqp), "in.txt:1: unexpected end of file, expected 'number of instances'");
  EXPECT_EQ(error_of("3 1\n1 2 1e999\n", Format::rudy), "in.txt:2: w must be a finite number, got '1e999'");
  EXPECT_EQ(error_of("3 1\n1 2 1\n2 3 1\n", Format::rudy), "in.txt:3: unexpected content after the 1 edges the header announced");
  EXPECT_EQ(error_of("3 1\n\n\n-1 2 1\n", Format::rudy), "in.txt:4: i -1 is outside 1..3");
  EXPECT_EQ(error_of("3 1\n", Format::rudy, 2), "in.txt: --instance applies to bqp files only");
  EXPECT_EQ(error_of("{\"gng_qubo\":1,\n\"n\": 2,\n\"linear\": [1, 2,]}", Format::json).substr(0, 24), "in.txt:3: invalid JSON (");
  EXPECT_EQ(error_of("{\"gng_qubo\":1,\"n\":2,\"lienar\":[]}", Format::json), "in.txt: unknown key \"lienar\"");
  EXPECT_EQ(error_of("{\"n\":2}", Format::json), "in.txt: \"gng_qubo\": 1 is required (format version)");
  EXPECT_EQ(error_of("{\"gng_qubo\":1,\"n\":2,\"quadratic\":[[0,2,1]]}", Format::json), "in.txt: \"quadratic\"[0]: index outside 0..1");
  EXPECT_EQ(error_of("{\"gng_qubo\":1,\"n\":2,\"linear\":[1]}", Format::json), "in.txt: \"linear\" must be an array of n = 2 numbers");
  EXPECT_EQ(error_of("{\"gng_qubo\":1,\"n\":1,\"offset\":1e999}", Format::json).substr(0, 23), "in.txt: invalid JSON ([");
  EXPECT_EQ(error_of("{\"gng_qubo\":1,\"n\":3,\"one_hot\":[[0,1],[1,2]]}", Format::json),
            "in.txt: \"one_hot\"[1]: variable 1 is already in group 0");
  EXPECT_THROW(read_problem("/nonexistent/file.txt"), Error);
}

TEST(Json, ReadsOneHotGroups) {
  const Problem p = parse_problem("{\"gng_qubo\":1,\"n\":5,\"one_hot\":[[0,1,2],[4,3]]}", Format::json, "g");
  ASSERT_EQ(p.one_hot.size(), 2u);
  EXPECT_EQ(p.one_hot[0], (std::vector<uint32_t>{0, 1, 2}));
  EXPECT_EQ(p.one_hot[1], (std::vector<uint32_t>{4, 3}));
}

TEST(Json, RoundTripsAQubo) {
  const Qubo q(4, {1, -2, 0.5, 0}, {{0, 1, 3}, {2, 3, -1.25}, {1, 3, 1e-3}}, 7.5);
  const std::string dir = testing::TempDir();
  const std::string path = dir + "/q.json";
  write_qubo_json(path, q);
  const Problem p = read_problem(path);
  EXPECT_EQ(p.format, Format::json);
  EXPECT_FALSE(p.maximize);
  EXPECT_EQ(p.qubo.linear(), q.linear());
  EXPECT_EQ(p.qubo.offset(), q.offset());
  ASSERT_EQ(p.qubo.quadratic().size(), q.quadratic().size());
  for (std::size_t k = 0; k < q.quadratic().size(); ++k) EXPECT_EQ(p.qubo.quadratic()[k].value, q.quadratic()[k].value);
  std::filesystem::remove(path);
}

// Random mutations of real files: every outcome is a parsed problem or a gng::Error, never a
// crash, hang or other exception. (bench/fuzz runs the same readers under libFuzzer + ASan.)
TEST(Readers, SurviveRandomCorruption) {
  const std::string bqp = slurp(test::shared("data/qubo/bqp/bqp50.txt")).substr(0, 3000);
  const std::string rudy = "6 5\n1 2 1\n2 3 -1\n3 4 1\n4 5 1\n5 6 -1\n";
  const std::string json = qubo_to_json(Qubo(3, {1, 2, 3}, {{0, 1, 1}, {1, 2, -1}}, 1));
  const char alphabet[] = "0123456789 -+.eE\n\t{}[],:\"x\0";
  Rng r(2024);
  int errors = 0, parsed = 0;
  for (const auto& [seed_text, format] : {std::pair{bqp, Format::bqp}, {rudy, Format::rudy}, {json, Format::json}}) {
    for (int t = 0; t < 3000; ++t) {
      std::string s = seed_text;
      const int edits = 1 + r.below(4);
      for (int e = 0; e < edits; ++e) {
        const std::size_t at = r.below(s.size() + 1);
        switch (r.below(3)) {
          case 0: if (at < s.size()) s[at] = alphabet[r.below(sizeof alphabet - 1)]; break;
          case 1: s.insert(at, 1, alphabet[r.below(sizeof alphabet - 1)]); break;
          default: s.resize(at); break;
        }
      }
      try {
        parse_problem(s, format, "fuzz");
        ++parsed;
      } catch (const Error&) {
        ++errors;
      }
    }
  }
  EXPECT_GT(errors, 1000);  // the mutations do break files
  EXPECT_GT(parsed, 100);   // and some stay valid
}

}  // namespace
}  // namespace gng
