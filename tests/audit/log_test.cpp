// AuditLog on a real SQLite file: appends, signed heads, proofs, and tampering done to the file through
// the SQLite C API (as an attacker with write access would), each named by verify().
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "audit/log.h"
#include "core/file.h"
#include "support/error_of.h"

namespace gng::audit {
namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

const secure::SigningKey& log_key() {
  static const secure::SigningKey k = secure::SigningKey::generate("ML-DSA-65");
  return k;
}

// A fresh folder per test.
std::string fresh_dir() {
  const auto* info = testing::UnitTest::GetInstance()->current_test_info();
  const std::string dir = testing::TempDir() + "/audit_" + info->test_suite_name() + "_" + info->name();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// Runs SQL on the file behind the log's back, with the append-only triggers dropped first.
void tamper(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  const std::string all =
      "DROP TRIGGER IF EXISTS entries_append_only_u; DROP TRIGGER IF EXISTS entries_append_only_d;"
      "DROP TRIGGER IF EXISTS heads_append_only_u; DROP TRIGGER IF EXISTS heads_append_only_d;" +
      sql;
  char* err = nullptr;
  const int rc = sqlite3_exec(db, all.c_str(), nullptr, nullptr, &err);
  const std::string why = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(db);
  ASSERT_EQ(rc, SQLITE_OK) << why;
}

// Rewrites every stored hash from entry `from` on so that the rows agree with each other again: what an
// attacker who edited an entry and knows the hashing would do. Only a signed head can notice.
void rehash_from(const std::string& path, uint64_t from) {
  tamper(path, "");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt *read = nullptr, *write = nullptr;
  sqlite3_prepare_v2(db, "SELECT seq, time_us, kind, actor, detail FROM entries ORDER BY seq", -1, &read, nullptr);
  sqlite3_prepare_v2(db, "UPDATE entries SET leaf = ?, subtree = ?, root = ? WHERE seq = ?", -1, &write, nullptr);
  CompactRange edge;
  auto text = [&](int c) { return std::string(reinterpret_cast<const char*>(sqlite3_column_text(read, c))); };
  while (sqlite3_step(read) == SQLITE_ROW) {
    const int64_t seq = sqlite3_column_int64(read, 0);
    const Hash leaf = leaf_hash(encode_entry(seq, sqlite3_column_int64(read, 1), text(2), text(3), text(4)));
    edge.append(leaf);
    if (static_cast<uint64_t>(seq) < from) continue;
    const Hash root = edge.root();
    sqlite3_bind_blob(write, 1, leaf.data(), 32, SQLITE_TRANSIENT);
    sqlite3_bind_blob(write, 2, edge.last_subtree().data(), 32, SQLITE_TRANSIENT);
    sqlite3_bind_blob(write, 3, root.data(), 32, SQLITE_TRANSIENT);
    sqlite3_bind_int64(write, 4, seq);
    ASSERT_EQ(sqlite3_step(write), SQLITE_DONE);
    sqlite3_reset(write);
  }
  sqlite3_finalize(read);
  sqlite3_finalize(write);
  sqlite3_close(db);
}

void flip_signature_byte(const std::string& path, int64_t head_id) {
  tamper(path, "");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt *read = nullptr, *write = nullptr;
  sqlite3_prepare_v2(db, "SELECT signature FROM heads WHERE id = ?", -1, &read, nullptr);
  sqlite3_bind_int64(read, 1, head_id);
  ASSERT_EQ(sqlite3_step(read), SQLITE_ROW);
  const auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(read, 0));
  secure::Bytes sig(p, p + sqlite3_column_bytes(read, 0));
  sig[sig.size() / 2] ^= 0x04;
  sqlite3_prepare_v2(db, "UPDATE heads SET signature = ? WHERE id = ?", -1, &write, nullptr);
  sqlite3_bind_blob(write, 1, sig.data(), static_cast<int>(sig.size()), SQLITE_TRANSIENT);
  sqlite3_bind_int64(write, 2, head_id);
  ASSERT_EQ(sqlite3_step(write), SQLITE_DONE);
  sqlite3_finalize(read);
  sqlite3_finalize(write);
  sqlite3_close(db);
}

// 40 entries with signed heads (ids 1..4) at sizes 10, 20, 30 and 40.
std::string forty_entries(const std::string& dir) {
  const std::string path = dir + "/" + kLogFile;
  AuditLog log(path, true);
  const char* kinds[] = {"exchange", "rejection", "promotion", "approval", "policy"};
  for (int i = 0; i < 40; ++i) {
    log.append(kinds[i % 5], "node-" + std::to_string(i % 3), {{"round", i}, {"model", "sha256:" + std::to_string(i * 7)}});
    if ((i + 1) % 10 == 0) log.sign_head(log_key());
  }
  return path;
}

VerifyReport verify(const std::string& path) { return AuditLog(path, false).verify(log_key().public_key()); }

TEST(AuditLog, CanonicalEncodingsAreTheDocumentedBytes) {
  EXPECT_EQ(secure::hex(encode_entry(1, 2, "a", "bc", "{}")),
            "01" "0000000000000001" "0000000000000002" "00000001" "61" "00000002" "6263" "00000002" "7b7d");
  // docs/security.md's worked example.
  EXPECT_EQ(to_hex(leaf_hash(encode_entry(1, 2, "a", "bc", "{}"))), "b4413de3d3f642b07713b1642e82e70bf83fa8fe1d60067336dca13864847ba7");
  Hash root{};
  root[31] = 0xff;
  EXPECT_EQ(secure::hex(encode_head(3, -1, root)),
            secure::hex(secure::view("gng audit tree head v1")) + "00" "0000000000000003" "ffffffffffffffff" +
                std::string(62, '0') + "ff");
  EXPECT_EQ(format_time(1700000000123456), "2023-11-14T22:13:20.123456Z");
  EXPECT_EQ(format_time(-1), "1969-12-31T23:59:59.999999Z");
}

TEST(AuditLog, AnUntouchedLogVerifiesWithItsSizeRootAndKey) {
  const std::string path = forty_entries(fresh_dir());
  AuditLog log(path, false);
  const auto r = log.verify(log_key().public_key());
  EXPECT_TRUE(r.ok) << r.problem;
  EXPECT_EQ(r.size, 40u);
  EXPECT_EQ(r.heads, 4u);
  EXPECT_EQ(r.root, log.root());
  EXPECT_EQ(r.line(), "OK: 40 entries, root " + to_hex(log.root()) + "; 4 signed tree heads verified with key " +
                          log_key().public_key().fingerprint());
  // The stored rows are what went in, and the stored roots are RFC 9162 roots of the entries.
  const auto entries = log.entries(0, 40);
  ASSERT_EQ(entries.size(), 40u);
  EXPECT_EQ(entries[7].kind, "promotion");
  EXPECT_EQ(entries[7].actor, "node-1");
  EXPECT_EQ(entries[7].detail, R"({"model":"sha256:49","round":7})");
  std::vector<Hash> leaves;
  for (const auto& e : entries) {
    leaves.push_back(leaf_hash(encode_entry(e.seq, e.time_us, e.kind, e.actor, e.detail)));
    EXPECT_EQ(e.leaf, leaves.back());
    EXPECT_EQ(e.root, root(leaves));
  }
  const auto heads = log.heads();
  ASSERT_EQ(heads.size(), 4u);
  EXPECT_EQ(heads[1].size, 20u);
  EXPECT_EQ(heads[1].root, entries[19].root);
  EXPECT_TRUE(log_key().public_key().verify(encode_head(heads[1].size, heads[1].time_us, heads[1].root), heads[1].signature));
}

TEST(AuditLog, AnEmptyLogAndAHeadAtSizeZeroVerify) {
  const std::string path = fresh_dir() + "/audit.db";
  AuditLog log(path, true);
  EXPECT_EQ(log.size(), 0u);
  EXPECT_EQ(log.root(), empty_root());
  EXPECT_EQ(log.sign_head(log_key()).root, empty_root());
  const auto r = log.verify(log_key().public_key());
  EXPECT_TRUE(r.ok) << r.problem;
  EXPECT_EQ(r.heads, 1u);
  EXPECT_EQ(AuditLog(path, false).verify(log_key().public_key()).line(),
            "OK: 0 entries, root " + to_hex(empty_root()) + "; 1 signed tree head verified with key " +
                log_key().public_key().fingerprint());
}

TEST(AuditLog, ALogWithoutASignedHeadFails) {
  const std::string path = fresh_dir() + "/audit.db";
  AuditLog log(path, true);
  log.append("exchange", "node-a", {{"i", 1}});
  const auto r = log.verify(log_key().public_key());
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.line(), "FAILED: no signed tree head, in the log or outside it: entries cut off its end would not be noticed");
}

