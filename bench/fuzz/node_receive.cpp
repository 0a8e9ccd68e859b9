// libFuzzer target: a node's real receive path (src/node/exchange.h), the code production runs when
// the orchestrator sends a federated round or a model to deploy: the RPC body (protobuf) → the
// sealed envelope inside it → its QKD key reference (dec_keys through qkd::Keys) → the payload
// (fed::decode, or the packed model). The first input byte chooses FederatedRound (even) or Deploy
// (odd); the rest is the body. Anything but a result, a net::Failure or a gng::Error is a finding.
//
// It runs against a real PKI: a CA with the orchestrator "orch" (the sender) and the node "n2" (the
// recipient this target plays), kept in $GNG_FUZZ_PKI (made on first use, so seeds stay valid) or a
// temporary directory. The TLS exporter is a fixed 48 bytes; the "KME" knows one key_ID (a fixed
// 32-byte key) and refuses any other, as a real one does. Every call gets a fresh replay guard, so a
// valid seed opens on every run. With $GNG_FUZZ_SEEDS set, LLVMFuzzerInitialize writes real
// requests there (once): a round and a deploy that are accepted, pqc-only ones, an unknown key_ID, a
// payload that is not a state, truncated and altered copies. (libprotobuf is Debian's, not
// instrumented: the coverage and checks are those of the generated code and gng.)
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <google/protobuf/stubs/logging.h>

#include "core/error.h"
#include "gng.pb.h"
#include "node/exchange.h"
#include "secure/pki.h"

namespace fs = std::filesystem;
using namespace gng;

