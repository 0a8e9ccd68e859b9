#include "qubo/io.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "core/error.h"
#include "core/file.h"

namespace gng {

namespace {

// Splits text into lines of whitespace-separated tokens, skipping blank lines, remembering each
// line's number, and parses numbers strictly.
class Lines {
 public:
  Lines(std::string_view text, std::string_view source) : text_(text), source_(source) {}

  // Next non-blank line's tokens; false at end of input.
  bool next(std::vector<std::string_view>& tokens) {
    tokens.clear();
    while (pos_ < text_.size()) {
      std::size_t end = text_.find('\n', pos_);
      if (end == std::string_view::npos) end = text_.size();
      std::string_view line = text_.substr(pos_, end - pos_);
      pos_ = end + 1;
      ++line_;
      std::size_t i = 0;
      while (i < line.size()) {
        while (i < line.size() && is_space(line[i])) ++i;
        std::size_t j = i;
        while (j < line.size() && !is_space(line[j])) ++j;
        if (j > i) tokens.push_back(line.substr(i, j - i));
        i = j;
      }
      if (!tokens.empty()) return true;
    }
    return false;
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(std::string(source_) + ":" + std::to_string(line_) + ": " + what);
  }

  void expect(bool more, std::vector<std::string_view>& tokens, std::size_t count, const char* shape) {
    if (!more) {
      ++line_;
      fail(std::string("unexpected end of file, expected '") + shape + "'");
    }
    if (tokens.size() != count)
      fail("expected " + std::to_string(count) + " numbers '" + shape + "', got " + std::to_string(tokens.size()) + " fields");
  }

  int64_t integer(std::string_view t, const char* what) const {
    int64_t v = 0;
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (ec != std::errc() || p != t.data() + t.size()) fail(std::string(what) + " must be an integer, got '" + std::string(t) + "'");
    return v;
  }

  double real(std::string_view t, const char* what) const {
    if (!t.empty() && t[0] == '+') t.remove_prefix(1);
    double v = 0;
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (ec != std::errc() || p != t.data() + t.size() || !std::isfinite(v))
      fail(std::string(what) + " must be a finite number, got '" + std::string(t) + "'");
    return v;
  }

  uint32_t index(std::string_view t, int64_t n, const char* what) const {
    const int64_t v = integer(t, what);
    if (v < 1 || v > n) fail(std::string(what) + " " + std::to_string(v) + " is outside 1.." + std::to_string(n));
    return static_cast<uint32_t>(v - 1);
  }

  int line() const { return line_; }

