#pragma once
// Helpers shared by the subcommands that read a problem and print samples.
#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "core/args.h"
#include "qubo/io.h"

namespace gng::cli {

inline std::string bitstring(const Bits& x) {
  std::string s(x.size(), '0');
  for (std::size_t i = 0; i < x.size(); ++i) s[i] = x[i] ? '1' : '0';
  return s;
}

// Integers without a trailing ".0", everything else with full precision.
inline nlohmann::json json_number(double v) {
  if (v == static_cast<double>(static_cast<int64_t>(v)) && std::abs(v) < 9e15) return static_cast<int64_t>(v);
  return v;
}

// Reads FILE (the one positional argument) with --format and --instance.
Problem load_problem(const Args& args);

}  // namespace gng::cli
