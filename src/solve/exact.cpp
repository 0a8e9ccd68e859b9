// Exact enumeration over LowHighSplit (qubo/enumerate.h): for each high state the energies of all
// 2^k low completions are  base(H) + Qlow[m] + Σ_{i∈m} c_i(H); the linear part is two 256-entry
// subset-sum tables, so the inner loop is two loads and two adds per state, vectorised, with a
// min-reduction that only falls back to a scalar scan when a block can improve the k best so far.
#include <algorithm>
#include <atomic>
#include <limits>
#include <queue>
#include <thread>

#include "core/error.h"
#include "core/timer.h"
#include "qubo/enumerate.h"
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
    const LowHighSplit split(q);
    const int k = split.low_bits();
    const int lo_bits = std::min(k, 8), hi_bits = k - lo_bits;
    const std::vector<double>& qlow = split.qlow();
    const uint64_t high_states = split.high_states();
    const int threads = static_cast<int>(std::min<uint64_t>(detail::thread_count(o), high_states));
    const uint64_t chunk = std::max<uint64_t>(1, high_states / (static_cast<uint64_t>(threads) * 16));
    std::atomic<uint64_t> next{0};
    std::atomic<bool> timed_out{false};
    std::vector<std::priority_queue<Found>> heaps(threads);

    auto worker = [&](int tid) {
      auto& heap = heaps[tid];
      std::vector<double> llo(std::size_t{1} << lo_bits), lhi(std::size_t{1} << hi_bits);
      for (;;) {
        const uint64_t start = next.fetch_add(chunk);
        if (start >= high_states) return;
        if (o.time_limit_s > 0 && clock.seconds() > o.time_limit_s) {
          timed_out = true;
          return;
        }
        split.walk(start, std::min(high_states, start + chunk), [&](uint64_t high, double base, std::span<const double> c) {
          const uint64_t high_code = high << k;
          subset_sums(c.first(lo_bits), llo);
          subset_sums(c.subspan(lo_bits), lhi);
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
        });
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
    if (reaches_target(o, out.best().energy)) out.stats.time_to_target_s = out.stats.time_s;
    return out;
  }
};

}  // namespace

std::unique_ptr<Sampler> make_exact_sampler() { return std::make_unique<ExactSampler>(); }

}  // namespace gng