 private:
  static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }
  std::string_view text_, source_;
  std::size_t pos_ = 0;
  int line_ = 0;
};

constexpr int64_t kMaxVariables = 1 << 24;
constexpr int64_t kMaxTerms = int64_t{1} << 28;

std::string stem(std::string_view source) {
  std::string s = std::filesystem::path(std::string(source)).filename().string();
  if (auto dot = s.rfind('.'); dot != std::string::npos && dot > 0) s.resize(dot);
  return s;
}

Problem parse_bqp(std::string_view text, std::string_view source, int instance) {
  Lines in(text, source);
  std::vector<std::string_view> t;
  in.expect(in.next(t), t, 1, "number of instances");
  const int64_t count = in.integer(t[0], "number of instances");
  if (count < 1) in.fail("number of instances must be at least 1");
  if (instance < 1 || instance > count)
    throw Error(std::string(source) + ": instance " + std::to_string(instance) + " requested, the file has " + std::to_string(count));
  for (int k = 1; k <= instance; ++k) {
    in.expect(in.next(t), t, 2, "n nnz");
    const int64_t n = in.integer(t[0], "n"), nnz = in.integer(t[1], "nnz");
    if (n < 1 || n > kMaxVariables) in.fail("n = " + std::to_string(n) + " is outside 1.." + std::to_string(kMaxVariables));
    if (nnz < 0 || nnz > kMaxTerms) in.fail("nnz = " + std::to_string(nnz) + " is outside 0.." + std::to_string(kMaxTerms));
    std::vector<double> a(n, 0.0);
    std::vector<Coupling> b;
    if (k == instance) b.reserve(nnz);
    for (int64_t e = 0; e < nnz; ++e) {
      in.expect(in.next(t), t, 3, "i j q");
      const uint32_t i = in.index(t[0], n, "i"), j = in.index(t[1], n, "j");
      const double q = in.real(t[2], "q");
      if (k != instance) continue;
      if (i == j)
        a[i] -= q;
      else
        b.push_back({i, j, -2 * q});
    }
    if (k == instance) {
      Problem p;
      p.name = stem(source) + "-" + std::to_string(instance);
      p.format = Format::bqp;
      p.qubo = Qubo(n, std::move(a), b);
      p.maximize = true;
      p.objective_name = "x^T Q x";
      return p;
    }
  }
  throw Error("unreachable");
}

Problem parse_rudy(std::string_view text, std::string_view source) {
  Lines in(text, source);
  std::vector<std::string_view> t;
  in.expect(in.next(t), t, 2, "n m");
  const int64_t n = in.integer(t[0], "n"), m = in.integer(t[1], "m");
  if (n < 1 || n > kMaxVariables) in.fail("n = " + std::to_string(n) + " is outside 1.." + std::to_string(kMaxVariables));
  if (m < 0 || m > kMaxTerms) in.fail("m = " + std::to_string(m) + " is outside 0.." + std::to_string(kMaxTerms));
  // cut = Σ w (x_i + x_j − 2 x_i x_j); f = −cut. A self-loop is never cut and contributes nothing.
  std::vector<double> a(n, 0.0);
  std::vector<Coupling> b;
  b.reserve(m);
  for (int64_t e = 0; e < m; ++e) {
    in.expect(in.next(t), t, 3, "i j w");
    const uint32_t i = in.index(t[0], n, "i"), j = in.index(t[1], n, "j");
    const double w = in.real(t[2], "w");
    if (i == j) continue;
    a[i] -= w;
    a[j] -= w;
    b.push_back({i, j, 2 * w});
  }
  if (in.next(t)) in.fail("unexpected content after the " + std::to_string(m) + " edges the header announced");
  Problem p;
  p.name = stem(source);
  p.format = Format::rudy;
  p.qubo = Qubo(n, std::move(a), b);
  p.maximize = true;
  p.objective_name = "cut weight";
  return p;
}

// Line number of byte offset `pos` in text (1-based).
int line_of(std::string_view text, std::size_t pos) {
  pos = std::min(pos, text.size());
  return 1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(pos), '\n'));
}

Problem parse_json(std::string_view text, std::string_view source) {
  using nlohmann::json;
  const std::string src(source);
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    throw Error(src + ":" + std::to_string(line_of(text, e.byte > 0 ? e.byte - 1 : 0)) + ": invalid JSON (" + e.what() + ")");
  } catch (const json::exception& e) {  // e.g. a number out of range (found by bench/fuzz)
    throw Error(src + ": invalid JSON (" + e.what() + ")");
  }
  auto fail = [&](const std::string& what) -> Error { return Error(src + ": " + what); };
  if (!j.is_object()) throw fail("expected a JSON object");
  for (const auto& [key, _] : j.items())
    if (key != "gng_qubo" && key != "n" && key != "offset" && key != "linear" && key != "quadratic" && key != "name" &&
        key != "one_hot")
      throw fail("unknown key \"" + key + "\"");
  if (!j.contains("gng_qubo") || j["gng_qubo"] != 1) throw fail("\"gng_qubo\": 1 is required (format version)");
  if (!j.contains("n") || !j["n"].is_number_integer()) throw fail("\"n\" must be an integer");
  const int64_t n = j["n"].get<int64_t>();
  if (n < 1 || n > kMaxVariables) throw fail("\"n\" = " + std::to_string(n) + " is outside 1.." + std::to_string(kMaxVariables));
  double offset = 0;
  if (j.contains("offset")) {
    if (!j["offset"].is_number()) throw fail("\"offset\" must be a number");
    offset = j["offset"].get<double>();
  }
  std::vector<double> a(n, 0.0);
  if (j.contains("linear")) {
    const json& l = j["linear"];
    if (!l.is_array() || static_cast<int64_t>(l.size()) != n) throw fail("\"linear\" must be an array of n = " + std::to_string(n) + " numbers");
    for (int64_t i = 0; i < n; ++i) {
      if (!l[i].is_number()) throw fail("\"linear\"[" + std::to_string(i) + "] is not a number");
      a[i] = l[i].get<double>();
    }
  }
  std::vector<Coupling> b;
  if (j.contains("quadratic")) {
    const json& q = j["quadratic"];
    if (!q.is_array()) throw fail("\"quadratic\" must be an array of [i, j, value]");
    b.reserve(q.size());
    for (std::size_t k = 0; k < q.size(); ++k) {
      const json& e = q[k];
      const std::string at = "\"quadratic\"[" + std::to_string(k) + "]";
      if (!e.is_array() || e.size() != 3 || !e[0].is_number_integer() || !e[1].is_number_integer() || !e[2].is_number())
        throw fail(at + " must be [i, j, value] with integer i, j");
      const int64_t i = e[0].get<int64_t>(), jj = e[1].get<int64_t>();
      if (i < 0 || i >= n || jj < 0 || jj >= n) throw fail(at + ": index outside 0.." + std::to_string(n - 1));
      b.push_back({static_cast<uint32_t>(i), static_cast<uint32_t>(jj), e[2].get<double>()});
    }
  }
  Problem p;
  if (j.contains("one_hot")) {
    const json& g = j["one_hot"];
    if (!g.is_array()) throw fail("\"one_hot\" must be an array of index arrays");
    std::vector<int> owner(n, -1);
    for (std::size_t k = 0; k < g.size(); ++k) {
      const std::string at = "\"one_hot\"[" + std::to_string(k) + "]";
      if (!g[k].is_array() || g[k].empty()) throw fail(at + " must be a non-empty array of indices");
      std::vector<uint32_t> group;
      for (const json& v : g[k]) {
        if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= n) throw fail(at + ": index outside 0.." + std::to_string(n - 1));
        const auto i = static_cast<uint32_t>(v.get<int64_t>());
        if (owner[i] >= 0) throw fail(at + ": variable " + std::to_string(i) + " is already in group " + std::to_string(owner[i]));
        owner[i] = static_cast<int>(k);
        group.push_back(i);
      }
      p.one_hot.push_back(std::move(group));
    }
  }
  p.name = j.contains("name") && j["name"].is_string() ? j["name"].get<std::string>() : stem(source);
  p.format = Format::json;
  try {
    p.qubo = Qubo(n, std::move(a), b, offset);
  } catch (const Error& e) {
    throw fail(e.what());
  }
  p.objective_name = "f(x)";
  return p;
}

}  // namespace

