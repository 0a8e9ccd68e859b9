#pragma once
// The one writer and the one bounds-checked reader of gng's binary formats (the sealed envelope,
// the model update, the audit log's canonical entries): big-endian integers and length-prefixed
// fields. Every read is checked against the bytes present before it happens; a reader that runs
// out throws gng::Error "truncated <format>: <what> needs N bytes, M left", so a message names the
// format and the field that was cut.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

#include "core/error.h"

namespace gng::bytes {

// Appends to a std::string or a std::vector<uint8_t>.
template <class Buffer>
class Writer {
 public:
  explicit Writer(Buffer& out) : out_(out) {}
  // v as `size` big-endian bytes (1 to 8).
  Writer& uint(uint64_t v, int size) {
    for (int s = 8 * (size - 1); s >= 0; s -= 8) out_.push_back(static_cast<typename Buffer::value_type>((v >> s) & 0xff));
    return *this;
  }
  Writer& raw(const void* data, std::size_t n) {
    const auto* p = static_cast<const typename Buffer::value_type*>(data);
    out_.insert(out_.end(), p, p + n);
    return *this;
  }
  // A field: its length as `size` big-endian bytes, then its bytes. gng::Error naming `what` when it
  // is longer than `max` or than the length prefix can say.
  Writer& field(std::string_view s, int size, std::size_t max, const std::string& what) {
    const uint64_t limit = size >= 8 ? UINT64_MAX : (uint64_t{1} << (8 * size)) - 1;
    if (s.size() > max || s.size() > limit) throw Error(what + " longer than " + std::to_string(std::min<uint64_t>(max, limit)) + " bytes");
    uint(s.size(), size);
    return raw(s.data(), s.size());
  }

 private:
  Buffer& out_;
};

class Reader {
 public:
  // `format` names the bytes in errors ("envelope", "update").
  Reader(std::span<const uint8_t> in, std::string format) : in_(in), format_(std::move(format)) {}
  Reader(std::string_view in, std::string format)
      : Reader(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(in.data()), in.size()), std::move(format)) {}

  std::size_t at() const { return at_; }
  std::size_t left() const { return in_.size() - at_; }

  std::span<const uint8_t> take(std::size_t n, const char* what) {
    if (n > left())
      throw Error("truncated " + format_ + ": " + what + " needs " + std::to_string(n) + " bytes, " + std::to_string(left()) +
                  " left");
    const auto v = in_.subspan(at_, n);
    at_ += n;
    return v;
  }
  std::string_view text(std::size_t n, const char* what) {
    const auto v = take(n, what);
    return {reinterpret_cast<const char*>(v.data()), v.size()};
  }
  // `size` big-endian bytes (1 to 8).
  uint64_t uint(int size, const char* what) {
    uint64_t v = 0;
    for (uint8_t c : take(static_cast<std::size_t>(size), what)) v = (v << 8) | c;
    return v;
  }
  // A field written by Writer::field with a `size`-byte length.
  std::string field(int size, const char* what) { return std::string(text(uint(size, what), what)); }
  std::span<const uint8_t> blob(int size, const char* what) { return take(uint(size, what), what); }
  // "GNGX" then a version byte: gng::Error "not a gng <what> (bad magic)" or "unsupported <what> version N".
  void magic(const char (&m)[5], uint8_t version, const char* what) {
    const auto v = take(5, what);
    if (std::memcmp(v.data(), m, 4) != 0) throw Error(std::string("not a gng ") + what + " (bad magic)");
    if (v[4] != version) throw Error(std::string("unsupported ") + what + " version " + std::to_string(v[4]));
  }
  // gng::Error "<what> has N trailing bytes" unless every byte was read.
  void done(const std::string& what) const {
    if (left() != 0) throw Error(what + " has " + std::to_string(left()) + " trailing bytes");
  }

 private:
  std::span<const uint8_t> in_;
  std::size_t at_ = 0;
  std::string format_;
};

}  // namespace gng::bytes
