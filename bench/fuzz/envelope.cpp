// libFuzzer target: sealed envelopes as they arrive from the network (src/secure/envelope.h).
// parse_envelope and open must turn any byte string into a result or a gng::Error — never a crash,
// an out-of-bounds access, UB or another exception type.
//
// open() runs against a real PKI: a CA with two nodes, "n1" (the sender of the seeds) and "n2" (the
// recipient this target plays), and a foreign CA with its own "n1". The PKI lives in $GNG_FUZZ_PKI
// (made on first use and kept, so the seeds stay valid across runs) or else in a temporary
// directory removed at exit. With $GNG_FUZZ_SEEDS set, LLVMFuzzerInitialize writes real envelopes
// sealed by secure::seal into that directory (once: existing files are kept): qkd+pqc and pqc-only
// ones that open, one for another recipient, one from the foreign CA, one whose update does not
// match its digest, and truncated/altered copies.
// The TLS exporter is a fixed 48 bytes and the "KME" returns a fixed 32-byte key for any key_ID.
// With $GNG_FUZZ_VERBOSE set, each input's verdict goes to stderr (to check seeds, replay findings).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/error.h"
#include "secure/envelope.h"

namespace fs = std::filesystem;
using namespace gng::secure;

namespace {

struct State {
  fs::path dir;
  bool temporary = false;
  TrustStore trust;
  Bytes exporter, qkd_key;
  bool verbose = false;
  ~State() {
    std::error_code ec;
    if (temporary) fs::remove_all(dir, ec);
  }
};
State* state = nullptr;

Bytes fixed(std::size_t n, uint8_t base) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(base + 7 * i);
  return b;
}

void make_pki(const std::string& dir) {
  if (fs::exists(dir + "/ca.pem")) return;
  pki_init(dir);
  pki_issue(dir, {.role = "node", .id = "n1"});
  pki_issue(dir, {.role = "node", .id = "n2"});
  pki_init(dir + "/foreign");
  pki_issue(dir + "/foreign", {.role = "node", .id = "n1"});
}

void write_seed(const fs::path& dir, const std::string& name, View bytes) {
  const fs::path p = dir / name;
  if (fs::exists(p)) return;
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

void make_seeds(const fs::path& out) {
  fs::create_directories(out);
  const std::string dir = state->dir.string();
  const Identity n1 = load_identity(dir, "n1"), n2 = load_identity(dir, "n2");
  const Identity foreign = load_identity(dir + "/foreign", "n1");
  const std::string update_text = "a model update: weights 0.25 -1.5 3.0";
  const View update = view(update_text);
  EnvelopeHeader h{.sender = "n1", .recipient = "n2", .run = "fuzz", .round = 3, .seq = 1,
                   .model_digest = model_digest(update), .qkd_key_id = "0f8fad5b-d9cb-469f-a165-70867728950e"};
  const Bytes qkd = seal(h, update, state->exporter, state->qkd_key, n1);
  write_seed(out, "qkd-pqc", qkd);
  EnvelopeHeader p = h;
  p.qkd_key_id.clear();
  write_seed(out, "pqc-only", seal(p, update, state->exporter, {}, n1));
  write_seed(out, "empty-update", seal({.sender = "n1", .recipient = "n2", .run = "r", .round = 0, .seq = 0,
                                        .model_digest = model_digest({})},
                                       {}, state->exporter, {}, n1));
  EnvelopeHeader other = h;
  other.sender = "n2";
  other.recipient = "n1";
  write_seed(out, "other-recipient", seal(other, update, state->exporter, state->qkd_key, n2));
  write_seed(out, "foreign-ca", seal(h, update, state->exporter, state->qkd_key, foreign));
  write_seed(out, "truncated", View(qkd).first(qkd.size() / 2));
  Bytes altered = qkd;  // a certificate byte: the chain no longer verifies
  altered[altered.size() / 2] ^= 0x40;
  write_seed(out, "altered-cert", altered);
  altered = qkd;  // a ciphertext byte, not the tag: the signature holds, AES-GCM refuses
  altered[static_cast<std::size_t>(parse_envelope(qkd).body.data() - qkd.data())] ^= 0x01;
  write_seed(out, "altered-body", altered);
  EnvelopeHeader lie = h;  // decrypts, then the update is not the one the digest names
  lie.model_digest = model_digest(view("another update"));
  write_seed(out, "digest-mismatch", seal(lie, update, state->exporter, state->qkd_key, n1));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  state = new State;
  if (const char* d = std::getenv("GNG_FUZZ_PKI"); d && *d) {
    state->dir = d;
  } else {
    std::string tmpl = (fs::temp_directory_path() / "gng-fuzz-pki.XXXXXX").string();
    if (!mkdtemp(tmpl.data())) std::abort();
    state->dir = tmpl;
    state->temporary = true;
    std::atexit([] { delete state; });
  }
  make_pki(state->dir.string());
  state->trust = TrustStore::load(state->dir.string());
  state->exporter = fixed(48, 0x11);
  state->qkd_key = fixed(32, 0x5a);
  state->verbose = std::getenv("GNG_FUZZ_VERBOSE") != nullptr;
  if (const char* s = std::getenv("GNG_FUZZ_SEEDS"); s && *s) make_seeds(s);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const View wire(data, size);
  try {
    const ParsedEnvelope p = parse_envelope(wire);
    (void)p;
  } catch (const gng::Error& e) {
    if (state->verbose) std::fprintf(stderr, "parse_envelope: %s\n", e.what());
  }
  OpenOptions o;
  o.trust = &state->trust;
  o.me = "n2";
  o.tls_exporter = state->exporter;
  o.qkd_key = [](const std::string&, const std::string&) { return state->qkd_key; };
  o.allow_pqc_only = true;
  try {
    const Opened opened = open(wire, o);
    if (state->verbose) std::fprintf(stderr, "open: opened, %zu-byte update, mode %s\n", opened.update.size(), opened.header.mode.c_str());
  } catch (const gng::Error& e) {
    if (state->verbose) std::fprintf(stderr, "open: %s\n", e.what());
  }
  return 0;
}
