#include "data/dataset.h"

#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numbers>
#include <string_view>
#include <unordered_map>

#include "core/error.h"
#include "core/rng.h"

namespace gng {

namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// The whole file in memory. Reading it in one go (rather than record by record) is what keeps
// 60 000 Fashion-MNIST images well under a second.
std::string read_plain(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw Error(path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    std::fclose(f);
    throw Error(path + ": cannot read: not a regular file");
  }
  std::string data(static_cast<std::size_t>(st.st_size), '\0');
  std::size_t size = std::fread(data.data(), 1, data.size(), f);
  // The file may have grown since fstat; read whatever follows too.
  std::array<char, 1 << 16> buf;
  while (!std::ferror(f) && !std::feof(f))
    if (std::size_t k = std::fread(buf.data(), 1, buf.size(), f)) {
      data.resize(size);
      data.append(buf.data(), k);
      size = data.size();
    }
  const bool failed = std::ferror(f);
  const int err = errno;
  std::fclose(f);
  if (failed) throw Error(path + ": read error: " + std::strerror(err));
  data.resize(size);
  return data;
}

// gzip-compressed files are inflated through zlib. A ".gz" name whose content is not gzip at all is
// an error: zlib would otherwise pass it through unchanged and the problem would surface later as a
// puzzling "bad magic".
// zlib's messages start with the path it was given; ours already do.
std::string gz_message(gzFile f, const std::string& path) {
  int code = 0;
  std::string msg = gzerror(f, &code);
  if (code == Z_ERRNO) return std::strerror(errno);
  if (msg.rfind(path + ": ", 0) == 0) msg.erase(0, path.size() + 2);
  return msg;
}

std::string read_gzip(const std::string& path) {
  errno = 0;
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw Error(path + ": cannot open: " + std::strerror(errno ? errno : ENOMEM));
  gzbuffer(f, 1 << 18);
  if (gzdirect(f)) {
    gzclose(f);
    throw Error(path + ": not a gzip file (no gzip header)");
  }
  std::string data;
  std::size_t size = 0;
  std::size_t chunk = 1 << 20;
  for (;;) {
    data.resize(size + chunk);
    const int k = gzread(f, data.data() + size, static_cast<unsigned>(chunk));
    if (k < 0) {
      const std::string msg = gz_message(f, path);
      gzclose(f);
      throw Error(path + ": gzip error: " + msg);
    }
    size += static_cast<std::size_t>(k);
    if (static_cast<std::size_t>(k) < chunk) break;
    chunk = std::min<std::size_t>(chunk * 2, std::size_t{1} << 28);
  }
  // A stream cut short reads as a short count with Z_BUF_ERROR set, not as -1.
  int code = 0;
  gzerror(f, &code);
  const std::string msg = code == Z_OK ? "" : gz_message(f, path);
  gzclose(f);
  if (code != Z_OK) throw Error(path + ": gzip error: " + msg);
  data.resize(size);
  return data;
}

std::string read_bytes(const std::string& path) { return ends_with(path, ".gz") ? read_gzip(path) : read_plain(path); }

uint32_t big_endian(const std::string& b, std::size_t at) {
  const auto* p = reinterpret_cast<const unsigned char*>(b.data() + at);
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | uint32_t{p[3]};
}

std::string hex32(uint32_t v) {
  char s[16];
  std::snprintf(s, sizeof s, "0x%08x", v);
  return s;
}

// Checks the IDX header (magic and dims) and the payload size; returns the dims.
std::vector<uint32_t> idx_header(const std::string& path, const std::string& b, uint32_t magic, const char* kind,
                                 const char* payload) {
  const std::size_t ndims = magic & 0xff;
  const std::size_t header = 4 + 4 * ndims;
  if (b.size() < 4) throw Error(path + ": truncated: expected a " + std::to_string(header) + "-byte IDX header, got " + std::to_string(b.size()) + " bytes");
  const uint32_t got = big_endian(b, 0);
  if (got != magic) throw Error(path + ": bad IDX magic " + hex32(got) + " (expected " + hex32(magic) + " for " + kind + ")");
  if (b.size() < header) throw Error(path + ": truncated: expected a " + std::to_string(header) + "-byte IDX header, got " + std::to_string(b.size()) + " bytes");
  std::vector<uint32_t> dims(ndims);
  unsigned __int128 expected = 1;
  for (std::size_t i = 0; i < ndims; ++i) {
    dims[i] = big_endian(b, 4 + 4 * i);
    expected *= dims[i];
  }
  if (dims[0] == 0) throw Error(path + ": the IDX file holds no " + kind);
  for (std::size_t i = 1; i < ndims; ++i)
    if (dims[i] == 0) throw Error(path + ": IDX dimension " + std::to_string(i) + " is 0");
  const std::size_t have = b.size() - header;
  if (expected > have)
    throw Error(path + ": truncated: expected " + std::to_string(static_cast<uint64_t>(expected)) + " bytes of " + payload + ", got " + std::to_string(have));
  if (expected < have)
    throw Error(path + ": " + std::to_string(have - static_cast<std::size_t>(expected)) + " bytes of trailing data after " +
                std::to_string(static_cast<uint64_t>(expected)) + " bytes of " + payload);
  return dims;
}

// A CSV line split at commas, cells trimmed of surrounding blanks (and the '\r' of CRLF files).
void split_cells(std::string_view line, std::vector<std::string_view>& cells) {
  cells.clear();
  std::size_t start = 0;
  for (;;) {
    std::size_t end = line.find(',', start);
    std::string_view c = line.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    while (!c.empty() && (c.front() == ' ' || c.front() == '\t')) c.remove_prefix(1);
    while (!c.empty() && (c.back() == ' ' || c.back() == '\t' || c.back() == '\r')) c.remove_suffix(1);
    cells.push_back(c);
    if (end == std::string_view::npos) return;
    start = end + 1;
  }
}

bool blank(std::string_view line) {
  return line.find_first_not_of(" \t\r") == std::string_view::npos;
}

// Strict: the whole cell must be one finite number.
bool parse_number(std::string_view t, double& v) {
  if (!t.empty() && t[0] == '+') t.remove_prefix(1);
  if (t.empty()) return false;
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  return ec == std::errc() && p == t.data() + t.size() && std::isfinite(v);
}

}  // namespace

