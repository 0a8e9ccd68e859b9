// libFuzzer target: BB84's two ends (src/qkd/bb84.h) when the peer's messages are not what the
// protocol says — what a KME's end of a link reads from the other KME (qkd/network.h carries these
// messages). One small block of the link model, with a fixed seed, runs honestly except that the
// fuzz input rewrites one message on its way: the first byte picks which (Bob's bases, Alice's
// sample, Bob's error count, one batch of Cascade's queries or answers, the amplification), the
// rest says how (a new length, bit flips, a word XORed into its numbers). Every call must return,
// end the block with a reason, or throw gng::Error; and when Bob pools the block, his key must be
// Alice's (verification must have caught any difference).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "qkd/bb84.h"

using namespace gng::qkd;

namespace {

struct Edit {
  const uint8_t* p;
  std::size_t n;
  uint64_t word() {
    uint64_t w = 0;
    const std::size_t k = std::min<std::size_t>(8, n);
    std::memcpy(&w, p, k);
    p += k;
    n -= k;
    return w;
  }
  // A new length (within 2× the old one, by the first 2 bytes), then bit flips at the positions the
  // following pairs of bytes name.
  void bits(Bits& b) {
    if (n < 2) return;
    const std::size_t len = (static_cast<std::size_t>(p[0]) << 8 | p[1]) % (2 * b.size() + 2);
    p += 2;
    n -= 2;
    b.resize(len, 1);
    for (; n >= 2 && !b.empty(); p += 2, n -= 2) b[(static_cast<std::size_t>(p[0]) << 8 | p[1]) % b.size()] ^= 1;
  }
};

const Params& params() {
  static const Params p = [] {
    Params q;
    q.km = 10;
    q.pulses = pulses_for_sifted(q, 3000);
    return q;
  }();
  return p;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const int which = data[0] % 6;
  Edit edit{data + 1, size - 1};
  static const Photons ph = send_photons(params(), 1, 0);
  try {
    AliceEnd alice(params(), ph.alice, 1, 0);
    BobEnd bob(params(), ph.bob);
    Bits bases = bob.bases();
    if (which == 0) edit.bits(bases);
    Sample s = alice.sift(bases);
    if (which == 1) {
      s.seed ^= edit.word();
      edit.bits(s.bits);
    }
    uint64_t errors = bob.sift(s);
    if (which == 2) errors ^= edit.word();
    if (!alice.estimate(errors) || !bob.estimate()) return 0;
    CascadeBob& c = bob.cascade(alice.cascade_seed());
    int batch = 0;
    const int target = static_cast<int>(edit.n > 0 ? edit.p[0] % 8 : 0);
    while (!c.queries().empty()) {
      std::vector<ParityQuery> q = c.queries();
      if (which == 3 && batch == target && !q.empty()) {
        const uint64_t w = edit.word();
        ParityQuery& x = q[w % q.size()];
        x.pass ^= static_cast<uint32_t>(w >> 16) & 0xff;
        x.lo ^= static_cast<uint32_t>(w >> 24);
        x.hi ^= static_cast<uint32_t>(w >> 40);
      }
      Bits answers = alice.parities(q);
      if (which == 4 && batch == target) edit.bits(answers);
      c.answer(answers);
      if (++batch > 100000) __builtin_trap();  // Cascade must end
    }
    std::optional<Amplification> amp = alice.amplify();
    if (!amp) return 0;
    if (which == 5) {
      amp->bits ^= edit.word() & 0xffff;
      edit.bits(amp->toeplitz);
    }
    if (bob.amplify(*amp) && which != 5 && bob.key() != alice.key()) __builtin_trap();
  } catch (const gng::Error&) {
  }
  return 0;
}
