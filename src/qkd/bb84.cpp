#include "qkd/bb84.h"

#include <cmath>
#include <cstdio>
#include <cstring>

#include "core/error.h"
#include "core/rng.h"

namespace gng::qkd {

namespace {

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

std::string percent(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f %%", 100 * v);
  return buf;
}

void require(bool ok, const std::string& what, double v) {
  if (!ok) throw Error(what + ", got " + num(v));
}

uint64_t drbg_u64() {
  const Bytes b = secure::random_bytes(8);
  uint64_t v = 0;
  std::memcpy(&v, b.data(), 8);
  return v;
}

// `count` uniform 64-bit words: from the seeded stream when there is one, else from the DRBG.
std::vector<uint64_t> random_words(std::optional<Rng>& rng, std::size_t count) {
  std::vector<uint64_t> w(count);
  if (rng) {
    for (auto& v : w) v = rng->next();
  } else if (count > 0) {
    const Bytes b = secure::random_bytes(8 * count);
    std::memcpy(w.data(), b.data(), b.size());
  }
  return w;
}

// Fair coins, 64 per draw of the generator.
class Coins {
 public:
  explicit Coins(Rng& r) : r_(r) {}
  uint8_t operator()() {
    if (left_ == 0) {
      word_ = r_.next();
      left_ = 64;
    }
    --left_;
    const auto b = static_cast<uint8_t>(word_ & 1);
    word_ >>= 1;
    return b;
  }

