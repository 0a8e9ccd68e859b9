#pragma once
// Strict reading of YAML settings files: every message names the source and the line.
#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <set>
#include <string>

#include "core/error.h"

namespace gng::yaml {

std::string where(const std::string& source, const YAML::Node& n);  // "source:line"
// The document's top-level mapping; gng::Error on malformed YAML or another top-level shape.
YAML::Node load(const std::string& text, const std::string& source);
// Rejects keys outside `known`, naming the key, its line and what is allowed.
void check_keys(const YAML::Node& map, const std::string& source, const std::string& what,
                const std::set<std::string>& known);
// A value of type T, or gng::Error naming the setting and what was there.
template <class T>
T get(const YAML::Node& n, const std::string& source, const std::string& name) {
  try {
    return n.as<T>();
  } catch (const YAML::Exception&) {
    throw Error(where(source, n) + ": '" + name + "' has the wrong type (got '" + (n.IsScalar() ? n.Scalar() : "a collection") + "')");
  }
}
// A number in [lo, hi], or gng::Error naming the setting.
double number(const YAML::Node& n, const std::string& source, const std::string& name, double lo, double hi);
// A duration in seconds within [lo, hi]: a number of seconds, or one with a unit (30s, 10m, 2h).
double seconds(const YAML::Node& n, const std::string& source, const std::string& name, double lo, double hi);
// A whole settings file (a run file, policy, space or node file): read_file's, refused above
// kMaxFileBytes (read no further: /dev/zero is refused, not read forever).
constexpr std::size_t kMaxFileBytes = 1u << 20;
std::string slurp(const std::string& path);

}  // namespace gng::yaml
