#pragma once
// Reading and writing problems. Every reader keeps the file's own objective so that results can be
// reported "in the file's own sense" (a Beasley value, a cut weight) while samplers minimise f(x).
//
//   bqp   Beasley OR-Library: first line K; per instance "n nnz" then nnz lines "i j q" (1-based).
//         Maximise Σ q_ii x_i + 2 Σ_{i<j} q_ij x_i x_j.          f = −objective
//   rudy  Max-Cut graph (G-set): "n m" then m lines "i j w" (1-based).
//         Maximise Σ w_ij [x_i ≠ x_j].                            f = −objective
//   json  {"gng_qubo": 1, "n": N, "offset": c, "linear": [a_0 …], "quadratic": [[i, j, b] …],
//          "one_hot": [[i, j, …], …]}   (0-based; "offset", "one_hot" optional; f itself is the
//         objective, minimised; one_hot names groups of which exactly one bit is set in any valid x)
//
// Malformed input throws gng::Error("FILE:LINE: what is wrong").
#include <string>
#include <optional>
#include <string_view>
#include <vector>

#include "qubo/qubo.h"

namespace gng {

enum class Format { bqp, rudy, json };

struct Problem {
  std::string name;            // "bqp50-1", "G1", or the file's stem
  Format format = Format::json;
  Qubo qubo;                   // minimised by the samplers
  bool maximize = false;       // objective = maximize ? −energy : energy
  std::string objective_name;  // "x^T Q x", "cut weight", "f(x)"
  std::vector<std::vector<uint32_t>> one_hot;  // groups with exactly one bit set (json only)

  double objective(double energy) const { return maximize ? -energy : energy; }
  double energy_of(double objective) const { return maximize ? -objective : objective; }
};

Format parse_format(std::string_view name);  // "bqp" | "rudy" | "json"
std::string_view format_name(Format f);
// Guesses from the extension (.json) and the first line (one number: bqp, two: rudy).
Format detect_format(std::string_view text, std::string_view path);

// `instance` is 1-based and only meaningful for bqp (others require 1).
Problem parse_problem(std::string_view text, Format format, std::string_view source, int instance = 1);
// Files above kMaxProblemBytes are refused (read no further than that).
constexpr std::size_t kMaxProblemBytes = 256u << 20;
Problem read_problem(const std::string& path, std::optional<Format> format = std::nullopt, int instance = 1);

std::string qubo_to_json(const Qubo& q);
void write_qubo_json(const std::string& path, const Qubo& q);

}  // namespace gng
