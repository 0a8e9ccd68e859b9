#pragma once
// A simulated BB84 link: a MODEL of a fibre QKD link, not photonic hardware. It produces the keys
// and statistics such a link would, so that a KME (ETSI GS QKD 014) can be fed and tested.
//
// Model (the channel of Lo, Ma & Chen, PRL 94, 230504 (2005), there with a weak coherent source):
//  - Source: an ideal single-photon source (decoy-state weak coherent pulses are out of scope), one
//    pulse per gate at `pulse_rate_hz`. Alice picks bit and basis uniformly per pulse.
//  - Channel: transmittance t = 10^(−α·L/10). An optional intercept-resend eavesdropper sits at
//    Alice's end on a fraction f of the pulses: she measures in a random basis and resends her result
//    in her basis (she does not exploit the loss). She raises the error rate of signal photons from
//    e_d to e_sig = e_d + f·(1/4 − e_d/2): 25 % at f = 1 (plus e_d/2).
//  - Bob: active random basis choice, two detectors (one per bit value) of efficiency η_d, each with
//    dark-count probability p_d per gate. A photon reaches a detector with probability η = t·η_d;
//    in the matching basis it lands in the wrong one with probability e_d (misalignment), in the
//    other basis in either with probability ½. A double click is assigned a random bit (squashing).
//    Hence a gate clicks with probability Q = 1 − (1 − η)(1 − p_d)², and
//    the sifted key's error rate E satisfies E·Q = η·[e_sig·(1 − p_d) + p_d/2] + (Q − η)/2.
//  - Only the detected events are simulated: their number is drawn exactly (Binomial(pulses, Q)),
//    then each event is a signal with probability η/Q or else dark counts alone (a random bit) —
//    statistically the same as simulating every pulse.
// Protocol per block: sifting (matching bases, announced publicly), parameter estimation on a random
// sample of the sifted key (disclosed, then dropped), abort when the estimated QBER exceeds the
// threshold, Cascade, error verification (64 bits of SHA-256 of the key, compared), privacy
// amplification by Toeplitz hashing to
//   m = ⌊n·(1 − h(e_U)) − leak_EC − leak_verify − 2·log2(1/ε_PA)⌋   (Shor–Preskill, finite n),
// where e_U = e + δ bounds the phase-error rate of the n kept bits with probability 1 − ε_PE given
// the sample's rate e on k bits (Serfling's inequality for sampling without replacement:
// δ = sqrt((n + k)(n + 1)·ln(1/ε_PE) / (2·k·n²))). Composable finite-key security (Tomamichel et al.,
// Nat. Commun. 3, 634 (2012)) is not claimed; m is the textbook estimate.
// Randomness: with a seed, everything comes from gng::Rng streams (reproducible). Without one,
// Alice's bits and bases and the Toeplitz seed come from the OpenSSL DRBG (secure::random_bytes);
// the simulated physics and the public choices (Bob's bases, channel events, the parameter-estimation
// sample, Cascade's permutations) use a gng::Rng seeded from it.
#include <cstdint>
#include <memory>
#include <span>
#include <optional>
#include <string>
#include <vector>

#include "core/rng.h"
#include "secure/crypto.h"
#include "qkd/postprocess.h"