Dataset read_idx(const std::string& images, const std::string& labels) {
  const std::string ib = read_bytes(images);
  const std::vector<uint32_t> idims = idx_header(images, ib, 0x00000803, "images", "pixels");
  const std::string lb = read_bytes(labels);
  const std::vector<uint32_t> ldims = idx_header(labels, lb, 0x00000801, "labels", "labels");
  if (idims[0] != ldims[0])
    throw Error(images + ": " + std::to_string(idims[0]) + " images but " + labels + " has " + std::to_string(ldims[0]) + " labels");

  Dataset d;
  d.count = idims[0];
  d.height = idims[1];
  d.width = idims[2];
  d.channels = 1;
  std::array<float, 256> scale;
  for (int v = 0; v < 256; ++v) scale[v] = static_cast<float>(v) / 255.0f;
  const auto* src = reinterpret_cast<const unsigned char*>(ib.data() + 16);
  d.pixels.resize(d.count * d.features());
  for (std::size_t i = 0; i < d.pixels.size(); ++i) d.pixels[i] = scale[src[i]];
  const auto* lab = reinterpret_cast<const unsigned char*>(lb.data() + 8);
  d.labels.assign(lab, lab + d.count);
  d.classes = 1 + *std::max_element(d.labels.begin(), d.labels.end());
  return d;
}

Dataset read_mnist_dir(const std::string& dir, bool train) {
  const std::string prefix = dir + "/" + (train ? "train" : "t10k");
  auto pick = [](const std::string& base) {
    FILE* f = std::fopen((base + ".gz").c_str(), "rb");
    if (f) {
      std::fclose(f);
      return base + ".gz";
    }
    return base;  // the plain name; read_idx reports it if it is missing too
  };
  return read_idx(pick(prefix + "-images-idx3-ubyte"), pick(prefix + "-labels-idx1-ubyte"));
}

