#pragma once
// OpenQASM 3 export of the optimised circuits, so that they can be run on real hardware (gng
// itself only simulates them), and a gate-by-gate simulator of the subset gng writes — h, x, rx,
// ry, rz, cx, cz, cry, gphase, measure — used to check an export against the fast simulator.
#include <complex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "quantum/circuit.h"

namespace gng::quantum {

// QAOA with θ = [γ_1..γ_p, β_1..β_p]; H_C in Ising form (x = (1 − z)/2), including its constant
// as a global phase so that the amplitudes match gng's simulator exactly.
std::string qaoa_qasm(const Qubo& q, std::span<const double> theta, const CircuitOptions& o);
// The hardware-efficient VQE ansatz with `layers` CZ-ladder layers.
std::string vqe_qasm(int n, int layers, std::span<const double> theta);

// Simulates a program of that subset from |0…0⟩ gate by gate and returns the state before
// measurement (qubit i = bit i of the index). Unsupported statements: gng::Error naming the line.
std::vector<std::complex<double>> simulate_qasm(std::string_view program);

}  // namespace gng::quantum