TEST(AuditLog, AHeadKeptOutsideTheLogCatchesEntriesCutOffWithTheirHead) {
  const std::string dir = fresh_dir(), path = forty_entries(dir);
  // sign_head wrote the latest head beside the log.
  const TreeHead kept = parse_head_json(read_file(dir + "/" + kHeadFile), dir + "/" + kHeadFile);
  EXPECT_EQ(kept.size, 40u);
  EXPECT_EQ(kept.root, AuditLog(path, false).root());
  // The last five entries and the head that pinned them, deleted together: the log alone cannot tell.
  tamper(path, "DELETE FROM entries WHERE seq >= 35; DELETE FROM heads WHERE tree_size = 40;");
  EXPECT_TRUE(verify(path).ok);
  const auto r = AuditLog(path, false).verify(log_key().public_key(), std::span(&kept, 1));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad, 35u);
  EXPECT_EQ(r.problem, "the log is truncated: the signed tree head in " + dir + "/" + kHeadFile + " (size 40, signed " +
                           format_time(kept.time_us) + ") covers 40 entries but the log holds 35 (entries 35..39 are missing)");
  // A head outside the log is checked as the log's own: one with a changed root is named as forged.
  TreeHead forged = kept;
  forged.size = 30;
  const auto f = AuditLog(path, false).verify(log_key().public_key(), std::span(&forged, 1));
  EXPECT_FALSE(f.ok);
  EXPECT_NE(f.problem.find("the signed tree head in " + dir + "/" + kHeadFile + " (size 30"), std::string::npos) << f.problem;
  EXPECT_NE(f.problem.find("the head was forged or altered"), std::string::npos) << f.problem;
  EXPECT_EQ(test::error_of([&] { parse_head_json("{\"tree_size\": 3}", "x.json"); }).rfind("x.json: not a signed tree head (", 0), 0u);
}

