// libFuzzer target: the ETSI GS QKD 014 JSON bodies a KME and its clients read from the network
// (src/qkd/kme.h) and the base64 of their keys (src/secure/crypto.h). The first byte picks
// the parser — 0 parse_key_request, 1 parse_key_ids, 2 parse_key_container, 3 from_base64 — and the
// rest is the body. Each must return or throw gng::Error / gng::net::Failure; what they return is
// checked too (a request's numbers in range, base64 decoding what it encodes).
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "net/rpc.h"
#include "secure/crypto.h"
#include "qkd/kme.h"

using namespace gng::secure;
namespace qkd = gng::qkd;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string body(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    switch (data[0] % 4) {
      case 0: {
        const qkd::KeyRequest k = qkd::parse_key_request(body, 256);
        if (k.number < 0 || k.number > 1'000'000 || k.size < 0 || k.size > 1'000'000) __builtin_trap();
        break;
      }
      case 1:
        (void)qkd::parse_key_ids(body);
        break;
      case 2:
        for (const auto& k : qkd::parse_key_container(body))
          if (from_base64(base64(k.key)) != k.key) __builtin_trap();
        break;
      case 3: {
        const Bytes b = from_base64(body);
        if (b.size() > body.size() / 4 * 3 || from_base64(base64(b)) != b) __builtin_trap();
        break;
      }
    }
  } catch (const gng::Error&) {
  } catch (const gng::net::Failure& f) {
    if (f.status != 400) __builtin_trap();
  }
  return 0;
}
