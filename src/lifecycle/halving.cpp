#include "lifecycle/halving.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

namespace gng {

std::size_t rung_keep(const Rung& rung, std::size_t contenders, int eta) {
  return rung.keep ? static_cast<std::size_t>(rung.keep) : (contenders + eta - 1) / eta;
}

std::vector<int> best_of(const std::vector<int>& ids, const std::map<std::pair<int, int>, EvaluationRow>& evals, int rung,
                         std::size_t keep) {
  std::vector<std::pair<double, int>> s;
  for (int id : ids)
    if (auto it = evals.find({id, rung}); it != evals.end()) s.push_back({it->second.score, id});
  std::stable_sort(s.begin(), s.end(), [](auto& a, auto& b) { return a.first > b.first; });
  std::vector<int> out;
  for (std::size_t i = 0; i < std::min(keep, s.size()); ++i) out.push_back(s[i].second);
  return out;
}

bool train_rung(Trainer& trainer, RungWork work, int rung) {
  const std::size_t count = work.queue.size();
  std::mutex queue_mutex;
  std::atomic<bool> out_of_time{false};
  auto pop = [&]() -> int {
    std::lock_guard lock(queue_mutex);
    if (work.queue.empty() || !work.time_left()) {
      out_of_time = out_of_time || !work.queue.empty();
      return -1;
    }
    const int id = work.queue.front();
    work.queue.pop_front();
    return id;
  };
  auto slot = [&](int k) {
    for (int id; (id = pop()) >= 0;) {
      const TrainTask task = work.task(id);
      TrainResult r{id, {}, "", 0, trainer.where(k)};
      const auto t0 = std::chrono::steady_clock::now();
      try {
        r.metrics = trainer.train(k, task);
      } catch (const SlotLost& e) {
        {
          std::lock_guard lock(queue_mutex);
          work.queue.push_front(id);
        }
        work.lost(id, e.what());
        return;
      } catch (const std::exception& e) {  // a design that fails to train scores worst
        r.metrics = {{"failed", 1}};
        r.error = e.what();
      }
      r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      work.done(r);
    }
  };
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::vector<std::thread> pool;
    const int n = trainer.slots(count);
    for (int k = 0; k < n; ++k) pool.emplace_back(slot, k);
    for (auto& t : pool) t.join();
    if (out_of_time) break;
    {
      std::lock_guard lock(queue_mutex);
      if (work.queue.empty()) break;
    }
    if (!trainer.recover()) break;  // every slot went away with work left: bring them back
  }
  if (!work.queue.empty() && !out_of_time)
    throw Error("the nodes keep failing: " + std::to_string(work.queue.size()) + " trainings of rung " + std::to_string(rung) +
                " not done");
  trainer.recover();  // slots that went away rejoin before the next rung
  return !out_of_time;
}

}  // namespace gng
