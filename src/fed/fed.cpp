#include "fed/fed.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <unordered_set>

#include "core/bytes.h"
#include "core/error.h"

namespace gng::fed {

namespace {

std::string quoted(const std::string& s) { return "'" + s + "'"; }

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

bool has_tensor(const Update& u, const std::string& name) {
  return std::any_of(u.tensors.begin(), u.tensors.end(), [&](const Tensor& t) { return t.name == name; });
}

}  // namespace

void check_update(const Update& u, const Update& like) {
  const std::string who = "update from " + quoted(u.from);
  const std::string other = "the update from " + quoted(like.from);
  if (!std::isfinite(u.samples) || u.samples < 0)
    throw Error(who + ": samples " + number(u.samples) + " is not a finite number >= 0");

  const std::size_t common = std::min(u.tensors.size(), like.tensors.size());
  for (std::size_t t = 0; t <= common; ++t) {
    if (t == common) {
      if (u.tensors.size() < like.tensors.size())
        throw Error(who + " lacks tensor " + quoted(like.tensors[t].name) + " that " + other + " has");
      if (u.tensors.size() > like.tensors.size())
        throw Error(who + " has tensor " + quoted(u.tensors[t].name) + " that " + other + " lacks");
      break;
    }
    const std::string& mine = u.tensors[t].name;
    const std::string& theirs = like.tensors[t].name;
    if (mine == theirs) continue;
    if (!has_tensor(u, theirs)) throw Error(who + " lacks tensor " + quoted(theirs) + " that " + other + " has");
    if (!has_tensor(like, mine)) throw Error(who + " has tensor " + quoted(mine) + " that " + other + " lacks");
    throw Error(who + " has tensor " + quoted(mine) + " at position " + std::to_string(t) + " where " + other +
                " has " + quoted(theirs));
  }

  std::unordered_set<std::string> seen;
  for (std::size_t t = 0; t < u.tensors.size(); ++t) {
    const Tensor& x = u.tensors[t];
    const std::string tensor = who + ": tensor " + quoted(x.name);
    if (!seen.insert(x.name).second) throw Error(who + " has tensor " + quoted(x.name) + " twice");
    if (x.shape != like.tensors[t].shape)
      throw Error(tensor + " has shape " + shape_text(x.shape) + ", but " + other + " has " + shape_text(like.tensors[t].shape));
    std::size_t size = 1;
    for (int64_t d : x.shape) {
      if (d < 0) throw Error(tensor + " has a negative dimension in shape " + shape_text(x.shape));
      size *= static_cast<std::size_t>(d);
    }
    if (x.values.size() != size)
      throw Error(tensor + " has " + std::to_string(x.values.size()) + " values, but its shape " + shape_text(x.shape) +
                  " holds " + std::to_string(size));
    for (std::size_t k = 0; k < x.values.size(); ++k)
      if (!std::isfinite(x.values[k]))
        throw Error(tensor + " holds " + (std::isnan(x.values[k]) ? "NaN" : x.values[k] > 0 ? "inf" : "-inf") +
                    " at index " + std::to_string(k));
  }
}

Update scaled_from(const Update& u, const Update& reference, double scale) {
  check_update(u, reference);
  Update out = u;
  for (std::size_t t = 0; t < out.tensors.size(); ++t)
    for (std::size_t k = 0; k < out.tensors[t].values.size(); ++k) {
      const double r = reference.tensors[t].values[k];
      out.tensors[t].values[k] = static_cast<float>(r + scale * (out.tensors[t].values[k] - r));
    }
  return out;
}

double squared_distance(const Update& a, const Update& b) {
  double s = 0;
  for (std::size_t t = 0; t < a.tensors.size(); ++t) {
    const std::vector<float>& x = a.tensors[t].values;
    const std::vector<float>& y = b.tensors[t].values;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double d = static_cast<double>(x[i]) - static_cast<double>(y[i]);
      s += d * d;
    }
  }
  return s;
}

double l2_distance(const Update& a, const Update& b) {
  check_update(a, a);
  check_update(b, a);
  return std::sqrt(squared_distance(a, b));
}

std::string encode(const Update& u) {
  std::string b;
  bytes::Writer<std::string> w(b);
  w.raw("GNGU\x01", 5).field(u.from, 2, 0xffff, "update: sender name");
  uint64_t samples;
  static_assert(sizeof samples == sizeof u.samples);
  std::memcpy(&samples, &u.samples, sizeof samples);
  w.uint(samples, 8).uint(u.tensors.size(), 4);
  for (const auto& t : u.tensors) {
    if (t.name.size() > 0xffff || t.shape.size() > 255) throw Error("update: tensor '" + t.name + "' cannot be encoded");
    w.field(t.name, 2, 0xffff, "update: tensor name").uint(t.shape.size(), 1);
    for (int64_t d : t.shape) w.uint(static_cast<uint64_t>(d), 8);
    w.uint(t.values.size(), 8).raw(t.values.data(), 4 * t.values.size());  // x86-64: little-endian already
  }
  return b;
}

Update decode(std::string_view bytes) {
  bytes::Reader r(bytes, "update");
  if (r.text(5, "magic") != std::string_view("GNGU\x01", 5)) throw Error("not a gng model update (bad magic or version)");
  Update u;
  u.from = r.field(2, "sender");
  const uint64_t samples = r.uint(8, "samples");
  std::memcpy(&u.samples, &samples, sizeof samples);
  const uint64_t n = r.uint(4, "tensor count");
  for (uint64_t i = 0; i < n; ++i) {
    Tensor t;
    t.name = r.field(2, "tensor name");
    const uint64_t rank = r.uint(1, "rank");
    for (uint64_t k = 0; k < rank; ++k) t.shape.push_back(static_cast<int64_t>(r.uint(8, "dimension")));
    const uint64_t count = r.uint(8, "value count");
    if (count > r.left() / 4) throw Error("truncated update: tensor '" + t.name + "' claims " + std::to_string(count) + " values");
    const std::string_view v = r.text(4 * count, "values");
    t.values.resize(count);
    std::memcpy(t.values.data(), v.data(), v.size());
    u.tensors.push_back(std::move(t));
  }
  r.done("update");
  return u;
}

}  // namespace gng::fed
