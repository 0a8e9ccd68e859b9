#include "search/nb201.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <sstream>

#include "core/error.h"
#include "core/file.h"

namespace gng {

namespace {

const char* const kOpNames[Nb201::kOps] = {"none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"};

double number(const std::string& s, const std::string& where) {
  double v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || !std::isfinite(v)) throw Error(where + ": '" + s + "' is not a number");
  return v;
}

// "|op~0|+|op~0|op~1|+|op~0|op~1|op~2|" → code.
int parse_cell(const std::string& cell, const std::string& where) {
  int code = 0, edge = 0, scale = 1;
  std::size_t pos = 0;
  while ((pos = cell.find('|', pos)) != std::string::npos) {
    const std::size_t end = cell.find('|', pos + 1);
    if (end == std::string::npos) break;
    const std::string tok = cell.substr(pos + 1, end - pos - 1);
    pos = end;
    if (tok.empty() || tok == "+") continue;
    if (edge == Nb201::kEdges) throw Error(where + ": cell '" + cell + "' has more than six edges");
    const std::string op = tok.substr(0, tok.find('~'));
    const auto it = std::find(std::begin(kOpNames), std::end(kOpNames), op);
    if (it == std::end(kOpNames)) throw Error(where + ": unknown operation '" + op + "'");
    code += static_cast<int>(it - std::begin(kOpNames)) * scale;
    scale *= Nb201::kOps;
    ++edge;
  }
  if (edge != Nb201::kEdges) throw Error(where + ": cell '" + cell + "' does not have six edges");
  return code;
}

}  // namespace

Nb201 Nb201::load(const std::string& path) {
  std::istringstream f(read_file(path, 64u << 20));  // the table is 1.8 MB
  Nb201 t;
  t.val_.assign(kCells, NAN);
  t.test_.assign(kCells, NAN);
  std::string line;
  int line_no = 1;
  if (!std::getline(f, line) || line.rfind("index,cell,val_acc_12ep,test_acc_12ep", 0) != 0)
    throw Error(path + ":1: expected the header index,cell,val_acc_12ep,test_acc_12ep,…");
  int rows = 0;
  while (std::getline(f, line)) {
    ++line_no;
    if (line.empty()) continue;
    const std::string where = path + ":" + std::to_string(line_no);
    std::vector<std::string> cols;
    std::size_t pos = 0;
    for (std::size_t c; (c = line.find(',', pos)) != std::string::npos; pos = c + 1) cols.push_back(line.substr(pos, c - pos));
    cols.push_back(line.substr(pos));
    if (cols.size() < 4) throw Error(where + ": expected at least 4 columns");
    const int code = parse_cell(cols[1], where);
    if (!std::isnan(t.val_[code])) throw Error(where + ": cell " + cols[1] + " appears twice");
    t.val_[code] = number(cols[2], where);
    t.test_[code] = number(cols[3], where);
    t.best_test_ = std::max(t.best_test_, t.test_[code]);
    ++rows;
  }
  if (rows != kCells) throw Error(path + ": " + std::to_string(rows) + " cells, expected " + std::to_string(kCells));
  return t;
}

std::vector<std::vector<uint32_t>> Nb201::groups() {
  std::vector<std::vector<uint32_t>> g(kEdges);
  for (int e = 0; e < kEdges; ++e)
    for (int op = 0; op < kOps; ++op) g[e].push_back(static_cast<uint32_t>(kOps * e + op));
  return g;
}

std::optional<int> Nb201::decode(const Bits& x) {
  if (x.size() != kBits) return std::nullopt;
  int code = 0, scale = 1;
  for (int e = 0; e < kEdges; ++e) {
    int op = -1;
    for (int k = 0; k < kOps; ++k)
      if (x[kOps * e + k]) {
        if (op >= 0) return std::nullopt;
        op = k;
      }
    if (op < 0) return std::nullopt;
    code += op * scale;
    scale *= kOps;
  }
  return code;
}

Bits Nb201::encode(int code) {
  Bits x(kBits, 0);
  for (int e = 0; e < kEdges; ++e, code /= kOps) x[kOps * e + code % kOps] = 1;
  return x;
}

}  // namespace gng
