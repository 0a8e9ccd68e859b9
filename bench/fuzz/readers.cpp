// libFuzzer target: the problem readers (bqp, rudy, JSON) must turn any byte string into either a
// Problem or a gng::Error — never a crash, a hang, an out-of-bounds access or another exception.
// The first byte picks the format (and the bqp instance); the rest is the file.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "qubo/io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const gng::Format formats[] = {gng::Format::bqp, gng::Format::rudy, gng::Format::json};
  const gng::Format f = formats[data[0] % 3];
  const int instance = f == gng::Format::bqp ? 1 + (data[0] >> 2) % 3 : 1;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    const gng::Problem p = gng::parse_problem(text, f, "fuzz", instance);
    (void)p.qubo.energy(gng::Bits(p.qubo.size(), 1));
  } catch (const gng::Error&) {
  }
  try {
    (void)gng::detect_format(text, "fuzz");
  } catch (const gng::Error&) {
  }
  return 0;
}