TEST(AuditLog, AnEditedDetailIsNamed) {
  const std::string path = forty_entries(fresh_dir());
  tamper(path, R"(UPDATE entries SET detail = '{"model":"sha256:0","round":17}' WHERE seq = 17;)");
  const auto r = verify(path);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad, 17u);
  EXPECT_EQ(r.problem, "entry 17 does not match its stored leaf hash: it was changed after it was written");
  EXPECT_EQ(r.line(), "FAILED: " + r.problem);
}

TEST(AuditLog, AnEditedRootIsNamed) {
  const std::string path = forty_entries(fresh_dir());
  tamper(path, "UPDATE entries SET root = (SELECT root FROM entries WHERE seq = 3) WHERE seq = 4;");
  const auto r = verify(path);
  EXPECT_EQ(r.first_bad, 4u);
  EXPECT_EQ(r.problem, "entry 4: its stored root differs from the root recomputed over entries 0..4 (the entry or its hashes were changed)");
}

TEST(AuditLog, AConsistentRewriteIsCaughtByTheSignedHead) {
  const std::string path = forty_entries(fresh_dir());
  tamper(path, R"(UPDATE entries SET detail = '{"model":"sha256:0","round":17}' WHERE seq = 17;)");
  rehash_from(path, 17);
  const auto r = verify(path);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad, 10u);  // the head at size 10 still matches; the one at 20 does not
  EXPECT_PRED2(contains, r.problem, "entries 10..19 were rewritten: signed tree head #2 (size 20, signed ");
  EXPECT_PRED2(contains, r.problem, "(the signed head at size 10 still matches)");
}