namespace {

constexpr const char* kKeyId = "0f8fad5b-d9cb-469f-a165-70867728950e";

struct State {
  fs::path dir;
  bool temporary = false;
  secure::TrustStore trust;
  secure::Bytes exporter, qkd_key;
  qkd::Keys keys;
  net::Peer orchestrator;
  bool verbose = false;
  ~State() {
    std::error_code ec;
    if (temporary) fs::remove_all(dir, ec);
  }
};
State* state = nullptr;

secure::Bytes fixed(std::size_t n, uint8_t base) {
  secure::Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(base + 7 * i);
  return b;
}

void write_seed(const fs::path& dir, const std::string& name, const std::string& bytes) {
  const fs::path p = dir / name;
  if (!fs::exists(p)) std::ofstream(p, std::ios::binary) << bytes;
}

std::string round_body(const secure::Bytes& envelope, uint64_t seq) {
  rpc::FederatedRoundRequest req;
  req.set_run("fuzz");
  req.set_round(1);
  req.set_rounds(3);
  req.set_family("cnn");
  req.set_design_json("{\"width\": \"8\"}");
  req.set_global_envelope(envelope.data(), envelope.size());
  req.set_epochs(1);
  req.set_seq(seq);
  return req.SerializeAsString();
}

std::string deploy_body(const secure::Bytes& envelope, uint64_t seq) {
  rpc::DeployRequest req;
  req.set_run("fuzz");
  req.set_seq(seq);
  req.set_model_envelope(envelope.data(), envelope.size());
  return req.SerializeAsString();
}

void make_seeds(const fs::path& out) {
  fs::create_directories(out);
  const secure::Identity orch = secure::load_identity(state->dir.string(), "orch");
  net::Peer to_n2 = state->orchestrator;  // the orchestrator's view of its session: the peer is n2
  to_n2.id = "n2";
  to_n2.role = "node";
  auto seal = [&](const std::string& payload, uint64_t seq, const std::string& key_id, const secure::Bytes& key) {
    return node::seal_for(orch, to_n2, "fuzz", seq, payload, {key_id, key}).wire;
  };
  const std::string round(1, '\0'), deploy(1, '\1');  // the selector byte
  fed::Update u;
  u.from = "orch";
  u.samples = 3;
  u.tensors.push_back({"w", {2, 2}, {0.5f, -1.0f, 2.0f, 0.0f}});
  u.tensors.push_back({"b", {2}, {0.1f, 0.2f}});
  const std::string state_bytes = fed::encode(u);
  const secure::Bytes good = seal(state_bytes, 1, kKeyId, state->qkd_key);
  write_seed(out, "round", round + round_body(good, 1));
  write_seed(out, "round-pqc-only", round + round_body(seal(state_bytes, 2, "", {}), 2));
  write_seed(out, "round-unknown-key", round + round_body(seal(state_bytes, 3, "7c9e6679-7425-40de-944b-e07fc1f90ae7", state->qkd_key), 3));
  write_seed(out, "round-not-a-state", round + round_body(seal("not a state", 4, kKeyId, state->qkd_key), 4));
  write_seed(out, "round-truncated", round + round_body(secure::Bytes(good.begin(), good.begin() + good.size() / 2), 5));
  secure::Bytes altered = good;
  altered[altered.size() - 100] ^= 0x01;
  write_seed(out, "round-altered", round + round_body(altered, 6));
  const std::string model = node::pack_model("{\"family\": \"cnn\", \"design\": {}}", std::string(64, '\x07'));
  write_seed(out, "deploy", deploy + deploy_body(seal(model, 7, kKeyId, state->qkd_key), 7));
  write_seed(out, "deploy-short-model", deploy + deploy_body(seal(std::string("\0\0\0\x09{}", 6), 8, kKeyId, state->qkd_key), 8));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);  // invalid UTF-8 in string fields is logged, not a finding
  state = new State;
  if (const char* d = std::getenv("GNG_FUZZ_PKI"); d && *d) {
    state->dir = d;
  } else {
    std::string tmpl = (fs::temp_directory_path() / "gng-fuzz-node.XXXXXX").string();
    if (!mkdtemp(tmpl.data())) std::abort();
    state->dir = tmpl;
    state->temporary = true;
    std::atexit([] { delete state; });
  }
  const std::string dir = state->dir.string();
  if (!fs::exists(dir + "/issued/orch.pem")) {
    if (!fs::exists(dir + "/ca.pem")) secure::pki_init(dir);
    secure::pki_issue(dir, {.role = "orchestrator", .id = "orch"});
    secure::pki_issue(dir, {.role = "node", .id = "n2"});
  }
  state->trust = secure::TrustStore::load(dir);
  state->exporter = fixed(48, 0x11);
  state->qkd_key = fixed(32, 0x5a);
  state->keys.required = false;
  state->keys.for_opening = [](const std::string&, const std::string& id) {
    if (id != kKeyId) throw Error("key_ID " + id + " is unknown to this KME");
    return state->qkd_key;
  };
  state->orchestrator.id = "orch";
  state->orchestrator.role = "orchestrator";
  state->orchestrator.exporter = state->exporter;
  state->orchestrator.tls_group = "X25519MLKEM768";
  state->verbose = std::getenv("GNG_FUZZ_VERBOSE") != nullptr;
  if (const char* s = std::getenv("GNG_FUZZ_SEEDS"); s && *s) make_seeds(s);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  secure::ReplayGuard replay;
  const node::Inbox in{&state->trust, "n2", &state->keys, &replay, nullptr};
  try {
    if (data[0] % 2 == 0) {
      const node::RoundRequest r = node::receive_round(state->orchestrator, body, in);
      if (state->verbose) std::fprintf(stderr, "round: accepted, %zu tensors\n", r.global.tensors.size());
    } else {
      const node::DeployRequest d = node::receive_deploy(state->orchestrator, body, in);
      if (state->verbose) std::fprintf(stderr, "deploy: accepted, %zu-byte weights\n", d.weights.size());
    }
  } catch (const net::Failure& f) {
    if (state->verbose) std::fprintf(stderr, "refused %d: %s\n", f.status, f.what());
  } catch (const Error& e) {
    if (state->verbose) std::fprintf(stderr, "error: %s\n", e.what());
  }
  return 0;
}
