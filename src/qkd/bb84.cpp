#include "qkd/bb84.h"

#include <algorithm>
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

Bytes verify_hash(const Bits& key) {
  const Bytes h = secure::sha256(pack_bits(key));
  return Bytes(h.begin(), h.begin() + kVerifyBits / 8);
}

// Which of `sifted` bits the sample takes: selection sampling of exactly k, uniformly, from `seed`.
std::vector<bool> sampled(uint64_t sifted, uint64_t k, uint64_t seed) {
  Rng r(seed);
  std::vector<bool> in(sifted);
  uint64_t need = k;
  for (uint64_t i = 0; i < sifted; ++i)
    if (r.below(sifted - i) < need) {
      --need;
      in[i] = true;
    }
  return in;
}

uint64_t sample_size(const Params& p, uint64_t sifted) {
  return static_cast<uint64_t>(std::llround(p.pe_fraction * static_cast<double>(sifted)));
}

// After the sample's errors are known (st.pe_bits, pe_errors, reconciled): the estimate and its bound,
// and the reason to abort ("" to go on). Both ends compute it alike.
std::string estimate(BlockStats& st, const Params& p) {
  const auto n = static_cast<double>(st.reconciled), kd = static_cast<double>(st.pe_bits);
  st.qber_estimated = static_cast<double>(st.pe_errors) / kd;
  const double delta = std::sqrt((n + kd) * (n + 1) * std::log(1 / p.eps_pe) / (2 * kd * n * n));
  st.qber_bound = std::min(0.5, st.qber_estimated + delta);
  if (st.qber_estimated > p.qber_threshold)
    return "estimated QBER " + percent(st.qber_estimated) + " is above the abort threshold " + percent(p.qber_threshold) +
           " (an eavesdropper, or too much noise for this link)";
  return "";
}

// m, the secret bits privacy amplification keeps, once the leak is known; 0 and `why` when none.
uint64_t secret_bits(const BlockStats& st, const Params& p, std::string& why) {
  const auto n = static_cast<double>(st.reconciled);
  const double secret = n * (1 - binary_entropy(st.qber_bound));
  const double cost = static_cast<double>(st.leak_ec + st.leak_verify) + 2 * std::log2(1 / p.eps_pa);
  const double m = std::floor(secret - cost);
  if (m < 1) {
    why = "no secret key: n(1 - h(e_U)) = " + num(std::floor(secret)) + " bits do not cover the " + num(std::ceil(cost)) +
          " bits disclosed or reserved (block too small or QBER too high)";
    return 0;
  }
  return static_cast<uint64_t>(m);
}