TEST(AuditLog, ARewriteBeforeTheFirstHeadIsNamedFromZero) {
  const std::string path = forty_entries(fresh_dir());
  tamper(path, R"(UPDATE entries SET actor = 'mallory' WHERE seq = 2;)");
  rehash_from(path, 2);
  const auto r = verify(path);
  EXPECT_EQ(r.first_bad, 0u);
  EXPECT_PRED2(contains, r.problem, "entries 0..9 were rewritten: signed tree head #1 (size 10, ");
}

TEST(AuditLog, ADeletedMiddleEntryIsMissing) {
  const std::string path = forty_entries(fresh_dir());
  tamper(path, "DELETE FROM entries WHERE seq = 5;");
  const auto r = verify(path);
  EXPECT_EQ(r.first_bad, 5u);
  EXPECT_EQ(r.problem, "entry 5 is missing (the next stored entry is 6)");
  tamper(path, "DELETE FROM entries WHERE seq IN (6, 7);");
  EXPECT_EQ(verify(path).problem, "entries 5..7 are missing (the next stored entry is 8)");
  // Proofs and appends refuse a log with a hole rather than prove or extend a wrong tree.
  AuditLog log(path, false);
  EXPECT_EQ(test::error_of([&] { log.inclusion_proof(2, 20); }),
            path + ": the audit log is damaged: entry 5 is missing (run gng audit verify)");
}

TEST(AuditLog, DeletedLastEntriesAreATruncation) {
  const std::string path = forty_entries(fresh_dir());
  tamper(path, "DELETE FROM entries WHERE seq >= 35;");
  const auto r = verify(path);
  EXPECT_EQ(r.first_bad, 35u);
  EXPECT_PRED2(contains, r.problem, "the log is truncated: signed tree head #4 (size 40, signed ");
  EXPECT_PRED2(contains, r.problem, ") covers 40 entries but the log holds 35 (entries 35..39 are missing)");
  tamper(path, "DELETE FROM entries WHERE seq >= 12;");  // below a head, and past two more
  EXPECT_PRED2(contains, verify(path).problem, "signed tree head #2 (size 20");
  EXPECT_PRED2(contains, verify(path).problem, "(entries 12..19 are missing)");
}

TEST(AuditLog, SwappedEntriesAreNamedAtTheFirst) {
  const std::string path = forty_entries(fresh_dir());
  tamper(path,
         "CREATE TEMP TABLE t AS SELECT * FROM entries WHERE seq IN (3, 8);"
         "UPDATE entries SET (time_us, kind, actor, detail, leaf, subtree, root) = "
         "(SELECT time_us, kind, actor, detail, leaf, subtree, root FROM t WHERE t.seq = 11 - entries.seq) "
         "WHERE seq IN (3, 8);");
  const auto r = verify(path);
  EXPECT_EQ(r.first_bad, 3u);
  EXPECT_EQ(r.problem, "entry 3 does not match its stored leaf hash: it was changed after it was written");
}

TEST(AuditLog, AForgedHeadRootIsNamed) {
  const std::string path = forty_entries(fresh_dir());
  tamper(path, "UPDATE heads SET root = (SELECT root FROM entries WHERE seq = 14) WHERE id = 2;");
  const auto r = verify(path);
  EXPECT_FALSE(r.ok);
  EXPECT_FALSE(r.first_bad);
  EXPECT_PRED2(contains, r.problem, "signed tree head #2 (size 20, signed ");
  EXPECT_PRED2(contains, r.problem, "): the signature does not verify with key " + log_key().public_key().fingerprint() +
                                   ": the head was forged or altered");
}

