// The BB84 link model: QBER and gain against the analytic model, the eavesdropper, the keys, the
// key rate against the asymptotic bound, reproducibility and the key pool a KME draws from.
#include <gtest/gtest.h>

#include <cmath>

#include "qkd/bb84.h"
#include "support/error_of.h"

namespace gng::qkd {
namespace {

Params at(double km, uint64_t sifted_bits = uint64_t{1} << 17, double eve = 0) {
  Params p;
  p.km = km;
  p.eve_fraction = eve;
  p.pulses = pulses_for_sifted(p, sifted_bits);
  return p;
}

// |x − expected| within z binomial standard errors of a rate measured on `n` bits.
void expect_rate_near(double x, double expected, uint64_t n, const char* what, double z = 4) {
  const double se = std::sqrt(expected * (1 - expected) / static_cast<double>(n));
  EXPECT_NEAR(x, expected, z * se) << what << " on " << n << " bits";
}

TEST(Bb84Model, PredictsGainQberAndTheBound) {
  Params p;
  p.km = 50;
  p.dark_count = 0;
  Prediction r = predict(p);
  EXPECT_NEAR(r.transmittance, 0.1, 1e-12);  // 10 dB
  EXPECT_NEAR(r.gain, 0.01, 1e-12);          // t·η_d
  EXPECT_NEAR(r.qber, 0.015, 1e-12);         // misalignment alone
  EXPECT_NEAR(r.key_rate, 0.5 * 0.01 * (1 - 2 * binary_entropy(0.015)), 1e-12);
  p.misalignment = 0;
  p.eve_fraction = 1;
  EXPECT_NEAR(predict(p).qber, 0.25, 1e-12);
  EXPECT_EQ(predict(p).key_rate, 0);
  // Dark counts: 1 − (1 − η)(1 − p_d)², and half of the dark-only clicks are errors.
  p = Params{};
  p.km = 0;
  r = predict(p);
  EXPECT_NEAR(r.gain, 1 - 0.9 * (1 - 1e-6) * (1 - 1e-6), 1e-15);
  // Far out the dark counts dominate: QBER above 11 %, no key.
  p.km = 250;
  EXPECT_GT(predict(p).qber, 0.11);
  EXPECT_EQ(asymptotic_key_rate(p), 0);
  double last = 1;
  for (double km : {0, 10, 25, 50, 100, 150}) {
    p.km = km;
    EXPECT_LT(asymptotic_key_rate(p), last) << km;
    last = asymptotic_key_rate(p);
  }
}

TEST(Bb84Model, RejectsBadParametersPrecisely) {
  auto err = [](auto set) {
    Params p;
    set(p);
    return test::error_of([&] { validate(p); });
  };
  EXPECT_EQ(err([](Params& p) { p.km = -5; }), "fibre length must be >= 0 km, got -5");
  EXPECT_EQ(err([](Params& p) { p.km = NAN; }), "fibre length must be >= 0 km, got nan");
  EXPECT_EQ(err([](Params& p) { p.detector_efficiency = 0; }), "detector efficiency must be in (0, 1], got 0");
  EXPECT_EQ(err([](Params& p) { p.detector_efficiency = 1.5; }), "detector efficiency must be in (0, 1], got 1.5");
  EXPECT_EQ(err([](Params& p) { p.dark_count = 1; }), "dark-count probability must be in [0, 1), got 1");
  EXPECT_EQ(err([](Params& p) { p.misalignment = 0.6; }), "misalignment must be in [0, 0.5], got 0.6");
  EXPECT_EQ(err([](Params& p) { p.eve_fraction = 1.2; }), "eavesdropper fraction must be in [0, 1], got 1.2");
  EXPECT_EQ(err([](Params& p) { p.qber_threshold = 0; }), "QBER threshold must be in (0, 0.5], got 0");
  EXPECT_EQ(err([](Params& p) { p.pe_fraction = 1; }), "parameter-estimation fraction must be in (0, 1), got 1");
  Params big;
  big.km = 10;
  big.pulses = 1'000'000'000;
  EXPECT_EQ(test::error_of([&] { run_block(big, 1); }),
            "a block of 1000000000 pulses would hold about 3.15488e+07 sifted bits at 10 km; at most 4194304 are "
            "allowed: use fewer pulses per block");
}

TEST(Bb84Link, QberMatchesTheModelAndAliceAndBobAgree) {
  const Params p = at(10, uint64_t{1} << 18);
  const Block b = run_block(p, 1);
  const BlockStats& s = b.stats;
  ASSERT_FALSE(s.aborted) << s.reason;
  const Prediction pr = predict(p);
  EXPECT_NEAR(pr.qber, p.misalignment, 2e-5);  // dark counts hardly matter at 10 km
  expect_rate_near(s.qber_estimated, p.misalignment, s.pe_bits, "estimated QBER");
  expect_rate_near(s.qber_true, pr.qber, s.reconciled, "true QBER");
  expect_rate_near(static_cast<double>(s.detections) / static_cast<double>(s.pulses), pr.gain, s.pulses, "gain");
  expect_rate_near(static_cast<double>(s.sifted) / static_cast<double>(s.detections), 0.5, s.detections, "sifting");
  EXPECT_EQ(s.pe_bits + s.reconciled, s.sifted);
  EXPECT_EQ(s.errors_corrected, static_cast<uint64_t>(std::llround(s.qber_true * static_cast<double>(s.reconciled))));
  EXPECT_GT(s.ec_efficiency, 1.0);
  EXPECT_LT(s.ec_efficiency, 1.25);
  EXPECT_EQ(s.leak_verify, kVerifyBits);
  // The final keys: equal, m bits, balanced.
  ASSERT_EQ(b.alice.size(), s.final_bits);
  EXPECT_GT(s.final_bits, 50000u);
  EXPECT_EQ(b.alice, b.bob);
  double ones = 0;
  for (uint8_t v : b.alice) ones += v;
  expect_rate_near(ones / static_cast<double>(s.final_bits), 0.5, s.final_bits, "ones in the key");
  EXPECT_DOUBLE_EQ(s.key_rate, static_cast<double>(s.final_bits) / static_cast<double>(s.pulses));
  EXPECT_DOUBLE_EQ(s.key_rate_bps, s.key_rate * 1e9);
}

TEST(Bb84Link, FullInterceptResendGivesAQuarterErrorsAndAborts) {
  const Params p = at(10, uint64_t{1} << 16, 1.0);
  const Block b = run_block(p, 2);
  const BlockStats& s = b.stats;
  EXPECT_NEAR(predict(p).qber, 0.25 + p.misalignment / 2, 1e-4);
  expect_rate_near(s.qber_estimated, predict(p).qber, s.pe_bits, "estimated QBER");
  EXPECT_NEAR(s.qber_estimated, 0.25, 0.02);
  EXPECT_TRUE(s.aborted);
  EXPECT_NE(s.reason.find("is above the abort threshold 11.00 %"), std::string::npos) << s.reason;
  EXPECT_EQ(s.final_bits, 0u);
  EXPECT_TRUE(b.alice.empty() && b.bob.empty());
}

TEST(Bb84Link, InterceptResendOnAFifthOfThePulsesAddsFivePercent) {
  const Params p = at(10, uint64_t{1} << 17, 0.2);
  const Block b = run_block(p, 3);
  const BlockStats& s = b.stats;
  const double e = predict(p).qber;  // e_d + 0.2·(1/4 − e_d/2)
  EXPECT_NEAR(e, p.misalignment + 0.05, 0.002);
  expect_rate_near(s.qber_estimated, e, s.pe_bits, "estimated QBER");
  expect_rate_near(s.qber_true, e, s.reconciled, "true QBER");
  ASSERT_FALSE(s.aborted) << s.reason;  // 6.4 % is below the threshold: the key only gets shorter
  EXPECT_EQ(b.alice, b.bob);
  const Block clean = run_block(at(10, uint64_t{1} << 17), 3);
  EXPECT_LT(s.final_bits, clean.stats.final_bits / 2);
}

TEST(Bb84Link, KeyRateFallsWithDistanceAndStaysBelowTheBound) {
  double last = 1;
  for (double km : {10, 25, 50, 100}) {
    const Params p = at(km);
    const BlockStats s = run_block(p, 4).stats;
    ASSERT_FALSE(s.aborted) << km << " km: " << s.reason;
    const double bound = asymptotic_key_rate(p);
    EXPECT_LT(s.key_rate, last) << km;
    EXPECT_LT(s.key_rate, bound) << km;
    if (km == 25) {  // finite-size and Cascade losses: 10 % sampled, e_U > e, f ≈ 1.15
      EXPECT_GT(s.key_rate, 0.5 * bound);
      EXPECT_LT(s.key_rate, 0.9 * bound);
    }
    last = s.key_rate;
  }
}

TEST(Bb84Link, WhereDarkCountsDominateThereIsNoKey) {
  const Params p = at(250, uint64_t{1} << 16);
  const Block b = run_block(p, 5);
  EXPECT_GT(b.stats.qber_true, 0.25);
  EXPECT_TRUE(b.stats.aborted);
  EXPECT_EQ(b.stats.final_bits, 0u);
  EXPECT_EQ(asymptotic_key_rate(p), 0);
}

TEST(Bb84Link, TooShortABlockAbortsWithTheReason) {
  Params p = at(25);
  p.pulses = 100;
  BlockStats s = run_block(p, 6).stats;
  EXPECT_TRUE(s.aborted);
  EXPECT_EQ(s.reason.rfind("too few sifted bits", 0), 0u) << s.reason;
  p.pulses = 60000;  // ~950 sifted bits: not enough to pay for the finite-size terms
  s = run_block(p, 6).stats;
  EXPECT_TRUE(s.aborted);
  EXPECT_EQ(s.reason.rfind("no secret key", 0), 0u) << s.reason;
}

TEST(Bb84Link, ASeedReproducesTheBlockAndAnotherSeedDoesNot) {
  const Params p = at(25, uint64_t{1} << 15);
  const Block a = run_block(p, 42), b = run_block(p, 42), c = run_block(p, 43), d = run_block(p, 42, 1);
  ASSERT_FALSE(a.stats.aborted) << a.stats.reason;
  EXPECT_EQ(a.alice, b.alice);
  EXPECT_EQ(a.stats.detections, b.stats.detections);
  EXPECT_EQ(a.stats.leak_ec, b.stats.leak_ec);
  EXPECT_NE(a.alice, c.alice);
  EXPECT_NE(a.stats.detections, c.stats.detections);
  EXPECT_NE(a.alice, d.alice);  // the next block of the same seed
}

TEST(Bb84Link, WithoutASeedTheKeysComeFromTheDrbgAndDiffer) {
  const Params p = at(25, uint64_t{1} << 15);
  const Block a = run_block(p), b = run_block(p);
  ASSERT_FALSE(a.stats.aborted) << a.stats.reason;
  ASSERT_FALSE(b.stats.aborted) << b.stats.reason;
  EXPECT_EQ(a.alice, a.bob);
  EXPECT_EQ(b.alice, b.bob);
  EXPECT_NE(a.alice, b.alice);
}

TEST(KeyPool, HandsOutEqualBytesToBothEnds) {
  Link link(at(25, uint64_t{1} << 15), 9);
  const KeyPair k1 = link.take(32), k2 = link.take(1000);
  EXPECT_EQ(k1.alice.size(), 32u);
  EXPECT_EQ(k1.alice, k1.bob);
  EXPECT_EQ(k2.alice.size(), 1000u);
  EXPECT_EQ(k2.alice, k2.bob);
  EXPECT_NE(Bytes(k2.alice.begin(), k2.alice.begin() + 32), k1.alice);
  ASSERT_EQ(link.blocks().size(), 1u);  // one block of ~19 000 bits fed both
  EXPECT_EQ(link.pooled(), link.blocks()[0].final_bits / 8 - 1032);
  const std::size_t more = link.pooled() + 1;  // needs a second block
  EXPECT_EQ(link.take(more).alice.size(), more);
  EXPECT_EQ(link.blocks().size(), 2u);
}

TEST(KeyPool, RefusesKeyWhenEveryBlockAborts) {
  Link link(at(10, uint64_t{1} << 12, 1.0), 10);
  const std::string e = test::error_of([&] { link.take(32); });
  EXPECT_EQ(e.rfind("QKD link: 3 blocks in a row aborted; the last: estimated QBER", 0), 0u) << e;
  EXPECT_EQ(link.blocks().size(), 3u);
  EXPECT_EQ(link.pooled(), 0u);
}

}  // namespace
}  // namespace gng::qkd
