// libFuzzer target: the PushUpdate RPC body as the receiver reads it (src/net/exchange.cpp): bytes →
// gng::rpc::PushUpdate::ParseFromString → parse_envelope(envelope). The same bytes are also read as
// the PushAck a sender gets back. Anything but a result or a gng::Error is a finding. (libprotobuf
// is Debian's, not instrumented: the coverage and checks are those of the generated code and gng.)
//
// With $GNG_FUZZ_ENVELOPES and $GNG_FUZZ_SEEDS set, LLVMFuzzerInitialize wraps every file of the
// first directory (real envelopes, see envelope.cpp) in a PushUpdate and writes it into the second.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <google/protobuf/stubs/logging.h>

#include "core/error.h"
#include "gng.pb.h"
#include "secure/envelope.h"

namespace fs = std::filesystem;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);  // invalid UTF-8 in PushAck's strings is logged, not a finding
  const char* from = std::getenv("GNG_FUZZ_ENVELOPES");
  const char* to = std::getenv("GNG_FUZZ_SEEDS");
  if (!from || !*from || !to || !*to || !fs::is_directory(from)) return 0;
  fs::create_directories(to);
  for (const auto& e : fs::directory_iterator(from)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    const std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    gng::rpc::PushUpdate msg;
    msg.set_envelope(bytes);
    std::ofstream(fs::path(to) / ("push-" + e.path().filename().string()), std::ios::binary) << msg.SerializeAsString();
  }
  gng::rpc::PushAck ack;
  ack.set_model_digest(std::string(64, 'a'));
  ack.set_round(3);
  ack.set_seq(1);
  ack.set_mode("qkd+pqc");
  ack.set_audit_seq(17);
  std::ofstream(fs::path(to) / "ack", std::ios::binary) << ack.SerializeAsString();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  gng::rpc::PushUpdate msg;
  if (msg.ParseFromString(body)) {
    const gng::secure::View wire(reinterpret_cast<const uint8_t*>(msg.envelope().data()), msg.envelope().size());
    try {
      (void)gng::secure::parse_envelope(wire);
    } catch (const gng::Error&) {
    }
    (void)msg.SerializeAsString();
  }
  gng::rpc::PushAck ack;
  if (ack.ParseFromString(body)) (void)ack.SerializeAsString();
  return 0;
}
