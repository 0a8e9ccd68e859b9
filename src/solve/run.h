#pragma once
// Internal to src/solve: runs independent reads on worker threads with a shared stop condition
// (time limit, target reached, read budget) and collects their final states.
#include <atomic>
#include <functional>
#include <mutex>

#include "core/timer.h"
#include "solve/sampler.h"

namespace gng::detail {

class ReadRunner {
 public:
  ReadRunner(const Qubo& q, const SampleOptions& o, int64_t default_reads);

  // True once the run must stop: time limit passed, target reached, or no reads left.
  bool stopped() const { return stop_.load(std::memory_order_relaxed); }
  // Checks the clock; cheap enough to call every sweep.
  bool should_stop();
  // A read's best state is now x with `energy` by its own incremental bookkeeping. When that
  // looks like the target, it is confirmed with the exact energy of x before the time-to-target is
  // recorded and everyone is stopped. Returns true if the run must stop.
  bool report(double energy, const Bits& x);

  // Adds to the step count reported in SolveStats (sweeps, moves).
  void add_steps(uint64_t s) { steps_.fetch_add(s, std::memory_order_relaxed); }

  // Calls read(r) for r = 0, 1, … on the worker threads until the reads or the time run out; each
  // returns its best state (seeded by r alone, so the thread count does not change the result).
  // Returns all states as a SampleSet (exact energies, the `keep` best).
  SampleSet run(const std::function<Bits(int64_t read)>& read);

 private:
  const Qubo& q_;
  const SampleOptions& o_;
  int64_t reads_;  // -1: unlimited (until time)
  Stopwatch clock_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> next_{0};
  std::atomic<int64_t> done_{0};
  std::atomic<uint64_t> steps_{0};
  std::mutex mu_;
  std::optional<double> ttt_;
};

int thread_count(const SampleOptions& o);

}  // namespace gng::detail