Dataset read_csv(const std::string& path, const std::string& label_column) {
  const std::string text = read_bytes(path);
  std::string_view rest = text;
  int line_no = 0;
  auto fail = [&](const std::string& what) -> void { throw Error(path + ":" + std::to_string(line_no) + ": " + what); };
  // Next non-blank line, or false at the end.
  auto next = [&](std::string_view& line) {
    while (!rest.empty()) {
      const std::size_t end = rest.find('\n');
      line = rest.substr(0, end);
      rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
      ++line_no;
      if (!blank(line)) return true;
    }
    return false;
  };

  std::string_view line;
  if (!next(line)) {
    line_no = 1;
    fail("empty file, expected a header row naming the columns");
  }
  std::vector<std::string_view> header;
  split_cells(line, header);
  std::size_t label_at = header.size();
  for (std::size_t i = 0; i < header.size(); ++i) {
    if (header[i].empty()) fail("column " + std::to_string(i + 1) + " has an empty name");
    for (std::size_t j = 0; j < i; ++j)
      if (header[j] == header[i]) fail("column '" + std::string(header[i]) + "' appears twice in the header");
    if (header[i] == label_column) label_at = i;
  }
  if (label_at == header.size()) fail("no label column '" + label_column + "' in the header");
  const std::size_t width = header.size();

  Dataset d;
  d.channels = 1;
  d.height = 1;
  d.width = width - 1;
  std::vector<std::string_view> cells;
  while (next(line)) {
    split_cells(line, cells);
    if (cells.size() != width)
      fail("expected " + std::to_string(width) + " cells, got " + std::to_string(cells.size()));
    for (std::size_t i = 0; i < width; ++i) {
      double v = 0;
      if (i == label_at) {
        if (!parse_number(cells[i], v) || v < 0 || v != std::floor(v) || v > 1e6)
          fail("label '" + std::string(cells[i]) + "' in column '" + label_column + "' is not a non-negative integer");
        d.labels.push_back(static_cast<int32_t>(v));
      } else {
        if (!parse_number(cells[i], v))
          fail("column '" + std::string(header[i]) + "': '" + std::string(cells[i]) + "' is not a finite number");
        d.pixels.push_back(static_cast<float>(v));
      }
    }
  }
  if (d.labels.empty()) {
    ++line_no;
    fail("no data rows after the header");
  }
  d.count = d.labels.size();
  d.classes = 1 + *std::max_element(d.labels.begin(), d.labels.end());
  return d;
}

Dataset subset(const Dataset& d, const std::vector<std::size_t>& index) {
  Dataset s;
  s.count = index.size();
  s.channels = d.channels;
  s.height = d.height;
  s.width = d.width;
  s.classes = d.classes;  // the label space stays that of the whole set, even if a class is absent here
  const std::size_t f = d.features();
  s.pixels.resize(s.count * f);
  s.labels.resize(s.count);
  for (std::size_t k = 0; k < index.size(); ++k) {
    const std::size_t i = index[k];
    if (i >= d.count) throw Error("subset: row " + std::to_string(i) + " is outside 0.." + std::to_string(d.count) + "-1");
    std::copy_n(d.pixels.begin() + i * f, f, s.pixels.begin() + k * f);
    s.labels[k] = d.labels[i];
  }
  return s;
}

Split split(const Dataset& d, double fraction, uint64_t seed) {
  if (!(fraction >= 0 && fraction <= 1)) throw Error("split: fraction " + std::to_string(fraction) + " is outside [0, 1]");
  std::vector<std::vector<std::size_t>> by_class(std::max(d.classes, 0));
  for (std::size_t i = 0; i < d.count; ++i) {
    const int32_t c = d.labels[i];
    if (c < 0 || c >= d.classes) throw Error("split: row " + std::to_string(i) + " has label " + std::to_string(c) + " outside 0.." + std::to_string(d.classes - 1));
    by_class[c].push_back(i);
  }
  Rng rng(seed);
  std::vector<std::size_t> first, second;
  for (auto& rows : by_class) {
    for (std::size_t i = rows.size(); i > 1; --i) std::swap(rows[i - 1], rows[rng.below(i)]);  // Fisher-Yates
    const auto take = static_cast<std::size_t>(std::llround(fraction * static_cast<double>(rows.size())));
    second.insert(second.end(), rows.begin(), rows.begin() + take);
    first.insert(first.end(), rows.begin() + take, rows.end());
  }
  // Back to file order: which rows go where is random, their order need not be.
  std::sort(first.begin(), first.end());
  std::sort(second.begin(), second.end());
  return {subset(d, first), subset(d, second)};
}

namespace {

// The rows of each class, checked against d.classes; `what` names the caller in errors.
std::vector<std::vector<std::size_t>> rows_by_class(const Dataset& d, int parts, const char* what) {
  if (parts < 1) throw Error(std::string(what) + ": parts = " + std::to_string(parts) + " must be >= 1");
  if (d.count < static_cast<std::size_t>(parts))
    throw Error(std::string(what) + ": " + std::to_string(parts) + " parts but only " + std::to_string(d.count) + " rows");
  std::vector<std::vector<std::size_t>> by_class(std::max(d.classes, 0));
  for (std::size_t i = 0; i < d.count; ++i) {
    const int32_t c = d.labels[i];
    if (c < 0 || c >= d.classes)
      throw Error(std::string(what) + ": row " + std::to_string(i) + " has label " + std::to_string(c) + " outside 0.." + std::to_string(d.classes - 1));
    by_class[c].push_back(i);
  }
  return by_class;
}

void shuffle(std::vector<std::size_t>& v, Rng& rng) {
  for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);  // Fisher-Yates
}

