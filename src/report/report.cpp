#include "report/report.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>

#include "core/error.h"
#include "core/file.h"
#include "core/html.h"

namespace gng {

namespace {

// printf into a std::string: the SVG is mostly numbers with a fixed precision.
[[gnu::format(printf, 1, 2)]] std::string fmt(const char* format, ...) {
  char buf[512];
  va_list args;
  va_start(args, format);
  const int n = std::vsnprintf(buf, sizeof buf, format, args);
  va_end(args);
  if (n < 0) return {};
  if (static_cast<std::size_t>(n) < sizeof buf) return std::string(buf, n);
  std::string big(static_cast<std::size_t>(n) + 1, '\0');
  va_start(args, format);
  std::vsnprintf(big.data(), big.size(), format, args);
  va_end(args);
  big.resize(n);
  return big;
}


// A number for people: 4 significant digits, thousands grouped for big integers, and words rather
// than "nan" for values that were never measured.
std::string num(double v, int digits = 4) {
  if (std::isnan(v)) return "n/a";
  if (std::isinf(v)) return v > 0 ? "∞" : "−∞";
  if (std::fabs(v) >= 1e4 && std::fabs(v) < 1e15 && v == std::floor(v)) {
    std::string d = fmt("%.0f", std::fabs(v)), o;
    for (std::size_t i = 0; i < d.size(); ++i) {
      if (i > 0 && (d.size() - i) % 3 == 0) o += ',';
      o += d[i];
    }
    return (v < 0 ? "-" : "") + o;
  }
  return fmt("%.*g", digits, v);
}

std::string duration(double s) {
  if (!std::isfinite(s) || s < 0) return "n/a";
  if (s < 60) return fmt("%.1f s", s);
  const long t = std::lround(s);
  if (t < 3600) return fmt("%ldm %02lds", t / 60, t % 60);
  return fmt("%ldh %02ldm %02lds", t / 3600, t / 60 % 60, t % 60);
}

double metric(const ReportCandidate& c, const std::string& name) {
  auto it = c.metrics.find(name);
  return it == c.metrics.end() ? std::numeric_limits<double>::quiet_NaN() : it->second;
}

// The candidate with the highest finite score, or null.
const ReportCandidate* best(const ReportData& r) {
  const ReportCandidate* b = nullptr;
  for (const auto& c : r.candidates)
    if (std::isfinite(c.score) && (!b || c.score > b->score)) b = &c;
  return b;
}

const ReportCandidate* promoted(const ReportData& r) {
  for (const auto& c : r.candidates)
    if (c.promoted) return &c;
  return nullptr;
}

// Metric columns: the usual ones first, then whatever else the candidates carry, at most 8.
std::vector<std::string> metric_columns(const ReportData& r) {
  static const std::vector<std::string> preferred = {"accuracy", "latency_ms", "params", "flops", "energy_mj", "robustness"};
  std::set<std::string> present;
  for (const auto& c : r.candidates)
    for (const auto& [k, v] : c.metrics) present.insert(k);
  std::vector<std::string> cols;
  for (const auto& p : preferred)
    if (present.erase(p)) cols.push_back(p);
  for (const auto& p : present) cols.push_back(p);
  if (cols.size() > 8) cols.resize(8);
  return cols;
}

// ---- plotting ----------------------------------------------------------------------------------

// One axis: a data domain mapped onto a pixel range, linear or log10, with "nice" ticks.
struct Axis {
  double lo = 0, hi = 1, p0 = 0, p1 = 1;
  bool log = false;
  std::vector<double> ticks;
  int decimals = 0;

  double map(double v) const {
    const double t = log ? (std::log10(v) - std::log10(lo)) / (std::log10(hi) - std::log10(lo)) : (v - lo) / (hi - lo);
    return p0 + t * (p1 - p0);
  }

  std::string label(double v) const {
    if (log) return num(v, 3);
    return fmt("%.*f", decimals, v == 0 ? 0.0 : v);  // no "-0"
  }

