// Exact enumeration. Variables split into k ≤ 16 "low" and h = n − k "high" ones. For each high
// state (visited in Gray-code order, so one flip and an O(degree) field update per step) the energy
// of all 2^k low completions is  const(H) + Qlow[m] + Σ_{i∈m} c_i(H),  where Qlow (the couplings
// among low variables) is tabulated once and the linear part is two 256-entry subset-sum tables.
// The inner loop is then two loads and two adds per state, vectorised, with a min-reduction that
// only falls back to a scalar scan when a block can improve the k best found so far.
#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <limits>
#include <queue>
#include <thread>

#include "core/error.h"
#include "core/timer.h"
#include "solve/run.h"
#include "solve/sampler.h"

namespace gng {
namespace {

struct Found {
  double energy;
  uint64_t code;  // bit i = x_i
  bool operator<(const Found& o) const { return energy < o.energy; }  // max-heap on energy
};

class ExactSampler final : public Sampler {
 public:
  std::string_view name() const override { return "exact"; }

  SampleSet sample(const Qubo& q, const SampleOptions& o) const override {
    const std::size_t n = q.size();
    if (n > kExactMaxN)
      throw Error("exact: n = " + std::to_string(n) + " variables means 2^" + std::to_string(n) +
                  " states; exact enumeration is limited to n <= " + std::to_string(kExactMaxN) +
                  " (use --solver anneal or tabu)");
    if (n == 0) throw Error("exact: empty QUBO");
    Stopwatch clock;
    const std::size_t keep = std::max<std::size_t>(1, o.keep);
    const int k = static_cast<int>(std::min<std::size_t>(n, 16));
    const int h = static_cast<int>(n) - k;
    const int lo_bits = std::min(k, 8), hi_bits = k - lo_bits;

    // Qlow[m]: Σ b_ij x_i x_j over low pairs, by adding the highest set bit's couplings.
    std::vector<double> blow(k * k, 0.0);
    for (const auto& t : q.quadratic())
      if (static_cast<int>(t.j) < k) blow[t.i * k + t.j] = blow[t.j * k + t.i] = t.value;
    std::vector<double> qlow(std::size_t{1} << k, 0.0);
    for (std::size_t m = 1; m < qlow.size(); ++m) {
      const int top = std::bit_width(m) - 1;
      const std::size_t rest = m ^ (std::size_t{1} << top);
      double s = qlow[rest];
      for (std::size_t r = rest; r; r &= r - 1) s += blow[top * k + std::countr_zero(r)];
      qlow[m] = s;
    }

    const uint64_t high_states = uint64_t{1} << h;
    const int threads = static_cast<int>(std::min<uint64_t>(detail::thread_count(o), high_states));
    const uint64_t chunk = std::max<uint64_t>(1, high_states / (static_cast<uint64_t>(threads) * 16));
    std::atomic<uint64_t> next{0};
    std::atomic<bool> timed_out{false};
    std::vector<std::priority_queue<Found>> heaps(threads);

    auto worker = [&](int tid) {
      auto& heap = heaps[tid];
      std::vector<uint8_t> x(n, 0);
      std::vector<double> field(n), llo(std::size_t{1} << lo_bits), lhi(std::size_t{1} << hi_bits);
      for (;;) {
        const uint64_t start = next.fetch_add(chunk);
        if (start >= high_states) return;
        if (o.time_limit_s > 0 && clock.seconds() > o.time_limit_s) {
          timed_out = true;
          return;
        }
        const uint64_t end = std::min(high_states, start + chunk);
        // Set the high bits to Gray(start); fields of every variable from the high bits alone.
        const uint64_t g = start ^ (start >> 1);
        std::fill(x.begin(), x.end(), 0);
        for (int b = 0; b < h; ++b) x[k + b] = (g >> b) & 1;
        double base = q.offset();
        for (std::size_t i = 0; i < n; ++i) {
          double f = q.linear()[i];
          for (std::size_t e = 0; e < q.neighbours(i).size(); ++e) {
            const uint32_t j = q.neighbours(i)[e];
            if (static_cast<int>(j) >= k && x[j]) f += q.weights(i)[e];
          }
          field[i] = f;
        }
        for (int b = 0; b < h; ++b)
          if (x[k + b]) {
            base += q.linear()[k + b];
            for (std::size_t e = 0; e < q.neighbours(k + b).size(); ++e) {
              const uint32_t j = q.neighbours(k + b)[e];
              if (static_cast<int>(j) > k + b && x[j]) base += q.weights(k + b)[e];
            }
          }
        for (uint64_t idx = start; idx < end; ++idx) {
          const uint64_t high_code = (idx ^ (idx >> 1)) << k;
          llo[0] = 0;
          for (std::size_t m = 1; m < llo.size(); ++m) llo[m] = llo[m & (m - 1)] + field[std::countr_zero(m)];
          lhi[0] = 0;
          for (std::size_t m = 1; m < lhi.size(); ++m) lhi[m] = lhi[m & (m - 1)] + field[lo_bits + std::countr_zero(m)];
          const std::size_t width = llo.size();
          const double* lp = llo.data();
          for (std::size_t m1 = 0; m1 < lhi.size(); ++m1) {
            const double off = base + lhi[m1];
            const double* row = qlow.data() + (m1 << lo_bits);
            double lo = std::numeric_limits<double>::infinity();
#pragma omp simd reduction(min : lo)
            for (std::size_t m0 = 0; m0 < width; ++m0) lo = std::min(lo, row[m0] + lp[m0]);
            const double threshold = heap.size() < keep ? std::numeric_limits<double>::infinity() : heap.top().energy;
            if (lo + off >= threshold) continue;
            for (std::size_t m0 = 0; m0 < width; ++m0) {
              const double e = row[m0] + lp[m0] + off;
              if (heap.size() < keep) {
                heap.push({e, high_code | (m1 << lo_bits) | m0});
              } else if (e < heap.top().energy) {
                heap.pop();
                heap.push({e, high_code | (m1 << lo_bits) | m0});
              }
            }
          }
          if (idx + 1 == end) break;
          // Next Gray state: flip high bit ctz(idx + 1).
          const int b = std::countr_zero(idx + 1);
          const std::size_t v = k + b;
          const double d = x[v] ? -1.0 : 1.0;
          base += d * field[v];
          x[v] ^= 1;
          for (std::size_t e = 0; e < q.neighbours(v).size(); ++e) field[q.neighbours(v)[e]] += d * q.weights(v)[e];
        }
      }
    };
    {
      std::vector<std::jthread> pool;
      for (int t = 1; t < threads; ++t) pool.emplace_back(worker, t);
      worker(0);
    }
    if (timed_out)
      throw Error("exact: time limit of " + std::to_string(o.time_limit_s) + " s reached before all 2^" + std::to_string(n) +
                  " states were enumerated; no exact answer");
    std::vector<Bits> states;
    for (auto& heap : heaps)
      for (; !heap.empty(); heap.pop()) {
        Bits x(n);
        for (std::size_t i = 0; i < n; ++i) x[i] = (heap.top().code >> i) & 1;
        states.push_back(std::move(x));
      }
    SampleSet out(q, std::move(states));
    out.truncate(keep);
    out.stats.time_s = clock.seconds();
    out.stats.reads = 1;
    out.stats.steps = uint64_t{1} << n;
    if (o.target_energy && out.best().energy <= *o.target_energy) out.stats.time_to_target_s = out.stats.time_s;
    return out;
  }
};

}  // namespace

std::unique_ptr<Sampler> make_exact_sampler() { return std::make_unique<ExactSampler>(); }

}  // namespace gng
