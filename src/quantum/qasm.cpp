#include "quantum/qasm.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <numbers>

#include "core/error.h"

namespace gng::quantum {

namespace {

std::string num(double v) {
  char b[40];
  std::snprintf(b, sizeof b, "%.17g", v);
  return b;
}

std::string header(int n, const std::string& what) {
  return "OPENQASM 3.0;\ninclude \"stdgates.inc\";\n// " + what +
         "\n// Exported by gng; gng simulated this circuit classically (state vector).\nqubit[" + std::to_string(n) +
         "] q;\nbit[" + std::to_string(n) + "] c;\n";
}

std::string q(int i) { return "q[" + std::to_string(i) + "]"; }

// e^{−iφ Z_a Z_b}
std::string zz(int a, int b, double phi) {
  return "cx " + q(a) + ", " + q(b) + ";\nrz(" + num(2 * phi) + ") " + q(b) + ";\ncx " + q(a) + ", " + q(b) + ";\n";
}

}  // namespace

std::string qaoa_qasm(const Qubo& qubo, std::span<const double> theta, const CircuitOptions& o) {
  const int n = static_cast<int>(qubo.size());
  const int p = static_cast<int>(theta.size() / 2);
  if (theta.size() != 2 * static_cast<std::size_t>(p) || p < 1) throw Error("qasm: θ must hold γ_1..γ_p, β_1..β_p");
  const Ising m = to_ising(qubo);
  std::string out = header(n, "QAOA, p = " + std::to_string(p) + ", mixer " + (o.mixer == Mixer::x ? "x" : "xy") +
                                   "; cost = the QUBO f(x) in Ising form, x = (1 - z)/2");
  std::vector<bool> grouped(n, false);
  if (o.mixer == Mixer::xy) {
    for (const auto& g : o.groups) {
      // W state: |10…0⟩, then move amplitude along the group with cry + cx.
      const int s = static_cast<int>(g.size());
      out += "x " + q(g[0]) + ";\n";
      for (int j = 0; j + 1 < s; ++j) {
        out += "cry(" + num(2 * std::acos(std::sqrt(1.0 / (s - j)))) + ") " + q(g[j]) + ", " + q(g[j + 1]) + ";\n";
        out += "cx " + q(g[j + 1]) + ", " + q(g[j]) + ";\n";
      }
      for (uint32_t v : g) grouped[v] = true;
    }
  }
  for (int i = 0; i < n; ++i)
    if (!grouped[i]) out += "h " + q(i) + ";\n";
  for (int l = 0; l < p; ++l) {
    const double gamma = theta[l], beta = theta[p + l];
    out += "// layer " + std::to_string(l + 1) + ": e^{-i gamma H_C}, gamma = " + num(gamma) + "\n";
    out += "gphase(" + num(-gamma * m.offset()) + ");\n";
    for (int i = 0; i < n; ++i)
      if (m.h()[i] != 0) out += "rz(" + num(2 * gamma * m.h()[i]) + ") " + q(i) + ";\n";
    for (const auto& t : m.j()) out += zz(static_cast<int>(t.i), static_cast<int>(t.j), gamma * t.value);
    out += "// mixer, beta = " + num(beta) + "\n";
    if (o.mixer == Mixer::x) {
      for (int i = 0; i < n; ++i) out += "rx(" + num(2 * beta) + ") " + q(i) + ";\n";
      continue;
    }
    // The simulator's gate order; e^{−iβ(XX+YY)/2} = e^{−i(β/2)XX} e^{−i(β/2)YY}.
    const std::string half = num(std::numbers::pi / 2), mhalf = num(-std::numbers::pi / 2);
    for (const auto& [a, b] : xy_ring_edges(o.groups)) {
      out += "h " + q(a) + ";\nh " + q(b) + ";\n" + zz(a, b, beta / 2) + "h " + q(a) + ";\nh " + q(b) + ";\n";
      out += "rx(" + half + ") " + q(a) + ";\nrx(" + half + ") " + q(b) + ";\n" + zz(a, b, beta / 2);
      out += "rx(" + mhalf + ") " + q(a) + ";\nrx(" + mhalf + ") " + q(b) + ";\n";
    }
    for (int i = 0; i < n; ++i)  // the qubits outside every group get the X mixer
      if (!grouped[i]) out += "rx(" + num(2 * beta) + ") " + q(i) + ";\n";
  }
  out += "c = measure q;\n";
  return out;
}

std::string vqe_qasm(int n, int layers, std::span<const double> theta) {
  if (theta.size() != static_cast<std::size_t>(n) * (layers + 1)) throw Error("qasm: VQE needs n × (layers + 1) angles");
  std::string out = header(n, "VQE, hardware-efficient ansatz: RY layer, then " + std::to_string(layers) + " x (CZ ladder, RY layer)");
  for (int l = 0; l <= layers; ++l) {
    if (l > 0)
      for (int i = 0; i + 1 < n; ++i) out += "cz " + q(i) + ", " + q(i + 1) + ";\n";
    for (int i = 0; i < n; ++i) out += "ry(" + num(theta[static_cast<std::size_t>(l) * n + i]) + ") " + q(i) + ";\n";
  }
  out += "c = measure q;\n";
  return out;
}

std::vector<std::complex<double>> simulate_qasm(std::string_view text) {
  using C = std::complex<double>;
  std::vector<C> psi;
  int n = -1, line_no = 0;
  auto fail = [&](const std::string& what) { throw Error("qasm:" + std::to_string(line_no) + ": " + what); };
  auto qubit = [&](std::string_view t) -> int {
    while (!t.empty() && t.front() == ' ') t.remove_prefix(1);
    while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
    if (t.size() < 4 || t.substr(0, 2) != "q[" || t.back() != ']') fail("expected q[i], got '" + std::string(t) + "'");
    int i = -1;
    auto [p, ec] = std::from_chars(t.data() + 2, t.data() + t.size() - 1, i);
    if (ec != std::errc() || p != t.data() + t.size() - 1 || i < 0 || i >= n) fail("bad qubit '" + std::string(t) + "'");
    return i;
  };
  // Applies the 2×2 matrix m to qubit t, on the amplitudes whose control bit (if any) is 1.
  auto apply = [&](int t, int control, C m00, C m01, C m10, C m11) {
    const uint64_t bt = uint64_t{1} << t;
    for (uint64_t z = 0; z < psi.size(); ++z) {
      if (z & bt) continue;
      if (control >= 0 && !((z >> control) & 1)) continue;
      const C a = psi[z], b = psi[z | bt];
      psi[z] = m00 * a + m01 * b;
      psi[z | bt] = m10 * a + m11 * b;
    }
  };
  const C I(0, 1);
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (auto c = line.find("//"); c != std::string_view::npos) line = line.substr(0, c);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.remove_suffix(1);
    if (line.empty()) continue;
    if (line.back() != ';') fail("statement does not end with ';'");
    line.remove_suffix(1);
    if (line.starts_with("OPENQASM") || line.starts_with("include") || line.starts_with("bit[") || line.starts_with("c = measure"))
      continue;
    if (line.starts_with("qubit[")) {
      auto [p, ec] = std::from_chars(line.data() + 6, line.data() + line.size(), n);
      if (ec != std::errc() || n < 1 || n > 24) fail("qubit register must have 1..24 qubits");
      psi.assign(std::size_t{1} << n, 0);
      psi[0] = 1;
      continue;
    }
    if (n < 0) fail("gate before the qubit declaration");
    std::size_t name_end = line.find_first_of(" (");
    const std::string_view name = line.substr(0, name_end);
    double angle = 0;
    std::string_view rest = name_end == std::string_view::npos ? std::string_view{} : line.substr(name_end);
    if (!rest.empty() && rest.front() == '(') {
      const std::size_t close = rest.find(')');
      if (close == std::string_view::npos) fail("missing ')'");
      std::string_view a = rest.substr(1, close - 1);
      auto [p, ec] = std::from_chars(a.data(), a.data() + a.size(), angle);
      if (ec != std::errc() || p != a.data() + a.size()) fail("angle must be a number, got '" + std::string(a) + "'");
      rest = rest.substr(close + 1);
    }
    std::vector<int> qs;
    while (!rest.empty()) {
      const std::size_t comma = rest.find(',');
      const std::string_view tok = rest.substr(0, comma);
      if (tok.find_first_not_of(' ') != std::string_view::npos) qs.push_back(qubit(tok));
      if (comma == std::string_view::npos) break;
      rest = rest.substr(comma + 1);
    }
    auto need = [&](std::size_t k) {
      if (qs.size() != k) fail(std::string(name) + " takes " + std::to_string(k) + " qubit(s)");
    };
    const double c = std::cos(angle / 2), s = std::sin(angle / 2);
    if (name == "gphase") {
      need(0);
      for (auto& a : psi) a *= std::polar(1.0, angle);
    } else if (name == "h") {
      need(1);
      const double r = 1 / std::sqrt(2.0);
      apply(qs[0], -1, r, r, r, -r);
    } else if (name == "x") {
      need(1);
      apply(qs[0], -1, 0, 1, 1, 0);
    } else if (name == "rx") {
      need(1);
      apply(qs[0], -1, c, -I * s, -I * s, c);
    } else if (name == "ry") {
      need(1);
      apply(qs[0], -1, c, -s, s, c);
    } else if (name == "rz") {
      need(1);
      apply(qs[0], -1, std::polar(1.0, -angle / 2), 0, 0, std::polar(1.0, angle / 2));
    } else if (name == "cx") {
      need(2);
      apply(qs[1], qs[0], 0, 1, 1, 0);
    } else if (name == "cz") {
      need(2);
      apply(qs[1], qs[0], 1, 0, 0, -1);
    } else if (name == "cry") {
      need(2);
      apply(qs[1], qs[0], c, -s, s, c);
    } else {
      fail("unsupported statement '" + std::string(name) + "'");
    }
  }
  if (n < 0) throw Error("qasm: no qubit register declared");
  return psi;
}

}  // namespace gng::quantum