namespace gng::qkd {

using secure::Bytes;
using secure::View;

struct Params {
  // The link. Defaults: standard single-mode fibre at 1550 nm (0.2 dB/km) and gated InGaAs/InP
  // avalanche photodiodes (≈10 % efficiency, ~1e-6 dark counts per gate; Hadfield, Nature
  // Photonics 3, 696 (2009), Table 1), 1.5 % misalignment.
  double km = 25;                     // fibre length L
  double loss_db_per_km = 0.2;        // α
  double detector_efficiency = 0.10;  // η_d, in (0, 1]
  double dark_count = 1e-6;           // p_d per detector per gate, in [0, 1)
  double misalignment = 0.015;        // e_d, in [0, 0.5]
  double eve_fraction = 0;            // intercept-resend on this fraction of pulses, in [0, 1]
  double pulse_rate_hz = 1e9;
  // The protocol.
  uint64_t pulses = 0;          // per block; 0: pulses_for_sifted(*this, kDefaultSiftedBits)
  double pe_fraction = 0.10;    // share of the sifted key disclosed for parameter estimation
  double qber_threshold = 0.11;  // abort above this estimated QBER
  double eps_pe = 1e-10;        // the QBER bound fails with at most this probability
  double eps_pa = 1e-10;        // privacy amplification's security parameter
  int cascade_passes = 4;
};

// Sifted bits a block holds by default: large enough for modest finite-size losses, small enough
// for the O(n·m/64) Toeplitz product (about half a second on one core).
constexpr uint64_t kDefaultSiftedBits = uint64_t{1} << 19;
// Blocks whose expected sifted key exceeds this are refused (memory and O(n²) hashing time).
constexpr uint64_t kMaxSiftedBits = uint64_t{1} << 22;
// Bits of SHA-256 compared (and so disclosed) in error verification.
constexpr uint64_t kVerifyBits = 64;

// Throws gng::Error naming the first parameter out of range.
void validate(const Params& p);

// What the model predicts analytically.
struct Prediction {
  double transmittance;  // t
  double gain;           // Q: probability that a pulse gives a detection
  double qber;           // E: error rate of the sifted key
  double key_rate;       // asymptotic secret bits per pulse, ½·Q·(1 − 2h(E)) (0 when negative)
};
Prediction predict(const Params& p);
// The textbook asymptotic bound for this source (Shor–Preskill; GLLP with single photons):
// R = q·Q·(1 − 2h(E)) bits per pulse, q = ½ for sifting; 0 where 1 − 2h(E) < 0.
double asymptotic_key_rate(const Params& p);
// Pulses for about `sifted_bits` sifted bits at this distance: ⌈2·sifted_bits / Q⌉ (at most 1e15).
uint64_t pulses_for_sifted(const Params& p, uint64_t sifted_bits);

struct BlockStats {
  uint64_t pulses = 0, detections = 0, sifted = 0;
  uint64_t pe_bits = 0, pe_errors = 0;  // the disclosed sample and the errors in it
  uint64_t reconciled = 0;              // n: sifted bits kept after the sample
  double qber_estimated = 0;            // pe_errors / pe_bits
  double qber_bound = 0;                // e_U, the value privacy amplification uses
  double qber_true = 0;                 // actual error rate of the n kept bits (known to the simulator only)
  uint64_t errors_corrected = 0;        // bits Cascade flipped
  uint64_t leak_ec = 0;                 // parity bits Cascade disclosed
  uint64_t leak_verify = 0;             // hash bits disclosed by error verification
  double ec_efficiency = 0;             // f = leak_ec / (n·h(qber_true)); 0 when there were no errors
  uint64_t final_bits = 0;              // m
  double key_rate = 0;                  // final bits per pulse
  double key_rate_bps = 0;              // final bits per second at the pulse rate
  double link_seconds = 0;              // pulses / pulse rate
  bool aborted = false;
  std::string reason;                   // why, when aborted
};

struct Block {
  Bits alice, bob;  // the final keys, m bits each; equal unless aborted (then empty)
  BlockStats stats;
};

// The protocol between two ends, as a KME on each end of a link runs it (qkd/network.h carries the
// messages over PQ-TLS; run_block below runs both ends in one process):
//   1. the photons (SIMULATED: the link model) leave Alice's record at Alice and Bob's at Bob;
//   2. Bob announces his bases, Alice her bases and her bits in a random sample (Sample);
//      Bob answers the errors in it; both abort above the threshold;
//   3. Cascade: Bob asks parities (CascadeBob), Alice answers them;
//   4. Alice sends 64 bits of SHA-256 of her key and the Toeplitz seed (Amplification); Bob
//      verifies, and both hash to the same m bits.
// Each end checks what it is sent against what it knows and aborts with the reason otherwise.
struct AliceRecord {  // the detected pulses only (which gates clicked is announced publicly)
  uint64_t pulses = 0;
  Bits bits, bases;
};
struct BobRecord {
  uint64_t pulses = 0;
  Bits bases, results;
};
struct Photons {
  AliceRecord alice;
  BobRecord bob;
};
// The link model for one block (see above); with a seed, block `index` draws from its own streams.
Photons send_photons(const Params& p, std::optional<uint64_t> seed = std::nullopt, uint64_t index = 0);

struct Sample {
  Bits bases;     // Alice's basis per detection
  uint64_t seed;  // which sifted bits are sampled: selection sampling of k = round(pe_fraction·sifted)
  Bits bits;      // Alice's bits there, in order
};
struct Amplification {
  Bytes verify;   // the first kVerifyBits of SHA-256 of Alice's corrected key
  Bits toeplitz;  // n + m − 1 bits
  uint64_t bits;  // m
};

class AliceEnd {
 public:
  AliceEnd(const Params& p, AliceRecord record, std::optional<uint64_t> seed = std::nullopt, uint64_t index = 0);
  Sample sift(const Bits& bob_bases);  // gng::Error when Bob announced bases for another number of detections
  bool estimate(uint64_t pe_errors);   // Bob's count: false when the block aborts (stats().reason)
  uint64_t cascade_seed() const { return cascade_seed_; }
  Bits parities(std::span<const ParityQuery> queries) { return cascade_->parities(queries); }
  // After Cascade: her key hashed to m bits; nullopt when no secret key is left (aborted).
  std::optional<Amplification> amplify();
  void abort(const std::string& reason);  // Bob's verdict
  const Bits& reconciled() const { return key_; }  // her n bits (before amplification)
  const Bits& key() const { return final_; }       // m bits, after amplify
  const BlockStats& stats() const { return st_; }