TEST(AuditLog, ACorruptSignatureIsNamed) {
  const std::string path = forty_entries(fresh_dir());
  flip_signature_byte(path, 3);
  const auto r = verify(path);
  EXPECT_FALSE(r.ok);
  EXPECT_PRED2(contains, r.problem, "signed tree head #3 (size 30, signed ");
  EXPECT_PRED2(contains, r.problem, "the signature does not verify");
}

TEST(AuditLog, AHeadSignedByAnotherKeyOrAWrongVerifyingKeyFails) {
  const std::string path = forty_entries(fresh_dir());
  const auto other = secure::SigningKey::generate("ML-DSA-65");
  const auto r = AuditLog(path, false).verify(other.public_key());
  EXPECT_FALSE(r.ok);
  EXPECT_PRED2(contains, r.problem, "signed tree head #1 (size 10, signed ");
  EXPECT_PRED2(contains, r.problem, ") was signed by key " + log_key().public_key().fingerprint() + ", not by the verifying key " +
                                   other.public_key().fingerprint());
  {
    AuditLog log(path, false);
    log.append("policy", "mallory", {{"qkd", "off"}});
    log.sign_head(other);
  }
  EXPECT_PRED2(contains, verify(path).problem, "signed tree head #5 (size 41, signed ");
}

TEST(AuditLog, TheFileRefusesUpdatesAndDeletes) {
  const std::string path = forty_entries(fresh_dir());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  for (const char* sql : {"UPDATE entries SET actor = 'x' WHERE seq = 1", "DELETE FROM entries WHERE seq = 39",
                          "UPDATE heads SET tree_size = 1", "DELETE FROM heads"}) {
    char* err = nullptr;
    EXPECT_NE(sqlite3_exec(db, sql, nullptr, nullptr, &err), SQLITE_OK) << sql;
    EXPECT_STREQ(err, "the audit log is append-only");
    sqlite3_free(err);
  }
  sqlite3_close(db);
  EXPECT_TRUE(verify(path).ok);
}

TEST(AuditLog, ReopenedLogsAppendWhereTheyStopped) {
  const std::string path = fresh_dir() + "/audit.db";
  for (int round = 0; round < 4; ++round) {
    AuditLog log(path, true);
    EXPECT_EQ(log.size(), static_cast<uint64_t>(round * 5));
    for (int i = 0; i < 5; ++i) EXPECT_EQ(log.append("exchange", "node-a", {{"i", i}}), static_cast<uint64_t>(round * 5 + i));
    log.sign_head(log_key());
  }
  AuditLog log(path, false);
  const auto r = log.verify(log_key().public_key());
  EXPECT_TRUE(r.ok) << r.problem;
  EXPECT_EQ(r.size, 20u);
  EXPECT_EQ(r.heads, 4u);
}

TEST(AuditLog, ThreadsSharingOneLogAppendInTurn) {
  const std::string path = fresh_dir() + "/audit.db";
  AuditLog log(path, true);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) log.append("exchange", "node-" + std::to_string(t), {{"i", i}});
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(log.size(), 200u);
  log.sign_head(log_key());
  const auto r = log.verify(log_key().public_key());
  EXPECT_TRUE(r.ok) << r.problem;
}