Format parse_format(std::string_view name) {
  if (name == "bqp") return Format::bqp;
  if (name == "rudy") return Format::rudy;
  if (name == "json") return Format::json;
  throw Error("unknown format '" + std::string(name) + "' (expected bqp, rudy or json)");
}

std::string_view format_name(Format f) {
  switch (f) {
    case Format::bqp: return "bqp";
    case Format::rudy: return "rudy";
    case Format::json: return "json";
  }
  return "?";
}

Format detect_format(std::string_view text, std::string_view path) {
  if (path.ends_with(".json")) return Format::json;
  std::size_t i = text.find_first_not_of(" \t\r\n");
  if (i != std::string_view::npos && (text[i] == '{')) return Format::json;
  Lines in(text, path);
  std::vector<std::string_view> t;
  if (in.next(t)) {
    if (t.size() == 1) return Format::bqp;
    if (t.size() == 2) return Format::rudy;
  }
  throw Error(std::string(path) + ": cannot tell the format from the first line; pass --format bqp|rudy|json");
}

Problem parse_problem(std::string_view text, Format format, std::string_view source, int instance) {
  if (format != Format::bqp && instance != 1)
    throw Error(std::string(source) + ": --instance applies to bqp files only");
  switch (format) {
    case Format::bqp: return parse_bqp(text, source, instance);
    case Format::rudy: return parse_rudy(text, source);
    case Format::json: return parse_json(text, source);
  }
  throw Error("unknown format");
}

Problem read_problem(const std::string& path, std::optional<Format> format, int instance) {
  const std::string text = read_file(path, kMaxProblemBytes);
  return parse_problem(text, format ? *format : detect_format(text, path), path, instance);
}

std::string qubo_to_json(const Qubo& q) {
  nlohmann::json j;
  j["gng_qubo"] = 1;
  j["n"] = q.size();
  j["offset"] = q.offset();
  j["linear"] = q.linear();
  auto& quad = j["quadratic"] = nlohmann::json::array();
  for (const auto& t : q.quadratic()) quad.push_back({t.i, t.j, t.value});
  return j.dump() + "\n";
}

void write_qubo_json(const std::string& path, const Qubo& q) { write_file_atomic(path, qubo_to_json(q)); }

}  // namespace gng
