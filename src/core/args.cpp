#include "core/args.h"

#include <charconv>
#include <cmath>
#include <sstream>

#include "core/error.h"

namespace gng {

Args& Args::option(const std::string& name, const std::string& help) {
  order_.push_back(name);
  specs_[name] = {true, help};
  return *this;
}

Args& Args::flag(const std::string& name, const std::string& help) {
  order_.push_back(name);
  specs_[name] = {false, help};
  return *this;
}

const Args::Spec& Args::spec(const std::string& name) const {
  auto it = specs_.find(name);
  if (it == specs_.end()) throw Error(command_ + ": unknown option --" + name + " (see " + command_ + " --help)");
  return it->second;
}

void Args::parse(const std::vector<std::string>& argv) {
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a.size() < 3 || a.rfind("--", 0) != 0) {
      if (a.size() > 1 && a[0] == '-' && a != "-") throw Error(command_ + ": options are spelled --name, got '" + a + "'");
      positional_.push_back(a);
      continue;
    }
    std::string name = a.substr(2), value;
    bool inline_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    const Spec& s = spec(name);
    if (s.takes_value && !inline_value) {
      if (i + 1 >= argv.size()) throw Error(command_ + ": option --" + name + " needs a value");
      value = argv[++i];
    } else if (!s.takes_value && inline_value) {
      throw Error(command_ + ": option --" + name + " takes no value");
    }
    if (values_.count(name)) throw Error(command_ + ": option --" + name + " given twice");
    values_[name] = value;
  }
}

bool Args::has(const std::string& name) const {
  spec(name);
  return values_.count(name) > 0;
}

std::string Args::str(const std::string& name, const std::string& fallback) const {
  return has(name) ? values_.at(name) : fallback;
}

int64_t Args::integer(const std::string& name, int64_t fallback, int64_t lo, int64_t hi) const {
  if (!has(name)) return fallback;
  const std::string& v = values_.at(name);
  int64_t out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || p != v.data() + v.size())
    throw Error(command_ + ": option --" + name + " expects an integer, got '" + v + "'");
  if (out < lo || out > hi)
    throw Error(command_ + ": option --" + name + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + v);
  return out;
}

std::optional<double> Args::real(const std::string& name, double lo, double hi) const {
  if (!has(name)) return std::nullopt;
  const std::string& v = values_.at(name);
  double out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || p != v.data() + v.size() || !std::isfinite(out))
    throw Error(command_ + ": option --" + name + " expects a number, got '" + v + "'");
  if (out < lo || out > hi) {
    std::ostringstream s;
    s << command_ << ": option --" << name << " must be in [" << lo << ", " << hi << "], got " << v;
    throw Error(s.str());
  }
  return out;
}

double Args::real(const std::string& name, double fallback, double lo, double hi) const {
  return real(name, lo, hi).value_or(fallback);
}

std::string Args::help() const {
  std::string out;
  for (const auto& name : order_) {
    const Spec& s = specs_.at(name);
    std::string left = "  --" + name + (s.takes_value ? " VALUE" : "");
    if (left.size() < 24) left.resize(24, ' ');
    out += left + " " + s.help + "\n";
  }
  return out;
}

}  // namespace gng