 private:
  Params p_;
  AliceRecord rec_;
  std::optional<Rng> pa_rng_;
  uint64_t sample_seed_, cascade_seed_;
  Bits key_, final_;
  std::unique_ptr<CascadeAlice> cascade_;
  BlockStats st_;
};

class BobEnd {
 public:
  BobEnd(const Params& p, BobRecord record);
  const Bits& bases() const { return rec_.bases; }
  // Alice's sample: the errors in it (false from estimate(): the block aborts); gng::Error for a
  // sample that does not fit his record.
  uint64_t sift(const Sample& s);
  bool estimate() const { return !st_.aborted; }
  CascadeBob& cascade(uint64_t seed);
  // Verification and amplification: false (stats().reason) when the keys differ or m disagrees.
  bool amplify(const Amplification& a);
  const Bits& reconciled() const { return key_; }
  const Bits& key() const { return final_; }
  const BlockStats& stats() const { return st_; }

 private:
  Params p_;
  BobRecord rec_;
  Bits key_, final_;
  std::unique_ptr<CascadeBob> cascade_;
  BlockStats st_;
};

// Whole bits as bytes (MSB first: bit i in byte i/8, bit 7 − i%8; a last partial byte is zero-padded)
// and back (gng::Error when the bytes do not hold exactly n bits).
Bytes pack_bits(const Bits& bits);
Bits unpack_bits(View bytes, std::size_t n);
// Only the whole bytes of a final key (up to 7 trailing bits dropped): what a pool holds of a block.
Bytes whole_bytes(const Bits& key);

// A link's own stream of a seeded run: `seed` mixed with FNV-1a of the two ends' names (in order),
// so that each link of a network (or SAE pair of a Kme) is reproducible and none repeats another.
uint64_t link_seed(uint64_t seed, const std::string& a, const std::string& b);

// One block of the protocol. With a seed, block `index` draws from its own gng::Rng streams, so a
// (seed, index) pair always gives the same block. Throws gng::Error for invalid parameters.
Block run_block(const Params& p, std::optional<uint64_t> seed = std::nullopt, uint64_t index = 0);

// A link between two ends that keeps a pool of final key for a KME: `take(bytes)` runs blocks until
// the pool holds enough, then hands out Alice's and Bob's copies (equal). Whole bytes of each block
// are pooled (up to 7 trailing bits of a block are dropped). Not thread-safe.
struct KeyPair {
  Bytes alice, bob;
};

class Link {
 public:
  explicit Link(Params p, std::optional<uint64_t> seed = std::nullopt);

  // Throws gng::Error when kMaxAbortsInARow blocks in a row abort (the error names the last reason,
  // e.g. a QBER above the threshold: an eavesdropper, or a link too long).
  KeyPair take(std::size_t bytes);
  std::size_t pooled() const { return alice_.size(); }  // bytes ready to hand out
  const std::vector<BlockStats>& blocks() const { return blocks_; }  // every block run so far
  const Params& params() const { return params_; }

  static constexpr int kMaxAbortsInARow = 3;

 private:
  Params params_;
  std::optional<uint64_t> seed_;
  Bytes alice_, bob_;
  std::vector<BlockStats> blocks_;
};

}  // namespace gng::qkd
