#include "solve/sampler.h"

#include <algorithm>
#include <thread>

#include "core/error.h"
#include "solve/run.h"

namespace gng {

std::unique_ptr<Sampler> make_exact_sampler();
std::unique_ptr<Sampler> make_anneal_sampler();
std::unique_ptr<Sampler> make_tabu_sampler();
std::unique_ptr<Sampler> make_quantum_sampler(bool vqe);

std::unique_ptr<Sampler> make_sampler(std::string_view name) {
  if (name == "exact") return make_exact_sampler();
  if (name == "anneal") return make_anneal_sampler();
  if (name == "tabu") return make_tabu_sampler();
  if (name == "qaoa") return make_quantum_sampler(false);
  if (name == "vqe") return make_quantum_sampler(true);
  throw Error("unknown solver '" + std::string(name) + "' (expected exact, anneal, tabu, qaoa or vqe)");
}

bool reaches_target(const SampleOptions& o, double energy) {
  return o.target_energy && energy <= *o.target_energy + 1e-9 * std::max(1.0, std::abs(*o.target_energy));
}

namespace detail {

int thread_count(const SampleOptions& o) {
  if (o.threads < 0) throw Error("threads must be >= 0");
  if (o.threads > 0) return o.threads;
  return std::max(1u, std::thread::hardware_concurrency());
}

ReadRunner::ReadRunner(const Qubo& q, const SampleOptions& o, int64_t default_reads) : q_(q), o_(o) {
  if (o.reads < 0) throw Error("reads must be >= 0");
  if (o.time_limit_s < 0) throw Error("time limit must be >= 0");
  if (o.steps < 0) throw Error("steps must be >= 0");
  // Reads: as asked; else unlimited when only a time limit bounds the run; else the default.
  reads_ = o.reads > 0 ? o.reads : (o.time_limit_s > 0 ? -1 : default_reads);
}

bool ReadRunner::should_stop() {
  if (stopped()) return true;
  if (o_.time_limit_s > 0 && clock_.seconds() >= o_.time_limit_s) stop_.store(true, std::memory_order_relaxed);
  return stopped();
}

bool ReadRunner::report(double energy, const Bits& x) {
  if (reaches_target(o_, energy) && reaches_target(o_, q_.energy(x))) {
    std::lock_guard lock(mu_);
    if (!ttt_) ttt_ = clock_.seconds();
    stop_.store(true, std::memory_order_relaxed);
  }
  return should_stop();
}

SampleSet ReadRunner::run(const std::function<Bits(int64_t)>& read) {
  const int threads = thread_count(o_);
  std::vector<std::vector<Bits>> found(threads);
  auto worker = [&](int t) {
    for (;;) {
      const int64_t r = next_.fetch_add(1);
      if ((reads_ >= 0 && r >= reads_) || (r > 0 && should_stop())) return;  // read 0 always runs
      found[t].push_back(read(r));
      done_.fetch_add(1);
      // A read cut short by the stop still returns its best state; it is kept.
    }
  };
  {
    std::vector<std::jthread> pool;
    for (int t = 1; t < threads; ++t) pool.emplace_back(worker, t);
    worker(0);
  }
  std::vector<Bits> all;
  for (auto& f : found)
    for (auto& x : f) all.push_back(std::move(x));
  SampleSet out(q_, std::move(all));
  out.truncate(o_.keep);
  out.stats.time_s = clock_.seconds();
  out.stats.reads = static_cast<uint64_t>(done_.load());
  out.stats.steps = steps_.load();
  // A target can also be met by a read whose own bookkeeping missed it (rounding): check exactly.
  if (!out.empty() && !ttt_ && reaches_target(o_, out.best().energy)) ttt_ = out.stats.time_s;
  out.stats.time_to_target_s = ttt_;
  return out;
}

}  // namespace detail
}  // namespace gng
