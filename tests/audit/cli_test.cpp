// `gng audit` as a user runs it: exit codes, the one-line verdict, proofs a third party can check.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "audit/log.h"
#include "core/file.h"
#include "support/paths.h"

namespace gng::audit {
namespace {

const std::string gng = GNG_BINARY;

struct Fixture {
  std::string dir;
  secure::SigningKey key = secure::SigningKey::generate("ML-DSA-65");
  Hash root;
};

// DIR with 25 entries, heads at 12 and 25, and the public key at DIR/audit-key.pub.pem.
Fixture make_log(const std::string& name) {
  Fixture f;
  f.dir = testing::TempDir() + "/audit_cli_" + name;
  std::filesystem::remove_all(f.dir);
  std::filesystem::create_directories(f.dir);
  AuditLog log(f.dir + "/audit.db", true);
  for (int i = 0; i < 25; ++i) {
    log.append(i % 2 ? "exchange" : "approval", "node-" + std::to_string(i % 4), {{"i", i}});
    if (i == 11 || i == 24) log.sign_head(f.key);
  }
  f.root = log.root();
  write_file_atomic(f.dir + "/audit-key.pub.pem", f.key.public_key().pem());
  return f;
}

void tamper(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, ("DROP TRIGGER entries_append_only_u; DROP TRIGGER entries_append_only_d;" + sql).c_str(), nullptr,
                         nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
}

TEST(AuditCli, VerifyPrintsOneOkLineWithTheKeyThatVerified) {
  const Fixture f = make_log("ok");
  const auto r = test::run(gng + " audit verify " + f.dir);
  EXPECT_EQ(r.status, 0) << r.out;
  // The log's two heads and the latest one again, kept outside it in audit-head.json.
  EXPECT_EQ(r.out, "OK: 25 entries, root " + to_hex(f.root) + "; 3 signed tree heads verified with key " +
                       f.key.public_key().fingerprint() + "\n");
}

TEST(AuditCli, VerifyNamesTheFirstBadEntryAndExitsOne) {
  const Fixture f = make_log("bad");
  tamper(f.dir + "/audit.db", R"(UPDATE entries SET detail = '{"i":99}' WHERE seq = 7; DELETE FROM entries WHERE seq = 9;)");
  const auto r = test::run(gng + " audit verify " + f.dir);
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_EQ(r.out, "FAILED: entry 7 does not match its stored leaf hash: it was changed after it was written\n");
}

TEST(AuditCli, VerifyDetectsATruncatedLog) {
  const Fixture f = make_log("truncated");
  tamper(f.dir + "/audit.db", "DELETE FROM entries WHERE seq >= 20;");
  const auto r = test::run(gng + " audit verify " + f.dir);
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("FAILED: the log is truncated: signed tree head #2 (size 25, signed "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(entries 20..24 are missing)"), std::string::npos) << r.out;
}

TEST(AuditCli, ALogCutShortTogetherWithItsHeadsFails) {
  const Fixture f = make_log("cut");
  // The last entries with the head that pinned them: the head kept outside the log names the cut.
  tamper(f.dir + "/audit.db", "DELETE FROM entries WHERE seq >= 20; DROP TRIGGER heads_append_only_d; DELETE FROM heads WHERE tree_size = 25;");
  auto r = test::run(gng + " audit verify " + f.dir);
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("FAILED: the log is truncated: the signed tree head in " + f.dir + "/audit-head.json (size 25"),
            std::string::npos)
      << r.out;
  // Without that file: a failure that says so, not an OK.
  std::filesystem::remove(f.dir + "/audit-head.json");
  r = test::run(gng + " audit verify " + f.dir);
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_EQ(r.out, "FAILED: " + f.dir + "/audit-head.json (the latest signed tree head, kept outside the log) is missing: " +
                       "entries cut off the log's end would not be noticed\n");
  // Every head gone, inside and out: a failure, not a warning.
  const Fixture g = make_log("headless");
  tamper(g.dir + "/audit.db", "DROP TRIGGER heads_append_only_d; DELETE FROM heads;");
  std::filesystem::remove(g.dir + "/audit-head.json");
  r = test::run(gng + " audit verify " + g.dir);
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("is missing"), std::string::npos) << r.out;
}

TEST(AuditCli, VerifyWithAnotherKeyFailsAndWithoutAKeyIsAnError) {
  const Fixture f = make_log("keys");
  const auto other = secure::SigningKey::generate("ML-DSA-65");
  const std::string other_pem = f.dir + "/other.pub.pem";
  write_file_atomic(other_pem, other.public_key().pem());
  auto r = test::run(gng + " audit verify " + f.dir + " --key " + other_pem);
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("not by the verifying key " + other.public_key().fingerprint()), std::string::npos) << r.out;
  std::filesystem::remove(f.dir + "/audit-key.pub.pem");
  r = test::run(gng + " audit verify " + f.dir);
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.out, "gng audit: error: no key to verify the signed tree heads: pass --key PUBKEY.pem or put the log's public key in " +
                       f.dir + "/audit-key.pub.pem\n");
  r = test::run(gng + " audit verify " + f.dir + " --key " + f.dir + "/audit.db");
  EXPECT_EQ(r.status, 1) << r.out;
}

