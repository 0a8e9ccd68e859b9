#include "core/rng.h"

namespace gng {

namespace {
uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
}  // namespace

Rng::Rng(uint64_t seed, uint64_t stream) {
  uint64_t state = seed ^ (0xd1b54a32d192ed03ULL * (stream + 1));
  for (auto& s : s_) s = splitmix64(state);
}

}  // namespace gng
