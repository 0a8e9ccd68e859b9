// libFuzzer target: gng's OpenQASM 3 subset simulator must turn any text into a state or a
// gng::Error — never a crash, a hang or an out-of-bounds access.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "quantum/qasm.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  try {
    (void)gng::quantum::simulate_qasm(std::string_view(reinterpret_cast<const char*>(data), size));
  } catch (const gng::Error&) {
  }
  return 0;
}