TEST(AuditLog, TenThousandBatchedEntriesVerifyAndProve) {
  const std::string path = fresh_dir() + "/audit.db";
  AuditLog log(path, true);
  std::vector<NewEntry> batch;
  for (int i = 0; i < 10000; ++i)
    batch.push_back({i % 2 ? "exchange" : "rejection", "node-" + std::to_string(i % 7), R"({"seq": )" + std::to_string(i) + "}"});
  EXPECT_EQ(log.append_batch(batch), 0u);
  const TreeHead head = log.sign_head(log_key());
  EXPECT_EQ(head.size, 10000u);
  EXPECT_EQ(log.append_batch(std::span(batch).first(3)), 10000u);
  const auto r = log.verify(log_key().public_key());
  ASSERT_TRUE(r.ok) << r.problem;
  EXPECT_EQ(r.size, 10003u);
  EXPECT_EQ(r.root, log.root());
  for (uint64_t i : {0, 1, 4095, 4096, 9999}) {
    const auto p = log.inclusion_proof(i, 10000);
    EXPECT_EQ(p.root, head.root);
    EXPECT_TRUE(verify_inclusion(i, 10000, p.leaf, p.path, head.root)) << i;
    EXPECT_EQ(p.path.size(), i < 8192 ? 14u : 8u);  // 10000 = 8192 + 1024 + 512 + 256 + 16
  }
  const auto c = log.consistency_proof(1000, 10000);
  EXPECT_EQ(c.root_n, head.root);
  EXPECT_EQ(c.root_m, log.entries(999, 1000).at(0).root);
  EXPECT_TRUE(verify_consistency(1000, 10000, c.root_m, c.root_n, c.path));
  const auto c2 = log.consistency_proof(10000, 10003);
  EXPECT_TRUE(verify_consistency(10000, 10003, head.root, log.root(), c2.path));
}

TEST(AuditLog, BadEntriesAreRefusedAndNothingIsAppended) {
  const std::string path = fresh_dir() + "/audit.db";
  AuditLog log(path, true);
  EXPECT_EQ(test::error_of([&] { log.append("", "a", {}); }),
            "audit entry kind must be 1 to 256 characters without control characters, got ''");
  EXPECT_EQ(test::error_of([&] { log.append("policy", "a\nb", {}); }),
            "audit entry actor must be 1 to 256 characters without control characters, got 'a\nb'");
  const std::vector<NewEntry> batch = {{"policy", "ops", "{}"}, {"policy", "ops", "{not json"}};
  EXPECT_PRED2(contains, test::error_of([&] { log.append_batch(batch); }), "audit entry detail is not JSON: ");
  EXPECT_EQ(log.size(), 0u);
  EXPECT_EQ(test::error_of([&] { log.inclusion_proof(0, 1); }), path + ": the log holds 0 entries, not 1");
  log.append("policy", "ops", {{"qkd", "required"}});
  EXPECT_EQ(test::error_of([&] { log.inclusion_proof(1, 1); }), path + ": no entry 1 among the first 1 entries");
  EXPECT_EQ(test::error_of([&] { log.consistency_proof(2, 1); }), path + ": no consistency proof from size 2 to the smaller size 1");
}

TEST(AuditLog, OpeningWhatIsNotALogIsAnError) {
  const std::string dir = fresh_dir();
  EXPECT_EQ(test::error_of([&] { AuditLog(dir + "/none.db", false); }), dir + "/none.db: no audit log here");
  write_file_atomic(dir + "/text.db", "hello, this is not SQLite, just some text that is long enough to be a header\n");
  EXPECT_PRED2(contains, test::error_of([&] { AuditLog(dir + "/text.db", false); }), dir + "/text.db: not a gng audit log (");
  sqlite3* db = nullptr;
  sqlite3_open((dir + "/other.db").c_str(), &db);
  sqlite3_exec(db, "CREATE TABLE meta(key TEXT, value TEXT); INSERT INTO meta VALUES('format', 'gng registry v1');", nullptr,
               nullptr, nullptr);
  sqlite3_close(db);
  for (bool create : {false, true})
    EXPECT_EQ(test::error_of([&] { AuditLog(dir + "/other.db", create); }), dir + "/other.db: not a gng audit log (format mismatch)");
  // Opening with create=true added nothing to the other program's file.
  sqlite3_open((dir + "/other.db").c_str(), &db);
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master", -1, &s, nullptr);
  ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(s, 0), 1);
  sqlite3_finalize(s);
  sqlite3_close(db);
}

}  // namespace
}  // namespace gng::audit
