#pragma once
// Variational circuits on a classical state-vector simulator (nothing here runs on quantum
// hardware; see qasm.h for exporting a circuit that can). The cost Hamiltonian H_C is the QUBO
// itself, diagonal in the computational basis: H_C|x⟩ = f(x)|x⟩, qubit q = variable x_q.
//
//   QAOA  |ψ(γ,β)⟩ = Π_{l=1..p} U_B(β_l) e^{−iγ_l H_C} |s⟩, θ = [γ_1..γ_p, β_1..β_p]
//         mixer x:  U_B = e^{−iβ Σ_q X_q},  |s⟩ = |+⟩^n
//         mixer xy: U_B = parity-ordered product of e^{−iβ (X_a X_b + Y_a Y_b)/2} over the ring
//                   of each one-hot group (Hadfield et al.), then e^{−iβX} on every qubit outside
//                   the groups; |s⟩ = a W state per group and |+⟩ on the other qubits. The state
//                   never leaves the one-hot subspace, so only that subspace is simulated:
//                   Π m_j · 2^f states for groups of sizes m_j and f free qubits (NAS-Bench-201's
//                   30 qubits in six groups of five: 15,625 states instead of 2^30).
//   VQE   hardware-efficient ansatz: RY(θ) on every qubit, then `layers` × (CZ ladder, RY layer).
//
// ⟨H_C⟩ and its exact gradient for all parameters come from one forward and one backward sweep
// (adjoint method). Amplitudes are complex<double> or complex<float>; the 2^n diagonal of H_C is
// precomputed once (double). Noise, when asked for, is a global depolarising channel after each
// layer (ρ → (1−p)ρ + p·I/2^n, exact for expectations and samples) plus independent readout flips.
#include <complex>
#include <cstdint>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "qubo/qubo.h"

namespace gng::quantum {

enum class Mixer { x, xy };
enum class Precision { f64, f32 };

struct Noise {
  double depolarizing = 0;  // per layer
  double readout = 0;       // per measured bit
};

struct CircuitOptions {
  Mixer mixer = Mixer::x;
  std::vector<std::vector<uint32_t>> groups;  // one-hot groups (the xy mixer needs them)
  Precision precision = Precision::f64;
  double memory_budget_bytes = 8.0 * (1ull << 30);
  int threads = 0;  // 0: OpenMP's default
  Noise noise;
};

// The XY mixer's gates in application order: for each one-hot group, its ring edges in parity
// order — (0,1), (2,3), …, then (1,2), (3,4), …, then the closing edge (m−1, 0); a group of two
// has one edge, a group of one none. The simulator and the OpenQASM export both use this.
std::vector<std::pair<int, int>> xy_ring_edges(const std::vector<std::vector<uint32_t>>& groups);

// Bytes a circuit over all 2^n states needs (two state vectors and the diagonal), and an X-mixer
// QAOA circuit of depth `layers` with each layer's state kept for the gradient (when they fit).
double circuit_bytes(int n, Precision p, int layers = 0);

class Circuit {
 public:
  virtual ~Circuit() = default;
  virtual std::size_t num_params() const = 0;
  // ⟨H_C⟩ (with the noise model), leaving the ideal state prepared for sample()/amplitudes().
  virtual double expectation(std::span<const double> theta) = 0;
  // Same, and the exact gradient into grad (size num_params()).
  virtual double expectation_and_gradient(std::span<const double> theta, std::span<double> grad) = 0;

  int qubits() const { return n_; }
  Precision precision() const { return o_.precision; }
  // H_C on the simulated basis: all 2^n states (index = bitstring), or the one-hot subspace's.
  const std::vector<double>& diagonal() const { return diag_; }
  // A typical energy scale of H_C (largest |h_i| + Σ_j |J_ij| of its Ising form); QAOA angles γ
  // are of order 1/scale().
  double scale() const { return scale_; }
  // Shots from the prepared state (noise applied), seeded; each is a bitstring of n bits.
  virtual std::vector<Bits> sample(std::size_t shots, uint64_t seed) const = 0;
  // The prepared state over all 2^n states, as complex<double> (gng::Error when that does not fit
  // the memory budget).
  virtual std::vector<std::complex<double>> amplitudes() const = 0;
  // Probability that the prepared state is in the one-hot subspace of the groups.
  virtual double valid_probability(const std::vector<std::vector<uint32_t>>& groups) const = 0;

 protected:
  Circuit(const Qubo& q, const CircuitOptions& o);
  // Global depolarising after each layer: F·E + (1 − F)·mean(diag), F = (1 − p)^layers.
  double fidelity() const;

  CircuitOptions o_;
  int n_;
  std::vector<double> diag_;
  double scale_ = 1;
  double mean_diag_ = 0;
  int layers_ = 0;  // for the depolarising noise
};

std::unique_ptr<Circuit> make_qaoa(const Qubo& q, int p, const CircuitOptions& o);
std::unique_ptr<Circuit> make_vqe(const Qubo& q, int layers, const CircuitOptions& o);

}  // namespace gng::quantum
