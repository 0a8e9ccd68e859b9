#include "qubo/sample_set.h"

#include <algorithm>

#include "core/error.h"

namespace gng {

SampleSet::SampleSet(const Qubo& q, std::vector<Bits> states) {
  std::sort(states.begin(), states.end());
  for (auto& x : states) {
    if (!samples_.empty() && samples_.back().x == x) {
      ++samples_.back().count;
      continue;
    }
    const double e = q.energy(x);
    samples_.push_back({std::move(x), e, 1});
  }
  std::stable_sort(samples_.begin(), samples_.end(), [](const Sample& a, const Sample& b) { return a.energy < b.energy; });
}

const Sample& SampleSet::best() const {
  if (samples_.empty()) throw Error("empty sample set has no best sample");
  return samples_.front();
}

void SampleSet::truncate(std::size_t k) {
  if (samples_.size() > k) samples_.resize(k);
}

}  // namespace gng
