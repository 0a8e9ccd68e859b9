#include "core/yaml.h"

#include <cmath>
#include <sstream>

#include "core/file.h"

namespace gng::yaml {

std::string where(const std::string& source, const YAML::Node& n) {
  return source + ":" + std::to_string(n.Mark().line + 1);
}

YAML::Node load(const std::string& text, const std::string& source) {
  try {
    const YAML::Node root = YAML::Load(text);
    if (!root.IsMap()) throw Error(source + ": expected a mapping of settings at the top level");
    return root;
  } catch (const YAML::ParserException& e) {
    throw Error(source + ":" + std::to_string(e.mark.line + 1) + ": malformed YAML: " + e.msg);
  }
}

void check_keys(const YAML::Node& map, const std::string& source, const std::string& what,
                const std::set<std::string>& known) {
  if (!map.IsMap()) throw Error(where(source, map) + ": " + what + " must be a mapping");
  for (const auto& kv : map) {
    if (!kv.first.IsScalar()) throw Error(where(source, kv.first) + ": a key in " + what + " must be a name, not a " +
                                          (kv.first.IsMap() ? "mapping" : kv.first.IsSequence() ? "list" : "null"));
    const auto key = kv.first.as<std::string>();
    if (!known.count(key)) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      throw Error(where(source, kv.first) + ": unknown key '" + key + "' in " + what + " (expected " + list + ")");
    }
  }
}

double number(const YAML::Node& n, const std::string& source, const std::string& name, double lo, double hi) {
  const double v = get<double>(n, source, name);
  if (!std::isfinite(v) || v < lo || v > hi) {
    std::ostringstream s;
    s << where(source, n) << ": '" << name << "' must be in [" << lo << ", " << hi << "], got " << n.Scalar();
    throw Error(s.str());
  }
  return v;
}

double seconds(const YAML::Node& n, const std::string& source, const std::string& name, double lo, double hi) {
  const std::string text = n.IsScalar() ? n.Scalar() : "";
  double scale = 1;
  std::string digits = text;
  if (!text.empty() && std::string("smh").find(text.back()) != std::string::npos) {
    scale = text.back() == 's' ? 1 : text.back() == 'm' ? 60 : 3600;
    digits.pop_back();
  }
  std::size_t used = 0;
  double v = 0;
  try {
    v = std::stod(digits, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (digits.empty() || used != digits.size() || !std::isfinite(v))
    throw Error(where(source, n) + ": '" + name + "' must be a duration such as 90, 30s, 10m or 2h, got '" + text + "'");
  v *= scale;
  if (v < lo || v > hi) {
    std::ostringstream s;
    s << where(source, n) << ": '" << name << "' must be between " << lo << " and " << hi << " seconds, got " << text;
    throw Error(s.str());
  }
  return v;
}

std::string slurp(const std::string& path) {
  return read_file(path, kMaxFileBytes);
}

}  // namespace gng::yaml