// log of a Gamma(a, 1) draw, a > 0: Marsaglia and Tsang (2000) for a >= 1; for a < 1,
// Gamma(a) = Gamma(a + 1) · U^(1/a). Kept in logs because U^(1/a) underflows for small a (a = 0.01
// gives 0 for U < 0.9), which would leave a Dirichlet draw of all zeros. Written here rather than
// std::gamma_distribution, whose algorithm (and so the partition a seed gives) differs between
// standard libraries.
double log_gamma_draw(double a, Rng& rng) {
  if (a < 1) return log_gamma_draw(a + 1, rng) + std::log(1.0 - rng.uniform()) / a;  // 1 − U ∈ (0, 1]
  const double d = a - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    // Standard normal by Box–Muller.
    const double x = std::sqrt(-2.0 * std::log(1.0 - rng.uniform())) * std::cos(2.0 * std::numbers::pi * rng.uniform());
    double v = 1.0 + c * x;
    if (v <= 0) continue;
    v = v * v * v;
    const double u = 1.0 - rng.uniform();
    if (std::log(u) < 0.5 * x * x + d - d * v + d * std::log(v)) return std::log(d) + std::log(v);
  }
}

// Proportions ~ Dirichlet(alpha, ..., alpha) over `parts`: Gamma draws normalised (in logs).
std::vector<double> dirichlet_draw(int parts, double alpha, Rng& rng) {
  std::vector<double> p(parts);
  for (double& x : p) x = log_gamma_draw(alpha, rng);
  const double top = *std::max_element(p.begin(), p.end());
  double sum = 0;
  for (double& x : p) sum += (x = std::exp(x - top));
  for (double& x : p) x /= sum;
  return p;
}

}  // namespace

std::vector<std::vector<std::size_t>> partition_iid(const Dataset& d, int parts, uint64_t seed) {
  std::vector<std::vector<std::size_t>> by_class = rows_by_class(d, parts, "partition_iid");
  Rng rng(seed);
  std::vector<std::vector<std::size_t>> out(parts);
  std::size_t next = 0;  // continues across classes, so part sizes stay within 1 of each other
  for (auto& rows : by_class) {
    shuffle(rows, rng);
    for (std::size_t i : rows) out[next++ % parts].push_back(i);
  }
  for (auto& part : out) std::sort(part.begin(), part.end());
  return out;
}

std::vector<std::vector<std::size_t>> partition_dirichlet(const Dataset& d, int parts, double alpha, uint64_t seed) {
  if (!(std::isfinite(alpha) && alpha > 0)) {
    char text[32];
    std::snprintf(text, sizeof text, "%g", alpha);
    throw Error("partition_dirichlet: alpha = " + std::string(text) + " must be a finite number > 0");
  }
  std::vector<std::vector<std::size_t>> by_class = rows_by_class(d, parts, "partition_dirichlet");
  Rng rng(seed);
  std::vector<std::vector<std::size_t>> out(parts);
  for (auto& rows : by_class) {
    if (rows.empty()) continue;
    shuffle(rows, rng);
    const std::vector<double> p = dirichlet_draw(parts, alpha, rng);
    const auto n = static_cast<double>(rows.size());
    double cumulative = 0;
    std::size_t begin = 0;
    for (int k = 0; k < parts; ++k) {
      cumulative += p[k];
      const std::size_t end = k + 1 == parts ? rows.size() : std::min(rows.size(), static_cast<std::size_t>(std::llround(cumulative * n)));
      if (end > begin) out[k].insert(out[k].end(), rows.begin() + begin, rows.begin() + end);
      begin = std::max(begin, end);
    }
  }
  // Every part gets at least one row: an empty one takes a random row of the currently largest.
  for (auto& part : out) {
    if (!part.empty()) continue;
    auto& largest = *std::max_element(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.size() < b.size(); });
    const std::size_t at = rng.below(largest.size());
    part.push_back(largest[at]);
    largest.erase(largest.begin() + static_cast<std::ptrdiff_t>(at));
  }
  for (auto& part : out) std::sort(part.begin(), part.end());
  return out;
}

}  // namespace gng
