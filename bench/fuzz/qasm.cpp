// libFuzzer target: gng's OpenQASM 3 subset simulator must turn any text into a state or a
// gng::Error — never a crash, a hang or an out-of-bounds access.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"
#include "quantum/circuit.h"
#include "quantum/qasm.h"

// qasm.cpp's QAOA export (qaoa_qasm, not fuzzed) calls xy_ring_edges(), defined in circuit.cpp with
// the simulator, whose kernels.cpp only GCC compiles (__builtin_shuffle). Never called here: a trap.
std::vector<std::pair<int, int>> gng::quantum::xy_ring_edges(const std::vector<std::vector<uint32_t>>&) {
  __builtin_trap();
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  try {
    (void)gng::quantum::simulate_qasm(std::string_view(reinterpret_cast<const char*>(data), size));
  } catch (const gng::Error&) {
  }
  return 0;
}
