// libFuzzer target: the settings readers (a run file, a policy, a search space) must turn any text
// into settings or a gng::Error naming the file and line: never a crash, a hang, an out-of-bounds
// access, another exception, or a value accepted outside its range. The first byte picks the reader.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "lifecycle/config.h"
#include "space/space.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  if (size == 0 || size > (1u << 16)) return 0;
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    switch (data[0] % 3) {
      case 0: {
        const gng::RunConfig c = gng::RunConfig::from_yaml(text, "fuzz.yaml", "", "");
        if (c.rungs.empty() || c.workers < 1) __builtin_trap();  // what from_yaml promises
        break;
      }
      case 1:
        (void)gng::Policy::from_yaml(text, "fuzz.yaml");
        break;
      default: {
        const gng::SearchSpace s = gng::SearchSpace::from_yaml(text, "fuzz.yaml");
        for (std::size_t b = 0; b < s.bits(); ++b) (void)s.bit_name(b);
      }
    }
  } catch (const gng::Error&) {
  }
  return 0;
}
