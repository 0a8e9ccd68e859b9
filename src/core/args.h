#pragma once
// Command-line options for one subcommand: declare them, parse, read typed values.
// Unknown options, missing values, malformed numbers and numbers out of their range are gng::Errors
// that name the option.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace gng {

class Args {
 public:
  // `command` is used in messages ("gng solve").
  explicit Args(std::string command) : command_(std::move(command)) {}

  // An option that takes a value (--name VALUE or --name=VALUE).
  Args& option(const std::string& name, const std::string& help);
  // An option without a value.
  Args& flag(const std::string& name, const std::string& help);

  void parse(const std::vector<std::string>& argv);

  bool has(const std::string& name) const;
  std::string str(const std::string& name, const std::string& fallback = "") const;
  // Numbers within [lo, hi], inclusive (every numeric option has bounds: none takes a value that
  // exhausts the machine); gng::Error naming the option and its range otherwise.
  int64_t integer(const std::string& name, int64_t fallback, int64_t lo, int64_t hi) const;
  double real(const std::string& name, double fallback, double lo, double hi) const;
  std::optional<double> real(const std::string& name, double lo, double hi) const;
  const std::vector<std::string>& positional() const { return positional_; }
  std::string help() const;

 private:
  struct Spec {
    bool takes_value;
    std::string help;
  };
  const Spec& spec(const std::string& name) const;
  std::string command_;
  std::vector<std::string> order_;
  std::map<std::string, Spec> specs_;
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

}  // namespace gng