void set_rate(BlockStats& st, const Params& p) {
  st.key_rate = static_cast<double>(st.final_bits) / static_cast<double>(st.pulses);
  st.key_rate_bps = st.key_rate * p.pulse_rate_hz;
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

Photons send_photons(const Params& p, std::optional<uint64_t> seed, uint64_t index) {
  const Prediction pr = predict(p);  // validates
  const uint64_t pulses = p.pulses ? p.pulses : pulses_for_sifted(p, kDefaultSiftedBits);
  const double expected_sifted = pr.gain * static_cast<double>(pulses) / 2;
  if (expected_sifted > static_cast<double>(kMaxSiftedBits))
    throw Error("a block of " + std::to_string(pulses) + " pulses would hold about " + num(std::round(expected_sifted)) +
                " sifted bits at " + num(p.km) + " km; at most " + std::to_string(kMaxSiftedBits) +
                " are allowed: use fewer pulses per block");
  // Streams: channel (Bob and the physics), Alice's bits and bases; 4·index + 2 and + 3 are AliceEnd's.
  std::optional<Rng> alice_rng;
  if (seed) alice_rng.emplace(*seed, 4 * index + 1);
  Rng channel = seed ? Rng(*seed, 4 * index) : Rng(drbg_u64());
  Coins coin(channel);

  // Detections, then each detected pulse: Alice's bit and basis, Bob's basis, and what clicked.
  // Detection does not depend on bits or bases, so drawing them after it is exact.
  Photons ph;
  ph.alice.pulses = ph.bob.pulses = pulses;
  const uint64_t detections = binomial(channel, pulses, pr.gain);
  const std::vector<uint64_t> alice_words = random_words(alice_rng, (detections + 31) / 32);
  const double signal = pr.gain > 0 ? pr.transmittance * p.detector_efficiency / pr.gain : 0;  // P(photon | click)
  for (Bits* b : {&ph.alice.bits, &ph.alice.bases, &ph.bob.bases, &ph.bob.results}) b->reserve(detections);
  for (uint64_t i = 0; i < detections; ++i) {
    const uint64_t w = alice_words[i / 32] >> (2 * (i % 32));
    const auto a = static_cast<uint8_t>(w & 1), basis = static_cast<uint8_t>((w >> 1) & 1);
    const uint8_t bob_basis = coin();
    uint8_t b;
    if (channel.uniform() < signal) {
      uint8_t s = a, photon_basis = basis;  // the state that reaches Bob
      if (p.eve_fraction > 0 && channel.uniform() < p.eve_fraction) {
        const uint8_t eve_basis = coin();  // Eve measures and resends what she saw
        s = eve_basis == basis ? a : coin();
        photon_basis = eve_basis;
      }
      const uint8_t detector = photon_basis == bob_basis ? static_cast<uint8_t>(s ^ (channel.uniform() < p.misalignment)) : coin();
      b = channel.uniform() < p.dark_count ? coin() : detector;  // a dark count in the other detector: double click
    } else {
      b = coin();  // dark counts alone
    }
    ph.alice.bits.push_back(a);
    ph.alice.bases.push_back(basis);
    ph.bob.bases.push_back(bob_basis);
    ph.bob.results.push_back(b);
  }
  return ph;
}

AliceEnd::AliceEnd(const Params& p, AliceRecord record, std::optional<uint64_t> seed, uint64_t index)
    : p_(p), rec_(std::move(record)) {
  validate(p_);
  if (rec_.bits.size() != rec_.bases.size()) throw Error("Alice's record has " + std::to_string(rec_.bits.size()) + " bits and " + std::to_string(rec_.bases.size()) + " bases");
  Rng pub = seed ? Rng(*seed, 4 * index + 2) : Rng(drbg_u64());
  if (seed) pa_rng_.emplace(*seed, 4 * index + 3);
  sample_seed_ = pub.next();
  cascade_seed_ = pub.next();
  st_.pulses = rec_.pulses;
  st_.detections = rec_.bits.size();
  st_.link_seconds = static_cast<double>(st_.pulses) / p_.pulse_rate_hz;
}

void AliceEnd::abort(const std::string& reason) {
  st_.aborted = true;
  st_.reason = reason;
  final_.clear();
}

Sample AliceEnd::sift(const Bits& bob_bases) {
  if (bob_bases.size() != rec_.bases.size())
    throw Error("Bob announced " + std::to_string(bob_bases.size()) + " bases for " + std::to_string(rec_.bases.size()) + " detections");
  Bits sifted;
  for (std::size_t i = 0; i < bob_bases.size(); ++i)
    if ((bob_bases[i] & 1) == rec_.bases[i]) sifted.push_back(rec_.bits[i]);
  st_.sifted = sifted.size();
  Sample s{rec_.bases, sample_seed_, {}};
  const uint64_t k = sample_size(p_, st_.sifted);
  if (k == 0 || k >= st_.sifted) {
    abort("too few sifted bits (" + std::to_string(st_.sifted) + ") for parameter estimation");
    return s;
  }
  const std::vector<bool> in = sampled(st_.sifted, k, sample_seed_);
  for (std::size_t i = 0; i < sifted.size(); ++i) (in[i] ? s.bits : key_).push_back(sifted[i]);
  st_.pe_bits = k;
  st_.reconciled = key_.size();
  return s;
}

bool AliceEnd::estimate(uint64_t pe_errors) {
  if (st_.aborted) return false;
  if (pe_errors > st_.pe_bits) throw Error("Bob counted " + std::to_string(pe_errors) + " errors in a sample of " + std::to_string(st_.pe_bits) + " bits");
  st_.pe_errors = pe_errors;
  if (const std::string why = qkd::estimate(st_, p_); !why.empty()) {
    abort(why);
    return false;
  }
  cascade_ = std::make_unique<CascadeAlice>(key_, cascade_seed_, p_.cascade_passes);
  return true;
}

std::optional<Amplification> AliceEnd::amplify() {
  if (st_.aborted || !cascade_) return std::nullopt;
  st_.leak_ec = cascade_->disclosed();
  st_.leak_verify = kVerifyBits;
  std::string why;
  const uint64_t m = secret_bits(st_, p_, why);
  if (m == 0) {
    abort(why);
    return std::nullopt;
  }
  Amplification a{verify_hash(key_), {}, m};
  const std::size_t seed_bits = key_.size() + m - 1;
  const std::vector<uint64_t> words = random_words(pa_rng_, (seed_bits + 63) / 64);
  a.toeplitz.resize(seed_bits);
  for (std::size_t i = 0; i < seed_bits; ++i) a.toeplitz[i] = static_cast<uint8_t>((words[i / 64] >> (i % 64)) & 1);
  final_ = toeplitz_hash(key_, a.toeplitz, m);
  st_.final_bits = m;
  set_rate(st_, p_);
  return a;
}

BobEnd::BobEnd(const Params& p, BobRecord record) : p_(p), rec_(std::move(record)) {
  validate(p_);
  if (rec_.bases.size() != rec_.results.size())
    throw Error("Bob's record has " + std::to_string(rec_.bases.size()) + " bases and " + std::to_string(rec_.results.size()) + " results");
  st_.pulses = rec_.pulses;
  st_.detections = rec_.bases.size();
  st_.link_seconds = static_cast<double>(st_.pulses) / p_.pulse_rate_hz;
}

uint64_t BobEnd::sift(const Sample& s) {
  if (s.bases.size() != rec_.bases.size())
    throw Error("Alice announced " + std::to_string(s.bases.size()) + " bases for " + std::to_string(rec_.bases.size()) + " detections");
  Bits sifted;
  for (std::size_t i = 0; i < s.bases.size(); ++i)
    if ((s.bases[i] & 1) == rec_.bases[i]) sifted.push_back(rec_.results[i]);
  st_.sifted = sifted.size();
  const uint64_t k = sample_size(p_, st_.sifted);
  if (k == 0 || k >= st_.sifted) {
    st_.aborted = true;
    st_.reason = "too few sifted bits (" + std::to_string(st_.sifted) + ") for parameter estimation";
    return 0;
  }
  if (s.bits.size() != k) throw Error("Alice's sample holds " + std::to_string(s.bits.size()) + " bits, not " + std::to_string(k));
  const std::vector<bool> in = sampled(st_.sifted, k, s.seed);
  std::size_t j = 0;
  for (std::size_t i = 0; i < sifted.size(); ++i) {
    if (in[i])
      st_.pe_errors += (s.bits[j++] & 1) != sifted[i];
    else
      key_.push_back(sifted[i]);
  }
  st_.pe_bits = k;
  st_.reconciled = key_.size();
  if (std::string why = qkd::estimate(st_, p_); !why.empty()) {
    st_.aborted = true;
    st_.reason = std::move(why);
  }
  return st_.pe_errors;
}

CascadeBob& BobEnd::cascade(uint64_t seed) {
  if (st_.aborted || st_.pe_bits == 0) throw Error("Cascade asked for a block that has not passed parameter estimation");
  cascade_ = std::make_unique<CascadeBob>(key_, st_.qber_estimated, seed, p_.cascade_passes);
  return *cascade_;
}

bool BobEnd::amplify(const Amplification& a) {
  const auto fail = [&](std::string why) {
    st_.aborted = true;
    st_.reason = std::move(why);
    final_.clear();
    return false;
  };
  if (!cascade_ || !cascade_->queries().empty()) return fail("amplification before Cascade ended");
  const CascadeResult c = cascade_->result();
  st_.leak_ec = c.leaked;
  st_.errors_corrected = c.corrected;
  st_.leak_verify = kVerifyBits;
  if (a.verify != verify_hash(key_)) return fail("error verification failed: the keys still differ after Cascade");
  std::string why;
  const uint64_t m = secret_bits(st_, p_, why);
  if (m != a.bits) return fail("Alice amplifies to " + std::to_string(a.bits) + " bits, Bob's count is " + std::to_string(m) + (why.empty() ? "" : " (" + why + ")"));
  if (a.toeplitz.size() != key_.size() + m - 1) return fail("the Toeplitz seed holds " + std::to_string(a.toeplitz.size()) + " bits, not n + m - 1");
  final_ = toeplitz_hash(key_, a.toeplitz, m);
  st_.final_bits = m;
  set_rate(st_, p_);
  return true;
}

Block run_block(const Params& p, std::optional<uint64_t> seed, uint64_t index) {
  Photons ph = send_photons(p, seed, index);
  AliceEnd alice(p, std::move(ph.alice), seed, index);
  BobEnd bob(p, std::move(ph.bob));
  Block out;
  const auto done = [&] {
    out.stats = alice.stats();
    if (out.stats.aborted) return out;
    out.stats.errors_corrected = bob.stats().errors_corrected;
    out.alice = alice.key();
    out.bob = bob.key();
    return out;
  };
  const Sample sample = alice.sift(bob.bases());
  const uint64_t pe_errors = bob.sift(sample);
  uint64_t errors = 0;  // the simulator's knowledge: the true error rate of the n kept bits
  for (std::size_t i = 0; i < alice.reconciled().size(); ++i) errors += alice.reconciled()[i] != bob.reconciled()[i];
  const auto n = static_cast<double>(alice.reconciled().size());
  if (!alice.estimate(pe_errors)) {
    done();
    if (n > 0) out.stats.qber_true = static_cast<double>(errors) / n;
    return out;
  }
  CascadeBob& cascade = bob.cascade(alice.cascade_seed());
  while (!cascade.queries().empty()) cascade.answer(alice.parities(cascade.queries()));
  const std::optional<Amplification> amp = alice.amplify();
  if (amp && !bob.amplify(*amp)) alice.abort(bob.stats().reason);
  done();
  out.stats.qber_true = static_cast<double>(errors) / n;
  if (errors > 0) out.stats.ec_efficiency = static_cast<double>(out.stats.leak_ec) / (n * binary_entropy(out.stats.qber_true));
  return out;
}

Bytes pack_bits(const Bits& bits) {
  Bytes out((bits.size() + 7) / 8, 0);
  for (std::size_t i = 0; i < bits.size(); ++i) out[i / 8] |= static_cast<uint8_t>((bits[i] & 1) << (7 - i % 8));
  return out;
}

Bytes whole_bytes(const Bits& key) {
  return pack_bits(Bits(key.begin(), key.begin() + static_cast<std::ptrdiff_t>(key.size() / 8 * 8)));
}

uint64_t link_seed(uint64_t seed, const std::string& a, const std::string& b) {
  const auto [lo, hi] = std::minmax(a, b);
  uint64_t h = 1469598103934665603ULL;  // FNV-1a of "lo\nhi"
  for (char ch : lo + "\n" + hi) h = (h ^ static_cast<uint8_t>(ch)) * 1099511628211ULL;
  return seed ^ h;
}

Bits unpack_bits(View bytes, std::size_t n) {
  if (bytes.size() != (n + 7) / 8) throw Error(std::to_string(bytes.size()) + " bytes cannot hold exactly " + std::to_string(n) + " bits");
  Bits out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = (bytes[i / 8] >> (7 - i % 8)) & 1;
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
    const Bytes a = whole_bytes(b.alice), o = whole_bytes(b.bob);
    alice_.insert(alice_.end(), a.begin(), a.end());
    bob_.insert(bob_.end(), o.begin(), o.end());
  }
  KeyPair k{Bytes(alice_.begin(), alice_.begin() + bytes), Bytes(bob_.begin(), bob_.begin() + bytes)};
  alice_.erase(alice_.begin(), alice_.begin() + bytes);
  bob_.erase(bob_.begin(), bob_.begin() + bytes);
  return k;
}

}  // namespace gng::qkd