 private:
  Rng& r_;
  uint64_t word_ = 0;
  int left_ = 0;
};

// Binomial(n, p), exactly, in O(result): jump from success to success with geometric gaps.
uint64_t binomial(Rng& r, uint64_t n, double p) {
  if (p <= 0) return 0;
  if (p >= 1) return n;
  const double log_q = std::log1p(-p);
  uint64_t count = 0, pos = 0;  // pos: trials consumed
  for (;;) {
    const double gap = std::floor(std::log(1.0 - r.uniform()) / log_q);  // failures before the next success
    if (gap >= static_cast<double>(n - pos)) return count;
    pos += static_cast<uint64_t>(gap) + 1;
    ++count;
  }
}

// MSB first: bit i goes to byte i/8, bit 7 − i%8. Only whole bytes when `whole_bytes`.
Bytes pack(const Bits& bits, bool whole_bytes = false) {
  Bytes out(whole_bytes ? bits.size() / 8 : (bits.size() + 7) / 8, 0);
  for (std::size_t i = 0; i < out.size() * 8 && i < bits.size(); ++i) out[i / 8] |= static_cast<uint8_t>(bits[i] << (7 - i % 8));
  return out;
}

bool same_hash(const Bits& a, const Bits& b) {
  const Bytes ha = secure::sha256(pack(a)), hb = secure::sha256(pack(b));
  return std::memcmp(ha.data(), hb.data(), kVerifyBits / 8) == 0;
}

}  // namespace

void validate(const Params& p) {
  require(p.km >= 0 && std::isfinite(p.km), "fibre length must be >= 0 km", p.km);
  require(p.loss_db_per_km >= 0 && std::isfinite(p.loss_db_per_km), "fibre loss must be >= 0 dB/km", p.loss_db_per_km);
  require(p.detector_efficiency > 0 && p.detector_efficiency <= 1, "detector efficiency must be in (0, 1]", p.detector_efficiency);
  require(p.dark_count >= 0 && p.dark_count < 1, "dark-count probability must be in [0, 1)", p.dark_count);
  require(p.misalignment >= 0 && p.misalignment <= 0.5, "misalignment must be in [0, 0.5]", p.misalignment);
  require(p.eve_fraction >= 0 && p.eve_fraction <= 1, "eavesdropper fraction must be in [0, 1]", p.eve_fraction);
  require(p.pulse_rate_hz > 0 && std::isfinite(p.pulse_rate_hz), "pulse rate must be > 0 Hz", p.pulse_rate_hz);
  require(p.pe_fraction > 0 && p.pe_fraction < 1, "parameter-estimation fraction must be in (0, 1)", p.pe_fraction);
  require(p.qber_threshold > 0 && p.qber_threshold <= 0.5, "QBER threshold must be in (0, 0.5]", p.qber_threshold);
  require(p.eps_pe > 0 && p.eps_pe < 1, "eps_pe must be in (0, 1)", p.eps_pe);
  require(p.eps_pa > 0 && p.eps_pa < 1, "eps_pa must be in (0, 1)", p.eps_pa);
  require(p.cascade_passes >= 1 && p.cascade_passes <= 16, "Cascade passes must be between 1 and 16", p.cascade_passes);
}

Prediction predict(const Params& p) {
  validate(p);
  Prediction r{};
  r.transmittance = std::pow(10.0, -p.loss_db_per_km * p.km / 10);
  const double eta = r.transmittance * p.detector_efficiency;
  const double dark = -std::expm1(2 * std::log1p(-p.dark_count));  // 1 − (1 − p_d)²: some dark count
  r.gain = eta + (1 - eta) * dark;                                   // 1 − (1 − η)(1 − p_d)²
  const double e_sig = p.misalignment + p.eve_fraction * (0.25 - p.misalignment / 2);
  r.qber = r.gain > 0 ? (eta * (e_sig * (1 - p.dark_count) + p.dark_count / 2) + (1 - eta) * dark / 2) / r.gain : 0.5;
  r.key_rate = std::max(0.0, 0.5 * r.gain * (1 - 2 * binary_entropy(r.qber)));
  return r;
}

double asymptotic_key_rate(const Params& p) { return predict(p).key_rate; }

uint64_t pulses_for_sifted(const Params& p, uint64_t sifted_bits) {
  const double q = predict(p).gain, cap = 1e15;
  const double pulses = q > 0 ? std::ceil(2.0 * static_cast<double>(sifted_bits) / q) : cap;
  return static_cast<uint64_t>(std::min(pulses, cap));
}

Block run_block(const Params& p, std::optional<uint64_t> seed, uint64_t index) {
  const Prediction pr = predict(p);  // validates
  Block out;
  BlockStats& st = out.stats;
  st.pulses = p.pulses ? p.pulses : pulses_for_sifted(p, kDefaultSiftedBits);
  st.link_seconds = static_cast<double>(st.pulses) / p.pulse_rate_hz;
  const double expected_sifted = pr.gain * static_cast<double>(st.pulses) / 2;
  if (expected_sifted > static_cast<double>(kMaxSiftedBits))
    throw Error("a block of " + std::to_string(st.pulses) + " pulses would hold about " + num(std::round(expected_sifted)) +
                " sifted bits at " + num(p.km) + " km; at most " + std::to_string(kMaxSiftedBits) +
                " are allowed: use fewer pulses per block");
  auto abort = [&](std::string reason) {
    st.aborted = true;
    st.reason = std::move(reason);
    out.alice.clear();
    out.bob.clear();
    return out;
  };

  // Streams: channel (Bob and the physics), Alice, public choices, privacy-amplification seed.
  std::optional<Rng> alice_rng, pa_rng;
  if (seed) {
    alice_rng.emplace(*seed, 4 * index + 1);
    pa_rng.emplace(*seed, 4 * index + 3);
  }
  Rng channel = seed ? Rng(*seed, 4 * index) : Rng(drbg_u64());
  Rng pub = seed ? Rng(*seed, 4 * index + 2) : Rng(drbg_u64());
  Coins coin(channel);

  // Detections, then each detected pulse: Alice's bit and basis, Bob's basis (sifting), and what
  // clicked. Detection does not depend on bits or bases, so drawing them after it is exact.
  st.detections = binomial(channel, st.pulses, pr.gain);
  const std::vector<uint64_t> alice_words = random_words(alice_rng, (st.detections + 31) / 32);
  const double signal = pr.gain > 0 ? pr.transmittance * p.detector_efficiency / pr.gain : 0;  // P(photon | click)
  Bits a_sift, b_sift;
  a_sift.reserve(st.detections / 2 + 64);
  b_sift.reserve(st.detections / 2 + 64);
  for (uint64_t i = 0; i < st.detections; ++i) {
    const uint64_t w = alice_words[i / 32] >> (2 * (i % 32));
    const auto a = static_cast<uint8_t>(w & 1), basis = static_cast<uint8_t>((w >> 1) & 1);
    if (coin() != basis) continue;  // Bob measured in the other basis: dropped in sifting
    uint8_t b;
    if (channel.uniform() < signal) {
      uint8_t s = a, photon_basis = basis;  // the state that reaches Bob
      if (p.eve_fraction > 0 && channel.uniform() < p.eve_fraction) {
        const uint8_t eve_basis = coin();  // Eve measures and resends what she saw
        s = eve_basis == basis ? a : coin();
        photon_basis = eve_basis;
      }
      const uint8_t detector = photon_basis == basis ? static_cast<uint8_t>(s ^ (channel.uniform() < p.misalignment)) : coin();
      b = channel.uniform() < p.dark_count ? coin() : detector;  // a dark count in the other detector: double click
    } else {
      b = coin();  // dark counts alone
    }
    a_sift.push_back(a);
    b_sift.push_back(b);
  }
  st.sifted = a_sift.size();

  // Parameter estimation: disclose a random sample of k bits, keep the other n.
  const auto k = static_cast<uint64_t>(std::llround(p.pe_fraction * static_cast<double>(st.sifted)));
  if (k == 0 || k >= st.sifted)
    return abort("too few sifted bits (" + std::to_string(st.sifted) + ") for parameter estimation");
  Bits a_key, b_key;
  a_key.reserve(st.sifted - k);
  b_key.reserve(st.sifted - k);
  uint64_t need = k, errors = 0;
  for (uint64_t i = 0; i < st.sifted; ++i) {
    if (pub.below(st.sifted - i) < need) {  // selection sampling: exactly k, uniformly
      --need;
      st.pe_errors += a_sift[i] != b_sift[i];
    } else {
      a_key.push_back(a_sift[i]);
      b_key.push_back(b_sift[i]);
      errors += a_sift[i] != b_sift[i];
    }
  }
  const auto n = static_cast<double>(a_key.size()), kd = static_cast<double>(k);
  st.pe_bits = k;
  st.reconciled = a_key.size();
  st.qber_estimated = static_cast<double>(st.pe_errors) / kd;
  st.qber_true = static_cast<double>(errors) / n;
  const double delta = std::sqrt((n + kd) * (n + 1) * std::log(1 / p.eps_pe) / (2 * kd * n * n));
  st.qber_bound = std::min(0.5, st.qber_estimated + delta);
  if (st.qber_estimated > p.qber_threshold)
    return abort("estimated QBER " + percent(st.qber_estimated) + " is above the abort threshold " + percent(p.qber_threshold) +
                 " (an eavesdropper, or too much noise for this link)");

  // Error correction and verification.
  const CascadeResult c = cascade(a_key, b_key, st.qber_estimated, pub.next(), p.cascade_passes);
  st.leak_ec = c.leaked;
  st.errors_corrected = c.corrected;
  if (errors > 0) st.ec_efficiency = static_cast<double>(c.leaked) / (n * binary_entropy(st.qber_true));
  st.leak_verify = kVerifyBits;
  if (!same_hash(a_key, b_key)) return abort("error verification failed: the keys still differ after Cascade");

  // Privacy amplification.
  const double secret = n * (1 - binary_entropy(st.qber_bound));
  const double cost = static_cast<double>(st.leak_ec + st.leak_verify) + 2 * std::log2(1 / p.eps_pa);
  const double m = std::floor(secret - cost);
  if (m < 1)
    return abort("no secret key: n(1 - h(e_U)) = " + num(std::floor(secret)) + " bits do not cover the " + num(std::ceil(cost)) +
                 " bits disclosed or reserved (block too small or QBER too high)");
  const auto mi = static_cast<std::size_t>(m);
  const std::size_t seed_bits = a_key.size() + mi - 1;
  const std::vector<uint64_t> seed_words = random_words(pa_rng, (seed_bits + 63) / 64);
  Bits toeplitz(seed_bits);
  for (std::size_t i = 0; i < seed_bits; ++i) toeplitz[i] = static_cast<uint8_t>((seed_words[i / 64] >> (i % 64)) & 1);
  out.alice = toeplitz_hash(a_key, toeplitz, mi);
  out.bob = toeplitz_hash(b_key, toeplitz, mi);
  st.final_bits = mi;
  st.key_rate = m / static_cast<double>(st.pulses);
  st.key_rate_bps = st.key_rate * p.pulse_rate_hz;
  return out;
}

Link::Link(Params p, std::optional<uint64_t> seed) : params_(p), seed_(seed) { validate(params_); }

KeyPair Link::take(std::size_t bytes) {
  int aborts = 0;
  while (alice_.size() < bytes) {
    const Block b = run_block(params_, seed_, blocks_.size());
    blocks_.push_back(b.stats);
    if (b.stats.aborted) {
      if (++aborts == kMaxAbortsInARow)
        throw Error("QKD link: " + std::to_string(aborts) + " blocks in a row aborted; the last: " + b.stats.reason);
      continue;
    }
    aborts = 0;
    const Bytes a = pack(b.alice, true), o = pack(b.bob, true);
    alice_.insert(alice_.end(), a.begin(), a.end());
    bob_.insert(bob_.end(), o.begin(), o.end());
  }
  KeyPair k{Bytes(alice_.begin(), alice_.begin() + bytes), Bytes(bob_.begin(), bob_.begin() + bytes)};
  alice_.erase(alice_.begin(), alice_.begin() + bytes);
  bob_.erase(bob_.begin(), bob_.begin() + bytes);
  return k;
}

}  // namespace gng::qkd