  // Linear: ticks at 1, 2 or 5 × 10^k, the domain widened to whole steps.
  static Axis linear(double lo, double hi, double p0, double p1, int target = 5) {
    Axis a;
    a.p0 = p0;
    a.p1 = p1;
    if (!(hi > lo)) {
      const double pad = lo == 0 ? 1 : std::fabs(lo) * 0.1;
      lo -= pad;
      hi += pad;
    }
    const double raw = (hi - lo) / target;
    const double mag = std::pow(10, std::floor(std::log10(raw)));
    const double f = raw / mag;
    const double step = (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
    a.lo = std::floor(lo / step + 1e-9) * step;
    a.hi = std::ceil(hi / step - 1e-9) * step;
    for (double t = a.lo; t <= a.hi + step * 1e-6; t += step) a.ticks.push_back(std::fabs(t) < step * 1e-9 ? 0 : t);
    a.decimals = std::max(0, -static_cast<int>(std::floor(std::log10(step) + 1e-9)));
    return a;
  }

  // Log: whole decades, with 2 and 5 in between when there are few of them.
  static Axis logarithmic(double lo, double hi, double p0, double p1) {
    Axis a;
    a.log = true;
    a.p0 = p0;
    a.p1 = p1;
    const int d0 = static_cast<int>(std::floor(std::log10(lo) + 1e-9)), d1 = static_cast<int>(std::ceil(std::log10(hi) - 1e-9));
    a.lo = std::pow(10, d0);
    a.hi = std::pow(10, std::max(d1, d0 + 1));
    for (int d = d0; d <= std::max(d1, d0 + 1); ++d) {
      const double p = std::pow(10, d);
      a.ticks.push_back(p);
      if (d1 - d0 <= 2 && d < std::max(d1, d0 + 1))
        for (double m : {2.0, 5.0}) a.ticks.push_back(m * p);
    }
    std::sort(a.ticks.begin(), a.ticks.end());
    return a;
  }
};

constexpr double kW = 560, kH = 340;                     // plot size in SVG units
constexpr double kLeft = 64, kRight = 20, kTop = 40, kBottom = 52;

// `natural`: drawn at its own size (never stretched), only shrunk to fit.
std::string svg_open(double w, double h, const std::string& label, bool natural = false) {
  return fmt("<svg class=\"plot\" viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" height=\"%.0f\"%s role=\"img\" aria-label=\"%s\">\n", w, h,
             w, h, natural ? fmt(" style=\"max-width:%.0fpx\"", w).c_str() : "", html_escape(label).c_str());
}

// Grid, axes, tick labels and axis titles for a plot area.
std::string frame(const Axis& x, const Axis& y, const std::string& xtitle, const std::string& ytitle) {
  std::string o;
  o += fmt("<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" class=\"area\"/>\n", x.p0, y.p1, x.p1 - x.p0, y.p0 - y.p1);
  for (double t : x.ticks) {
    const double px = x.map(t);
    o += fmt("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>", px, y.p0, px, y.p1);
    o += fmt("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"axis\"/>", px, y.p0, px, y.p0 + 5);
    o += fmt("<text x=\"%.1f\" y=\"%.1f\" class=\"tick\" text-anchor=\"middle\">%s</text>\n", px, y.p0 + 18, html_escape(x.label(t)).c_str());
  }
  for (double t : y.ticks) {
    const double py = y.map(t);
    o += fmt("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>", x.p0, py, x.p1, py);
    o += fmt("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"axis\"/>", x.p0 - 5, py, x.p0, py);
    o += fmt("<text x=\"%.1f\" y=\"%.1f\" class=\"tick\" text-anchor=\"end\">%s</text>\n", x.p0 - 8, py + 4, html_escape(y.label(t)).c_str());
  }
  o += fmt("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"axis\"/>", x.p0, y.p0, x.p1, y.p0);
  o += fmt("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"axis\"/>\n", x.p0, y.p0, x.p0, y.p1);
  o += fmt("<text x=\"%.1f\" y=\"%.1f\" class=\"title\" text-anchor=\"middle\">%s</text>\n", (x.p0 + x.p1) / 2, y.p0 + 40,
           html_escape(xtitle).c_str());
  o += fmt("<text transform=\"translate(16 %.1f) rotate(-90)\" class=\"title\" text-anchor=\"middle\">%s</text>\n",
           (y.p0 + y.p1) / 2, html_escape(ytitle).c_str());
  return o;
}

// An empty frame that says why there is nothing to plot.
std::string empty_plot(const std::string& label, const std::string& message, double w = kW, double h = kH, bool natural = false) {
  std::string o = svg_open(w, h, label, natural);
  o += fmt("<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" class=\"area empty\"/>\n", kLeft, kTop, w - kLeft - kRight,
           h - kTop - kBottom);
  o += fmt("<text x=\"%.1f\" y=\"%.1f\" class=\"note\" text-anchor=\"middle\">%s</text>\n", (kLeft + w - kRight) / 2,
           (kTop + h - kBottom) / 2, html_escape(message).c_str());
  return o + "</svg>\n";
}

std::string convergence_plot(const ReportData& r) {
  std::vector<std::pair<double, double>> pts;
  for (const auto& [e, s] : r.convergence)
    if (std::isfinite(e) && std::isfinite(s)) pts.emplace_back(e, s);
  std::sort(pts.begin(), pts.end(), [](auto& a, auto& b) { return a.first < b.first; });
  if (pts.empty()) return empty_plot("convergence", "no evaluations yet");
  double ylo = pts[0].second, yhi = ylo, xhi = pts.back().first;
  for (const auto& p : pts) ylo = std::min(ylo, p.second), yhi = std::max(yhi, p.second);
  const Axis x = Axis::linear(std::min(0.0, pts[0].first), std::max(xhi, 1.0), kLeft, kW - kRight, 6);
  const Axis y = Axis::linear(ylo, yhi, kH - kBottom, kTop, 5);
  std::string o = svg_open(kW, kH, "convergence: best score so far against evaluations");
  o += frame(x, y, "evaluations", "best score so far");
  // A step line: the best so far holds until the next improvement.
  std::string d = fmt("M%.1f %.1f", x.map(pts[0].first), y.map(pts[0].second));
  for (std::size_t i = 1; i < pts.size(); ++i) d += fmt(" H%.1f V%.1f", x.map(pts[i].first), y.map(pts[i].second));
  d += fmt(" H%.1f", x.p1);
  o += "<path d=\"" + d + "\" class=\"step\"/>\n";
  double last = std::numeric_limits<double>::quiet_NaN();
  for (const auto& [e, s] : pts) {
    if (s != last)
      o += fmt("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" class=\"improve\"><title>%s evaluations: best %s</title></circle>\n", x.map(e),
               y.map(s), html_escape(num(e)).c_str(), html_escape(num(s)).c_str());
    last = s;
  }
  o += fmt("<text x=\"%.1f\" y=\"%.1f\" class=\"legend\" text-anchor=\"end\">best %s after %s evaluations</text>\n", x.p1, kTop - 14,
           html_escape(num(pts.back().second)).c_str(), html_escape(num(pts.back().first)).c_str());
  return o + "</svg>\n";
}

std::string pareto_plot(const ReportData& r) {
  struct P {
    double lat, acc;
    const ReportCandidate* c;
  };
  std::vector<P> pts;
  for (const auto& c : r.candidates) {
    const double lat = metric(c, "latency_ms"), acc = metric(c, "accuracy");
    if (std::isfinite(lat) && std::isfinite(acc)) pts.push_back({lat, acc, &c});
  }
  if (pts.empty()) return empty_plot("Pareto front", "no candidate has both accuracy and latency yet");
  double xlo = pts[0].lat, xhi = xlo, ylo = pts[0].acc, yhi = ylo;
  for (const auto& p : pts) {
    xlo = std::min(xlo, p.lat), xhi = std::max(xhi, p.lat);
    ylo = std::min(ylo, p.acc), yhi = std::max(yhi, p.acc);
  }
  const bool log = xlo > 0 && xhi > 10 * xlo;
  const Axis x = log ? Axis::logarithmic(xlo, xhi, kLeft, kW - kRight) : Axis::linear(xlo, xhi, kLeft, kW - kRight, 6);
  const Axis y = Axis::linear(ylo, yhi, kH - kBottom, kTop, 5);
  std::string o = svg_open(kW, kH, "Pareto front: accuracy against latency");
  o += frame(x, y, log ? "latency (ms, log scale)" : "latency (ms)", "accuracy");
  auto tip = [](const P& p) {
    return fmt("<title>#%d  accuracy %s  latency %s ms\n%s</title>", p.c->id, num(p.acc).c_str(), num(p.lat).c_str(), html_escape(p.c->design).c_str());
  };
  for (const auto& p : pts)
    if (!p.c->pareto) o += fmt("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" class=\"cand\">", x.map(p.lat), y.map(p.acc)) + tip(p) + "</circle>\n";
  // The front as a staircase: from each point, latency grows before accuracy does.
  std::vector<P> front;
  for (const auto& p : pts)
    if (p.c->pareto) front.push_back(p);
  std::sort(front.begin(), front.end(), [](const P& a, const P& b) { return a.lat < b.lat || (a.lat == b.lat && a.acc < b.acc); });
  if (front.size() > 1) {
    std::string d = fmt("M%.1f %.1f", x.map(front[0].lat), y.map(front[0].acc));
    for (std::size_t i = 1; i < front.size(); ++i) d += fmt(" H%.1f V%.1f", x.map(front[i].lat), y.map(front[i].acc));
    o += "<path d=\"" + d + "\" class=\"front\"/>\n";
  }
  for (const auto& p : front) o += fmt("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" class=\"onfront\">", x.map(p.lat), y.map(p.acc)) + tip(p) + "</circle>\n";
  for (const auto& p : pts)
    if (p.c->promoted) {
      const double px = x.map(p.lat), py = y.map(p.acc);
      o += fmt("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"10\" class=\"promoted\"/>", px, py);
      const bool right = px < (x.p0 + x.p1) / 2;
      o += fmt("<text x=\"%.1f\" y=\"%.1f\" class=\"callout\" text-anchor=\"%s\">promoted #%d</text>\n", px + (right ? 14 : -14),
               py + (py < kTop + 20 ? 18 : -10), right ? "start" : "end", p.c->id);
    }
  // Legend above the plot area.
  double lx = x.p0;
  const double ly = kTop - 16;
  o += fmt("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" class=\"cand\"/><text x=\"%.1f\" y=\"%.1f\" class=\"legend\">candidate</text>", lx + 4,
           ly - 4, lx + 12, ly);
  lx += 88;
  o += fmt("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" class=\"onfront\"/><text x=\"%.1f\" y=\"%.1f\" class=\"legend\">Pareto front</text>", lx + 4,
           ly - 4, lx + 13, ly);
  lx += 100;
  o += fmt("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"6\" class=\"promoted\"/><text x=\"%.1f\" y=\"%.1f\" class=\"legend\">promoted</text>\n", lx + 6,
           ly - 4, lx + 16, ly);
  return o + "</svg>\n";
}

// Diverging blue–white–red for t in [−1, 1] (the ends of ColorBrewer's RdBu).
std::string diverging(double t) {
  if (!std::isfinite(t)) return "#d4d4d8";
  t = std::clamp(t, -1.0, 1.0);
  const double blue[3] = {33, 102, 172}, red[3] = {178, 24, 43}, white[3] = {247, 247, 247};
  const double* end = t < 0 ? blue : red;
  const double a = std::fabs(t);
  int c[3];
  for (int i = 0; i < 3; ++i) c[i] = static_cast<int>(std::lround(white[i] + (end[i] - white[i]) * a));
  return fmt("#%02x%02x%02x", c[0], c[1], c[2]);
}

std::string shorten(const std::string& s, std::size_t max) {
  if (s.size() <= max) return s;
  std::size_t cut = max - 1;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;  // not inside a UTF-8 character
  return s.substr(0, cut) + "…";
}

std::string heatmap(const ReportData& r) {
  const std::size_t n = r.couplings.size();
  if (n == 0) return empty_plot("surrogate couplings", "no surrogate yet: it is fitted after the first evaluations", kW, 180, true);
  auto name = [&](std::size_t i) { return shorten(i < r.bit_names.size() ? r.bit_names[i] : "x" + std::to_string(i), 22); };
  auto value = [&](std::size_t i, std::size_t j) {
    return j < r.couplings[i].size() ? r.couplings[i][j] : std::numeric_limits<double>::quiet_NaN();
  };
  double scale = 0;
  std::size_t longest = 1;
  for (std::size_t i = 0; i < n; ++i) {
    longest = std::max(longest, name(i).size());
    for (std::size_t j = 0; j < n; ++j)
      if (std::isfinite(value(i, j))) scale = std::max(scale, std::fabs(value(i, j)));
  }
  const double cell = std::clamp(520.0 / static_cast<double>(n), 8.0, 34.0);
  const double font = std::min(12.0, std::max(6.0, cell * 0.75));
  const double label = std::min(170.0, 10 + static_cast<double>(longest) * font * 0.58);
  const double x0 = label + 8, y0 = label * 0.75 + 12;  // column labels are slanted, they need less height
  const double side = cell * static_cast<double>(n);
  const double w = x0 + side + 110, h = std::max(y0 + side + 20, 200.0);
  std::string o = svg_open(w, h, "surrogate couplings heat map", true);
  for (std::size_t i = 0; i < n; ++i) {
    const double c = x0 + cell * (static_cast<double>(i) + 0.5);
    o += fmt("<text x=\"%.1f\" y=\"%.1f\" class=\"hlabel\" style=\"font-size:%.1fpx\" text-anchor=\"end\">%s</text>", x0 - 6,
             y0 + cell * (static_cast<double>(i) + 0.5) + font * 0.35, font, html_escape(name(i)).c_str());
    o += fmt("<text transform=\"translate(%.1f %.1f) rotate(-50)\" class=\"hlabel\" style=\"font-size:%.1fpx\">%s</text>\n", c + font * 0.3,
             y0 - 6, font, html_escape(name(i)).c_str());
  }
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < n; ++j) {
      const double v = value(i, j);
      o += fmt("<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"%s><title>%s × %s: %s</title></rect>\n",
               x0 + cell * static_cast<double>(j), y0 + cell * static_cast<double>(i), cell, cell,
               diverging(scale > 0 ? v / scale : 0 * v).c_str(), i == j ? " class=\"diag\"" : "", html_escape(name(i)).c_str(),
               html_escape(name(j)).c_str(), html_escape(num(v)).c_str());
    }
  o += fmt("<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" class=\"outline\"/>\n", x0, y0, side, side);
  // Colour legend: a vertical bar from +scale (red) through 0 (white) to −scale (blue).
  const double lx = x0 + side + 28, lh = std::min(side, 220.0), ly = y0;
  o += "<defs><linearGradient id=\"gng-diverging\" x1=\"0\" y1=\"0\" x2=\"0\" y2=\"1\">";
  for (int k = 0; k <= 10; ++k) o += fmt("<stop offset=\"%.1f\" stop-color=\"%s\"/>", k / 10.0, diverging(1 - k / 5.0).c_str());
  o += "</linearGradient></defs>\n";
  o += fmt("<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"%.1f\" fill=\"url(#gng-diverging)\" class=\"legendbar\"/>\n", lx, ly, lh);
  const double s = scale > 0 ? scale : 1;
  for (int k = 0; k < 3; ++k) {
    const double py = ly + lh * k / 2.0;
    o += fmt("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"axis\"/>", lx + 14, py, lx + 18, py);
    o += fmt("<text x=\"%.1f\" y=\"%.1f\" class=\"tick\">%s</text>\n", lx + 21, py + 4, html_escape(num(s * (1 - k), 3)).c_str());
  }
  return o + "</svg>\n";
}

// ---- page --------------------------------------------------------------------------------------

const char* kStyle = R"(
:root { --ink:#1f2937; --muted:#6b7280; --line:#e5e7eb; --accent:#2563eb; --front:#d97706; --bg:#f8fafc; }
* { box-sizing:border-box; }
body { margin:0; background:var(--bg); color:var(--ink); font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif; }
main { max-width:1200px; margin:0 auto; padding:24px 28px 48px; }
header { display:flex; align-items:center; gap:16px; flex-wrap:wrap; border-bottom:1px solid var(--line); padding-bottom:14px; }
h1 { font-size:22px; margin:0; font-weight:650; }
h1 code { font-size:20px; }
h2 { font-size:16px; margin:32px 0 10px; font-weight:650; }
code, .mono { font-family:ui-monospace,"DejaVu Sans Mono",Menlo,monospace; font-size:12.5px; }
.sub { color:var(--muted); margin-left:auto; font-size:13px; }
.badge { display:inline-block; padding:2px 10px; border-radius:999px; font-size:12px; font-weight:600; background:#e0e7ff; color:#3730a3; }
.badge.finished { background:#dcfce7; color:#166534; } .badge.awaiting { background:#fef3c7; color:#92400e; }
.badge.stopped { background:#fee2e2; color:#991b1b; }
.notes { margin:18px 0 6px; padding:12px 16px; background:#fffbeb; border:1px solid #fde68a; border-left:4px solid #f59e0b; border-radius:6px; white-space:pre-wrap; }
.notes strong { display:block; margin-bottom:2px; }
.cards { display:grid; grid-template-columns:repeat(auto-fit,minmax(160px,1fr)); gap:12px; margin:18px 0; }
.card { background:#fff; border:1px solid var(--line); border-radius:8px; padding:10px 14px; }
.card .k { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
.card .v { font-size:20px; font-weight:600; overflow-wrap:anywhere; }
.card .d { color:var(--muted); font-size:12px; overflow-wrap:anywhere; }
.bar { height:6px; background:var(--line); border-radius:3px; margin-top:6px; overflow:hidden; }
.bar span { display:block; height:100%; background:var(--accent); }
.grid2 { display:grid; grid-template-columns:repeat(auto-fit,minmax(460px,1fr)); gap:16px; }
figure { margin:0; background:#fff; border:1px solid var(--line); border-radius:8px; padding:12px; break-inside:avoid; }
figcaption { font-weight:600; margin-bottom:4px; } figcaption span { font-weight:400; color:var(--muted); font-size:12.5px; }
svg.plot { display:block; width:100%; height:auto; max-width:100%; font-family:inherit; margin:0 auto; }
svg.plot .area { fill:#fff; } svg.plot .area.empty { fill:#f9fafb; stroke:var(--line); }
svg.plot .grid { stroke:#eef0f3; } svg.plot .axis { stroke:#9ca3af; } svg.plot .outline { fill-opacity:1; stroke:#9ca3af; fill:none; }
svg.plot .legendbar { stroke:#9ca3af; }
svg.plot .tick { font-size:11px; fill:#4b5563; } svg.plot .title { font-size:12px; fill:#374151; }
svg.plot .legend { font-size:11.5px; fill:#374151; } svg.plot .note { font-size:13px; fill:var(--muted); }
svg.plot .step { fill:none; stroke:var(--accent); stroke-width:2; } svg.plot .improve { fill:var(--accent); stroke:#fff; stroke-width:1; }
svg.plot .cand { fill:#9ca3af; fill-opacity:.75; } svg.plot .front { fill:none; stroke:var(--front); stroke-width:1.8; stroke-dasharray:5 3; }
svg.plot .onfront { fill:var(--front); stroke:#fff; stroke-width:1.2; } svg.plot .promoted { fill:none; stroke:#059669; stroke-width:2.2; }
svg.plot .callout { font-size:11.5px; font-weight:600; fill:#047857; }
svg.plot .hlabel { fill:#374151; font-family:ui-monospace,"DejaVu Sans Mono",monospace; } svg.plot .diag { stroke:#6b7280; stroke-width:.6; }
table { border-collapse:collapse; width:100%; background:#fff; border:1px solid var(--line); border-radius:8px; font-size:13px; }
th, td { padding:6px 10px; border-bottom:1px solid var(--line); text-align:left; vertical-align:top; }
th { background:#f3f4f6; font-weight:600; font-size:12px; color:#374151; white-space:nowrap; }
td.n { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; } th.n { text-align:right; }
tbody tr:nth-child(even) { background:#fafafa; }
tr.pareto td:first-child { box-shadow:inset 3px 0 0 var(--front); } tr.promoted { background:#ecfdf5 !important; }
.tag { display:inline-block; font-size:11px; padding:0 6px; border-radius:4px; margin-left:4px; font-weight:600; }
.tag.front { background:#fef3c7; color:#92400e; } .tag.prom { background:#d1fae5; color:#065f46; }
.kv { width:auto; min-width:340px; } .kv th { text-align:left; background:#f9fafb; width:1%; }
.two { display:grid; grid-template-columns:repeat(auto-fit,minmax(340px,1fr)); gap:16px; align-items:start; }
.empty-note { color:var(--muted); font-style:italic; }
.scroll { overflow-x:auto; } td.st { white-space:nowrap; }
footer { margin-top:36px; color:var(--muted); font-size:12px; }
@media print { body { background:#fff; } main { max-width:none; padding:0; } figure, table { break-inside:avoid; }
  .grid2 { grid-template-columns:1fr 1fr; } h2 { break-after:avoid; } }
)";

std::string state_class(const std::string& s) {
  if (s.rfind("finished", 0) == 0) return "finished";
  if (s.rfind("awaiting", 0) == 0) return "awaiting";
  if (s.rfind("stopped", 0) == 0 || s.rfind("failed", 0) == 0) return "stopped";
  return "running";
}

std::string card(const std::string& key, const std::string& value, const std::string& detail = "", double progress = -1) {
  std::string o = "<div class=\"card\"><div class=\"k\">" + html_escape(key) + "</div><div class=\"v\">" + html_escape(value) + "</div>";
  if (!detail.empty()) o += "<div class=\"d\">" + html_escape(detail) + "</div>";
  if (progress >= 0) o += fmt("<div class=\"bar\"><span style=\"width:%.1f%%\"></span></div>", std::clamp(progress, 0.0, 1.0) * 100);
  return o + "</div>\n";
}

std::string kv_row(const std::string& k, const std::string& v) { return "<tr><th>" + html_escape(k) + "</th><td>" + html_escape(v) + "</td></tr>\n"; }

std::string metrics_table(const std::map<std::string, double>& m) {
  std::string o = "<table class=\"kv\"><tbody>\n";
  for (const auto& [k, v] : m) o += "<tr><th>" + html_escape(k) + "</th><td class=\"n\">" + html_escape(num(v)) + "</td></tr>\n";
  return o + "</tbody></table>\n";
}

double fraction(double a, double b) { return b > 0 && std::isfinite(a) ? a / b : -1; }

}  // namespace

std::string render_html(const ReportData& r) {
  const ReportCandidate* top = best(r);
  const ReportCandidate* prom = promoted(r);
  int on_front = 0;
  for (const auto& c : r.candidates) on_front += c.pareto;

  std::string o;
  o.reserve(64 * 1024 + r.candidates.size() * 600 + r.couplings.size() * r.couplings.size() * 160);
  o += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  o += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  o += "<title>gng run " + html_escape(r.run_id) + " — report</title>\n<style>" + std::string(kStyle) + "</style>\n</head>\n<body>\n<main>\n";

  o += "<header><h1>gng run <code>" + html_escape(r.run_id) + "</code></h1><span class=\"badge " + state_class(r.state) + "\">" + html_escape(r.state) +
       "</span>";
  if (!r.config.empty()) o += "<span class=\"sub\">config <code>" + html_escape(r.config) + "</code></span>";
  o += "</header>\n";
  if (!r.notes.empty()) o += "<div class=\"notes\" id=\"notes\"><strong>Notes</strong>" + html_escape(r.notes) + "</div>\n";

  // At a glance.
  o += "<section class=\"cards\">\n";
  o += card("Cycles", std::to_string(r.cycles_done) + " / " + std::to_string(r.cycles), "",
            r.cycles > 0 ? static_cast<double>(r.cycles_done) / r.cycles : -1);
  o += card("Time", duration(r.elapsed_s), r.budget_s > 0 ? "of " + duration(r.budget_s) + " budget" : "no time budget",
            fraction(r.elapsed_s, r.budget_s));
  o += card("Evaluations", std::to_string(r.candidates.size()), std::to_string(on_front) + " on the Pareto front");
  o += card("Best score", top ? num(top->score) : "n/a", top ? "#" + std::to_string(top->id) + "  " + top->design : "");
  if (prom) {
    const auto acc = r.promoted_metrics.find("test_accuracy");
    o += card("Promoted", "#" + std::to_string(prom->id),
              acc != r.promoted_metrics.end() ? "test accuracy " + num(acc->second) : prom->design);
  } else {
    o += card("Promoted", "none yet");
  }
  o += card("Sampler", r.sampler.empty() ? "n/a" : r.sampler);
  o += "</section>\n";

  // Plots.
  o += "<h2>Search</h2>\n<div class=\"grid2\">\n";
  o += "<figure id=\"convergence\"><figcaption>Convergence <span>— best score found so far against the number of evaluations"
       "</span></figcaption>\n" + convergence_plot(r) + "</figure>\n";
  o += "<figure id=\"pareto\"><figcaption>Pareto front <span>— accuracy against latency of every candidate with both; the front is "
       "highlighted</span></figcaption>\n" + pareto_plot(r) + "</figure>\n";
  o += "</div>\n";
  o += "<h2>Surrogate</h2>\n<figure id=\"couplings\"><figcaption>Surrogate coefficients <span>— couplings b<sub>ij</sub> off the "
       "diagonal, linear terms a<sub>i</sub> on it; blue negative, red positive, white 0</span></figcaption>\n<div class=\"scroll\">" +
       heatmap(r) + "</div></figure>\n";

  // Summary and promoted model, side by side.
  o += "<div class=\"two\">\n<section><h2>Summary</h2>\n<table class=\"kv\" id=\"summary\"><tbody>\n";
  o += kv_row("run", r.run_id) + kv_row("state", r.state);
  if (!r.config.empty()) o += kv_row("config", r.config);
  o += kv_row("cycles", std::to_string(r.cycles_done) + " of " + std::to_string(r.cycles));
  o += kv_row("elapsed / budget", duration(r.elapsed_s) + " / " + (r.budget_s > 0 ? duration(r.budget_s) : "none"));
  o += kv_row("evaluations", std::to_string(r.candidates.size()));
  if (!r.objectives.empty()) {
    std::string obj;
    for (const auto& s : r.objectives) obj += (obj.empty() ? "" : ", ") + s;
    o += kv_row("objectives", obj);
  }
  o += kv_row("sampler", r.sampler.empty() ? "n/a" : r.sampler);
  for (const auto& [k, v] : r.sampler_stats) o += "<tr><th>&nbsp;&nbsp;" + html_escape(k) + "</th><td class=\"mono\">" + html_escape(v) + "</td></tr>\n";
  o += "</tbody></table></section>\n";
  o += "<section><h2>Promoted model</h2>\n";
  if (prom || !r.promoted_metrics.empty()) {
    if (prom) o += "<p>Candidate <strong>#" + std::to_string(prom->id) + "</strong>: <code>" + html_escape(prom->design) + "</code></p>\n";
    if (!r.promoted_path.empty()) o += "<p>Exported to <code>" + html_escape(r.promoted_path) + "</code></p>\n";
    o += r.promoted_metrics.empty() ? "<p class=\"empty-note\">no metrics recorded</p>\n" : metrics_table(r.promoted_metrics);
  } else {
    o += "<p class=\"empty-note\">No model has been promoted yet.</p>\n";
  }
  o += "</section>\n</div>\n";

  // Candidates.
  const std::vector<std::string> cols = metric_columns(r);
  o += "<h2>Candidates</h2>\n";
  if (r.candidates.empty()) {
    o += "<p class=\"empty-note\">No candidates evaluated yet.</p>\n";
  } else {
    o += "<div class=\"scroll\"><table id=\"candidates\"><thead><tr><th class=\"n\">id</th><th class=\"n\">cycle</th><th class=\"n\">rung"
         "</th><th class=\"n\">epochs</th><th class=\"n\">score</th>";
    for (const auto& c : cols) o += "<th class=\"n\">" + html_escape(c) + "</th>";
    o += "<th>design</th><th>status</th></tr></thead>\n<tbody>\n";
    for (const auto& c : r.candidates) {
      std::string cls = c.pareto ? "pareto" : "";
      if (c.promoted) cls += cls.empty() ? "promoted" : " promoted";
      o += "<tr" + (cls.empty() ? "" : " class=\"" + cls + "\"") + ">";
      o += fmt("<td class=\"n\">%d</td><td class=\"n\">%d</td><td class=\"n\">%d</td>", c.id, c.cycle, c.rung);
      o += "<td class=\"n\">" + html_escape(num(c.epochs)) + "</td><td class=\"n\">" + html_escape(num(c.score)) + "</td>";
      for (const auto& m : cols) o += "<td class=\"n\">" + html_escape(num(metric(c, m))) + "</td>";
      o += "<td><code>" + html_escape(c.design) + "</code></td><td class=\"st\">" + html_escape(c.status);
      if (c.pareto) o += "<span class=\"tag front\">front</span>";
      if (c.promoted) o += "<span class=\"tag prom\">promoted</span>";
      o += "</td></tr>\n";
    }
    o += "</tbody></table></div>\n";
  }

  // Decisions.
  o += "<h2>Decisions</h2>\n";
  if (r.decisions.empty()) {
    o += "<p class=\"empty-note\">No decisions recorded yet.</p>\n";
  } else {
    o += "<table id=\"decisions\"><thead><tr><th class=\"n\">time</th><th>kind</th><th>decision</th></tr></thead>\n<tbody>\n";
    for (const auto& d : r.decisions)
      o += "<tr><td class=\"n\">" + html_escape(duration(d.time_s)) + "</td><td><span class=\"badge\">" + html_escape(d.kind) + "</span></td><td>" +
           html_escape(d.text) + "</td></tr>\n";
    o += "</tbody></table>\n";
  }
  // The audit trail's latest signed head: one more copy outside the log (gng audit verify reads the
  // log's own, audit-head.json and the registry's).
  o += "<h2>Audit trail</h2>\n";
  if (r.audit_head.empty())
    o += "<p class=\"empty-note\">No signed tree head yet.</p>\n";
  else
    o += "<p>Latest signed tree head (RFC 9162 root, ML-DSA signature; check a copy with <code>gng audit verify</code>):</p>\n"
         "<pre class=\"mono\" id=\"audit-head\">" + html_escape(r.audit_head) + "</pre>\n";
  o += "<footer>Generated by gng. Self-contained page: no scripts, no network.</footer>\n</main>\n</body>\n</html>\n";
  return o;
}

std::string render_text(const ReportData& r) {
  const ReportCandidate* top = best(r);
  std::string o = "gng run " + r.run_id + ": " + r.state + "\n";
  if (!r.config.empty()) o += "  config       " + r.config + "\n";
  if (!r.notes.empty()) {
    std::string first = r.notes.substr(0, r.notes.find('\n'));
    o += "  note         " + shorten(first, 100) + "\n";
  }
  o += fmt("  cycles       %d / %d\n", r.cycles_done, r.cycles);
  if (r.budget_s > 0) {
    const double f = std::clamp(r.elapsed_s / r.budget_s, 0.0, 1.0);
    const int filled = static_cast<int>(std::lround(f * 20));
    o += "  time         " + duration(r.elapsed_s) + " of " + duration(r.budget_s) + fmt(" (%.0f%%, ", f * 100) +
         duration(std::max(0.0, r.budget_s - r.elapsed_s)) + " left)  [" + std::string(filled, '#') + std::string(20 - filled, '.') + "]\n";
  } else {
    o += "  time         " + duration(r.elapsed_s) + " (no budget)\n";
  }
  int on_front = 0;
  for (const auto& c : r.candidates) on_front += c.pareto;
  o += fmt("  evaluations  %zu (%d on the Pareto front)\n", r.candidates.size(), on_front);
  if (!r.sampler.empty()) {
    o += "  sampler      " + r.sampler;
    std::string stats;
    for (const auto& [k, v] : r.sampler_stats) stats += (stats.empty() ? "" : ", ") + k + "=" + v;
    if (!stats.empty()) o += " (" + shorten(stats, 90) + ")";
    o += "\n";
  }
  if (top)
    o += "  best score   " + num(top->score) + "  #" + std::to_string(top->id) + "  " + top->design + "\n";
  else
    o += "  best score   n/a (nothing evaluated yet)\n";
  const ReportCandidate* prom = promoted(r);
  if (prom || !r.promoted_metrics.empty() || !r.promoted_path.empty()) {
    o += "  promoted     " + (prom ? "#" + std::to_string(prom->id) + "  " + prom->design : std::string("(model)")) + "\n";
    std::string line;
    for (const auto& [k, v] : r.promoted_metrics) {
      const std::string item = k + " " + num(v);
      if (!line.empty() && line.size() + item.size() > 90) {
        o += "               " + line + "\n";
        line.clear();
      }
      line += (line.empty() ? "" : "  ") + item;
    }
    if (!line.empty()) o += "               " + line + "\n";
    if (!r.promoted_path.empty()) o += "               -> " + r.promoted_path + "\n";
  } else {
    o += "  promoted     none yet\n";
  }
  if (!r.candidates.empty()) {
    std::vector<const ReportCandidate*> order;
    for (const auto& c : r.candidates) order.push_back(&c);
    // Highest score first; unmeasured (NaN) scores last.
    std::stable_sort(order.begin(), order.end(), [](const ReportCandidate* a, const ReportCandidate* b) {
      const bool fa = std::isfinite(a->score), fb = std::isfinite(b->score);
      return fa != fb ? fa : fa && a->score > b->score;
    });
    if (order.size() > 5) order.resize(5);
    o += "\n  top candidates\n";
    o += fmt("  %5s %5s %4s %7s %9s %9s %11s  %s\n", "id", "cycle", "rung", "epochs", "score", "accuracy", "latency_ms", "design");
    for (const auto* c : order) {
      std::string mark = c->promoted ? " *promoted" : c->pareto ? " *front" : "";
      o += fmt("  %5d %5d %4d %7s %9s %9s %11s  %s%s\n", c->id, c->cycle, c->rung, num(c->epochs).c_str(), num(c->score).c_str(),
               num(metric(*c, "accuracy")).c_str(), num(metric(*c, "latency_ms")).c_str(), shorten(c->design, 60).c_str(), mark.c_str());
    }
  }
  return o;
}

void write_report(const std::string& path, const ReportData& r) { write_file_atomic(path, render_html(r)); }

}  // namespace gng