TEST(AuditCli, ProofPrintsAnInclusionProofThatVerifies) {
  const Fixture f = make_log("proof");
  const auto r = test::run(gng + " audit proof " + f.dir + " --index 5 --size 12");
  ASSERT_EQ(r.status, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["index"], 5);
  EXPECT_EQ(j["tree_size"], 12);
  EXPECT_EQ(j["entry"]["detail"], R"({"i":5})");
  std::vector<Hash> path;
  for (const auto& h : j["inclusion_proof"]) path.push_back(hash_from_hex(h.get<std::string>()));
  // A third party recomputes the leaf from the entry and checks it against the root signed at size 12.
  const auto& e = j["entry"];
  const Hash leaf = leaf_hash(encode_entry(e["seq"].get<uint64_t>(), e["time_us"].get<int64_t>(), e["kind"].get<std::string>(),
                                            e["actor"].get<std::string>(), e["detail"].get<std::string>()));
  EXPECT_EQ(to_hex(leaf), j["leaf_hash"]);
  const Hash signed_root = AuditLog(f.dir + "/audit.db", false).heads().at(0).root;
  EXPECT_EQ(to_hex(signed_root), j["root"]);
  EXPECT_TRUE(verify_inclusion(5, 12, leaf, path, signed_root));

  const auto all = nlohmann::json::parse(test::run(gng + " audit proof " + f.dir + " --index 24").out);
  EXPECT_EQ(all["tree_size"], 25);
  EXPECT_EQ(all["root"], to_hex(f.root));

  // The verifier outside gng that docs/security.md gives agrees, and refuses an altered entry.
  const std::string script = std::string(GNG_SOURCE_DIR) + "/scripts/check_audit_proof.py";
  const auto outside = test::run(gng + " audit proof " + f.dir + " --index 5 --size 12 | python3 " + script);
  EXPECT_EQ(outside.status, 0) << outside.out;
  EXPECT_EQ(outside.out, "entry 5 is in the tree of 12 with root " + to_hex(signed_root) + "\n");
  const auto altered = test::run(gng + " audit proof " + f.dir + " --index 5 --size 12 | sed 's/\"actor\": \"node-1\"/\"actor\": \"node-2\"/' | python3 " + script);
  EXPECT_NE(altered.status, 0) << altered.out;
}

TEST(AuditCli, ShowListsTheTailAndTheHeads) {
  const Fixture f = make_log("show");
  const auto r = test::run(gng + " audit show " + f.dir + " --tail 2");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(r.out.find(f.dir + "/audit.db: 25 entries, root " + to_hex(f.root)), 0u) << r.out;
  EXPECT_NE(r.out.find("    23  "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("    24  "), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("    22  "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(R"({"i":24})"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("head #2  size 25  "), std::string::npos) << r.out;
}

TEST(AuditCli, BadUsageGetsAPreciseErrorAndNonZeroExit) {
  const Fixture f = make_log("usage");
  struct Case {
    std::string args, out;
    int status;
  };
  const std::vector<Case> cases = {
      {"audit", "usage: gng audit verify DIR", 2},
      {"audit frobnicate " + f.dir, "gng audit: error: gng audit: unknown subcommand 'frobnicate' (verify, show or proof)", 1},
      {"audit verify " + f.dir + "/nope", "gng audit: error: " + f.dir + "/nope: no such folder", 1},
      {"audit verify " + testing::TempDir(), "gng audit: error: " + testing::TempDir() + ": no audit log here (audit.db is missing)", 1},
      {"audit proof " + f.dir, "gng audit: error: gng audit proof: --index I is required", 1},
      {"audit proof " + f.dir + " --index 25", "gng audit: error: " + f.dir + "/audit.db: no entry 25 among the first 25 entries", 1},
      {"audit proof " + f.dir + " --index 1 --size 26", "gng audit: error: " + f.dir + "/audit.db: the log holds 25 entries, not 26", 1},
      {"audit proof " + f.dir + " --index -1", "gng audit: error: gng audit: option --index must be in [0, 9223372036854775807], got -1", 1},
      {"audit show " + f.dir + " --index 1", "gng audit: error: gng audit show: --index does not apply here (see gng audit --help)", 1},
  };
  for (const auto& c : cases) {
    const auto r = test::run(gng + " " + c.args);
    EXPECT_EQ(r.status, c.status) << c.args << "\n" << r.out;
    EXPECT_EQ(r.out.find(c.out), 0u) << c.args << "\n" << r.out;
  }
}

}  // namespace
}  // namespace gng::audit
