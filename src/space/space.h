#pragma once
// The Generate step's search space: model design as a vector of binary decisions, read from YAML.
//
//   family: cnn                      # which architecture family src/nn builds (cnn | vit)
//   decisions:                       # order = bit order
//     residual: flag                 # one bit
//     activation: {one_of: [relu, gelu, silu]}      # one bit per value, exactly one set
//     attention: flag
//     heads: {one_of: [1, 2, 4], when: attention}   # gated: exactly one if `attention`, else none
//     width: {ordinal: [16, 32, 48, 64]}            # k values → k−1 thermometer bits
//   constraints:                     # each literal is one bit or its complement
//     - {requires: [kernel=5, "depth<=2"]}          # if the first holds, the second must
//     - {excludes: [attention, "width>=64"]}        # not both
//   budgets: {params: 200000, flops: 30000000}      # checked through the family's cost model
//
// Literals: `flag` / `!flag`, `oneof=value`, `ordinal>=value` / `ordinal<=value` / `ordinal<value`
// / `ordinal>value` (each an affine function of one thermometer bit). The encoding rules and the
// constraints are exact quadratic penalties; budgets are cut by quadratic terms over the decision
// values that alone or in pairs already exceed a budget (found by enumerating the feasible set),
// and decode() re-checks every rule and budget exactly.
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/rng.h"
#include "qubo/qubo.h"

namespace gng {

// A decoded design: decision name → chosen value (as written in the YAML), in space order.
// A gated one-of that is switched off is absent.
struct Design {
  std::vector<std::pair<std::string, std::string>> values;

  const std::string* find(std::string_view name) const;
  std::string text(std::string_view name, const std::string& fallback) const;
  double number(std::string_view name, double fallback) const;  // throws gng::Error if not numeric
  bool flag(std::string_view name) const;                       // absent → false
  std::string to_json() const;                                  // {"name": "value", ...}
  static Design from_json(const std::string& json);             // throws gng::Error
  bool operator==(const Design&) const = default;
};

enum class DecisionKind { flag, one_of, ordinal };

struct Decision {
  std::string name;
  DecisionKind kind;
  std::vector<std::string> values;  // flag: {"false", "true"}
  std::string when;                 // gating flag's name, or empty
  uint32_t first_bit = 0;           // the decision's bits are [first_bit, first_bit + bits)
  uint32_t bits = 0;
};

// Cost of a design in named metrics ("params", "flops", ...), for budgets.
using CostModel = std::function<std::map<std::string, double>(const Design&)>;

class SearchSpace {
 public:
  // Throws gng::Error naming the source and the problem: malformed YAML, unknown keys, unknown
  // decisions or values in constraints, a gate that is not a flag, duplicate names, fewer than
  // two values in a one-of or ordinal.
  static SearchSpace from_yaml(const std::string& text, const std::string& source = "<space>");
  static SearchSpace from_file(const std::string& path);

  const std::string& family() const { return family_; }
  const std::vector<Decision>& decisions() const { return decisions_; }
  std::size_t bits() const { return bits_; }
  std::string bit_name(std::size_t bit) const;
  // The bits of every one-of decision (gated or not): at most one is set in each group.
  std::vector<std::vector<uint32_t>> one_of_groups() const;  // e.g. "activation=gelu", "width>=32", "residual"
  // The bits of every ungated one-of decision: exactly one is set in each group of a valid design.
  std::vector<std::vector<uint32_t>> one_hot_groups() const;

  // Budgets: metric → maximum. set_cost_model() must be called before budgets are checked; a budget
  // on a metric the model does not report is an error at check time.
  const std::map<std::string, double>& budgets() const { return budgets_; }
  void set_budget(const std::string& metric, double max);
  void set_cost_model(CostModel model);

  // Validates the whole space once everything is set: throws gng::Error if no design satisfies the
  // encoding, constraints and budgets ("empty feasible set", with the reason when one rule alone
  // empties it, e.g. contradictory constraints), computes the budget cuts. Call before use.
  void finalize();

  // Exact: the bits encode a design (one-hot/gating/thermometer rules), the constraints hold and
  // the budgets are met. Otherwise nullopt, with a reason in *why when given.
  std::optional<Design> decode(const Bits& x, std::string* why = nullptr) const;
  Bits encode(const Design& d) const;  // throws gng::Error on unknown names/values

  // Σ penalty terms, each ≥ 0 on binary x and ≥ 1 on every x that breaks an encoding rule or a
  // constraint (and on the budget cuts); zero on every valid design.
  const Qubo& penalty() const { return penalty_; }
  // objective + P·penalty with P = 1 + Σ|a_i| + Σ|b_ij| of the objective, so any violation costs
  // more than the objective can vary: the minimum obeys the encoding, the constraints and the budget
  // cuts whenever a valid design exists. A design over budget in a way no single value or pair of
  // values shows (e.g. only width, depth and kernel together) is not cut: decode() rejects it.
  Qubo with_penalty(const Qubo& objective) const;

  // A uniformly random feasible design: drawn from the feasible set finalize() enumerated, else by
  // rejection over uniformly random encodings (throws gng::Error after 100000 failures).
  Bits random_valid(Rng& rng) const;
  // Number of feasible designs when at most `limit` encodings need enumerating, else nullopt.
  std::optional<uint64_t> count_feasible(uint64_t limit = 1u << 22) const;

 private:
  struct Literal {
    uint32_t bit;
    bool negated;
  };
  struct Rule {
    bool requires_;  // requires (a → b) or excludes (¬(a ∧ b))
    Literal a, b;
    std::string text;
    int line = 0;  // in the YAML source, for messages
  };
  // A budget cut: penalty L_a (single) or L_a·L_b (pair) on literals that no feasible design meets
  // within the budgets.
  struct Cut {
    Literal a, b;
    bool pair;
  };
  bool holds(const Rule& r, const Bits& x) const;
  const Rule* broken_rule(const Bits& x) const;  // first rule x breaks, or null
  bool satisfiable(const std::vector<const Rule*>& rules) const;
  Design design_of(const Bits& x) const;  // x must satisfy the encoding rules
  std::optional<std::string> over_budget(const Design& d) const;
  void build_penalty(const std::vector<Cut>& cuts);
  void forget_enumeration();

  std::string source_;
  std::string family_;
  std::vector<Decision> decisions_;
  std::size_t bits_ = 0;
  std::vector<Rule> rules_;
  std::map<std::string, double> budgets_;
  CostModel cost_;
  Qubo penalty_;
  // Every feasible design (bits_ bytes each, flat), kept when finalize() could enumerate the space:
  // random_valid() then draws from it directly.
  std::vector<uint8_t> feasible_;
  bool enumerated_ = false;
};

}  // namespace gng
