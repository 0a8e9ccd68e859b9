#include "audit/log.h"

#include <sqlite3.h>

#include <bit>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/bytes.h"
#include "core/error.h"
#include "core/file.h"
#include "core/sqlite.h"

namespace gng::audit {

namespace {

constexpr const char* kFormat = "gng audit log v1";

// Each entries row keeps, besides the entry: its leaf hash, the hash of the largest perfect subtree
// that ends at it (entries [seq + 1 - 2^k, seq + 1), 2^k the lowest set bit of seq + 1; the right edge
// of any tree size is a few of these, so append resumes in O(log n)) and the root after it.
// Triggers refuse UPDATE and DELETE: they stop mistakes, not an attacker (verify() does that).
constexpr const char* kSchema = R"(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries(seq INTEGER PRIMARY KEY, time_us INTEGER NOT NULL, kind TEXT NOT NULL,
  actor TEXT NOT NULL, detail TEXT NOT NULL, leaf BLOB NOT NULL, subtree BLOB NOT NULL, root BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS heads(id INTEGER PRIMARY KEY, tree_size INTEGER NOT NULL, time_us INTEGER NOT NULL,
  root BLOB NOT NULL, signature BLOB NOT NULL, key_fingerprint TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS entries_append_only_u BEFORE UPDATE ON entries
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS entries_append_only_d BEFORE DELETE ON entries
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS heads_append_only_u BEFORE UPDATE ON heads
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS heads_append_only_d BEFORE DELETE ON heads
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
)";

using sql::Stmt;

// A stored hash; all zeros when the column is not 32 bytes (it then matches no real hash).
Hash hash(const Stmt& s, int c) {
  Hash h{};
  const secure::View b = s.blob(c);
  if (b.size() == h.size()) std::memcpy(h.data(), b.data(), h.size());
  return h;
}

bool same(const Stmt& s, int c, const Hash& h) {
  const secure::View b = s.blob(c);
  return b.size() == h.size() && std::memcmp(b.data(), h.data(), h.size()) == 0;
}

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

using Writer = bytes::Writer<secure::Bytes>;

void put_field(secure::Bytes& out, const std::string& s) { Writer(out).field(s, 4, UINT32_MAX, "audit entry field"); }

void check_label(const char* what, const std::string& s) {
  bool ok = !s.empty() && s.size() <= 256;
  for (unsigned char c : s) ok = ok && c >= 0x20 && c != 0x7f;
  if (!ok) throw Error(std::string("audit entry ") + what + " must be 1 to 256 characters without control characters, got '" + s + "'");
}

std::string canonical_detail(const std::string& json_text) {
  try {
    return nlohmann::json::parse(json_text).dump();
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("audit entry detail is not JSON: ") + e.what());
  }
}

std::string range(uint64_t from, uint64_t to_inclusive) {
  return from == to_inclusive ? "entry " + std::to_string(from)
                              : "entries " + std::to_string(from) + ".." + std::to_string(to_inclusive);
}

std::string head_name(const TreeHead& h) {
  return (h.kept_in.empty() ? "signed tree head #" + std::to_string(h.id) : "the signed tree head in " + h.kept_in) +
         " (size " + std::to_string(h.size) + ", signed " + format_time(h.time_us) + ")";
}

TreeHead read_head(const Stmt& s) {
  const secure::View sig = s.blob(4);
  return {s.integer(0), static_cast<uint64_t>(s.integer(1)), s.integer(2), hash(s, 3), secure::Bytes(sig.begin(), sig.end()),
          s.text(5)};
}

}  // namespace

secure::Bytes encode_entry(uint64_t seq, int64_t time_us, const std::string& kind, const std::string& actor,
                           const std::string& detail) {
  secure::Bytes out;
  out.reserve(1 + 8 + 8 + 12 + kind.size() + actor.size() + detail.size());
  out.push_back(1);
  Writer(out).uint(seq, 8).uint(static_cast<uint64_t>(time_us), 8);
  put_field(out, kind);
  put_field(out, actor);
  put_field(out, detail);
  return out;
}

secure::Bytes encode_head(uint64_t size, int64_t time_us, const Hash& root) {
  static constexpr char kContext[] = "gng audit tree head v1";  // signed with its terminating 0x00
  secure::Bytes out(kContext, kContext + sizeof kContext);
  Writer(out).uint(size, 8).uint(static_cast<uint64_t>(time_us), 8).raw(root.data(), root.size());
  return out;
}

std::string format_time(int64_t time_us) {
  int64_t secs = time_us / 1000000, micros = time_us % 1000000;
  if (micros < 0) {
    micros += 1000000;
    --secs;
  }
  const std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<long long>(micros));
  return buf;
}

std::string VerifyReport::line() const {
  if (!ok) return "FAILED: " + problem;
  return "OK: " + std::to_string(size) + " entries, root " + to_hex(root) + "; " + std::to_string(heads) +
         " signed tree head" + (heads == 1 ? "" : "s") + " verified with key " + key_fingerprint;
}

std::string head_json(const TreeHead& h) {
  return nlohmann::json{{"tree_size", h.size},
                        {"time_us", h.time_us},
                        {"root", to_hex(h.root)},
                        {"signature", secure::base64(h.signature)},
                        {"key_fingerprint", h.key_fingerprint}}
      .dump();
}

TreeHead parse_head_json(const std::string& text, const std::string& where) {
  try {
    const auto j = nlohmann::json::parse(text);
    TreeHead h{0, j.at("tree_size").get<uint64_t>(), j.at("time_us").get<int64_t>(), hash_from_hex(j.at("root")), {},
               j.at("key_fingerprint"), where};
    h.signature = secure::from_base64(j.at("signature").get<std::string>());
    return h;
  } catch (const std::exception& e) {
    throw Error(where + ": not a signed tree head (" + e.what() + ")");
  }
}

AuditLog::AuditLog(const std::string& path, bool create) : path_(path) {
  if (!create && !std::filesystem::exists(path)) throw Error(path + ": no audit log here");
  const int flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_FULLMUTEX;
  db_ = sql::open_db(path, flags, "audit log");  // several processes of a run append to one log
  try {
    if (create) {  // only into an empty database: never add tables to someone else's file
      exec("BEGIN IMMEDIATE;");
      Stmt tables(db_, "SELECT count(*) FROM sqlite_master", path_);
      tables.step();
      if (tables.integer(0) == 0)
        exec((std::string(kSchema) + "INSERT INTO meta(key, value) VALUES('format', '" + kFormat + "');").c_str());
      exec("COMMIT;");
    }
    Stmt s(db_, "SELECT value FROM meta WHERE key = 'format'", path_);
    if (!s.step() || s.text(0) != kFormat) throw Error("format mismatch");
  } catch (const Error& e) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw Error(path + ": not a gng audit log (" + e.what() + ")");
  }
}

AuditLog::~AuditLog() { sqlite3_close(db_); }

void AuditLog::exec(const char* text) const { sql::exec(db_, text, path_); }

uint64_t AuditLog::append(const std::string& kind, const std::string& actor, const nlohmann::json& detail) {
  const NewEntry e{kind, actor, detail.dump()};
  return append_batch({&e, 1});
}

uint64_t AuditLog::append_batch(std::span<const NewEntry> batch) {
  std::vector<std::string> details;
  details.reserve(batch.size());
  for (const NewEntry& e : batch) {
    check_label("kind", e.kind);
    check_label("actor", e.actor);
    details.push_back(canonical_detail(e.detail));
  }
  const std::lock_guard lock(mu_);
  exec("BEGIN IMMEDIATE;");
  try {
    const uint64_t first = stored_size();
    CompactRange edge = right_edge(first);
    Stmt insert(db_, "INSERT INTO entries(seq, time_us, kind, actor, detail, leaf, subtree, root) VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
                path_);
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const uint64_t seq = first + i;
      const int64_t t = now_us();
      const Hash leaf = leaf_hash(encode_entry(seq, t, batch[i].kind, batch[i].actor, details[i]));
      edge.append(leaf);
      const Hash root = edge.root();
      insert.bind(1, static_cast<int64_t>(seq)).bind(2, t).bind(3, batch[i].kind).bind(4, batch[i].actor).bind(5, details[i]);
      insert.bind(6, leaf).bind(7, edge.last_subtree()).bind(8, root);
      insert.step();
      insert.reset();
    }
    exec("COMMIT;");
    return first;
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK;", nullptr, nullptr, nullptr);
    throw;
  }
}

uint64_t AuditLog::size() const {
  const std::lock_guard lock(mu_);
  return stored_size();
}

uint64_t AuditLog::stored_size() const {
  Stmt s(db_, "SELECT max(seq) FROM entries", path_);
  s.step();
  return s.null(0) ? 0 : static_cast<uint64_t>(s.integer(0)) + 1;
}

Hash AuditLog::root() const {
  const std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT root FROM entries ORDER BY seq DESC LIMIT 1", path_);
  return s.step() ? hash(s, 0) : empty_root();
}

// The right edge of the first `size` entries from the stored subtree hashes: one row per set bit.
CompactRange AuditLog::right_edge(uint64_t size) const {
  std::vector<Hash> subtrees;
  Stmt s(db_, "SELECT subtree FROM entries WHERE seq = ?", path_);
  uint64_t end = 0;
  for (int bit = 63; bit >= 0; --bit) {
    if (!(size >> bit & 1)) continue;
    end += uint64_t{1} << bit;
    s.bind(1, static_cast<int64_t>(end - 1));
    if (!s.step()) throw Error(path_ + ": the audit log is damaged: entry " + std::to_string(end - 1) + " is missing (run gng audit verify)");
    subtrees.push_back(hash(s, 0));
    s.reset();
  }
  return CompactRange(size, std::move(subtrees));
}

std::vector<Entry> AuditLog::entries(uint64_t from, uint64_t to) const {
  const std::lock_guard lock(mu_);
  std::vector<Entry> out;
  Stmt s(db_, "SELECT seq, time_us, kind, actor, detail, leaf, root FROM entries WHERE seq >= ? AND seq < ? ORDER BY seq",
         path_);
  s.bind(1, static_cast<int64_t>(from)).bind(2, static_cast<int64_t>(to));
  while (s.step())
    out.push_back({static_cast<uint64_t>(s.integer(0)), s.integer(1), s.text(2), s.text(3), s.text(4), hash(s, 5), hash(s, 6)});
  return out;
}

std::vector<TreeHead> AuditLog::heads() const {
  const std::lock_guard lock(mu_);
  std::vector<TreeHead> out;
  Stmt s(db_, "SELECT id, tree_size, time_us, root, signature, key_fingerprint FROM heads ORDER BY id", path_);
  while (s.step()) out.push_back(read_head(s));
  return out;
}

TreeHead AuditLog::sign_head(const secure::SigningKey& key) {
  if (!key) throw Error("sign_head: no signing key");
  const std::lock_guard lock(mu_);
  exec("BEGIN IMMEDIATE;");
  try {
    TreeHead h{0, stored_size(), now_us(), {}, {}, key.public_key().fingerprint()};
    h.root = right_edge(h.size).root();
    h.signature = key.sign(encode_head(h.size, h.time_us, h.root));
    Stmt(db_, "INSERT INTO heads(tree_size, time_us, root, signature, key_fingerprint) VALUES(?, ?, ?, ?, ?)", path_)
        .bind(1, static_cast<int64_t>(h.size))
        .bind(2, h.time_us)
        .bind(3, h.root)
        .bind(4, h.signature)
        .bind(5, h.key_fingerprint)
        .step();
    h.id = sqlite3_last_insert_rowid(db_);
    exec("COMMIT;");
    write_file_atomic((std::filesystem::path(path_).parent_path() / kHeadFile).string(), head_json(h) + "\n");
    return h;
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK;", nullptr, nullptr, nullptr);
    throw;
  }
}

VerifyReport AuditLog::verify(const secure::PublicKey& key, std::span<const TreeHead> outside) const {
  const std::lock_guard lock(mu_);
  VerifyReport r;
  r.root = empty_root();
  r.key_fingerprint = key ? key.fingerprint() : "";
  // Heads in the order of the log: each is checked once the rows up to its size have been recomputed.
  std::vector<TreeHead> heads;
  {
    Stmt s(db_, "SELECT id, tree_size, time_us, root, signature, key_fingerprint FROM heads ORDER BY tree_size, id", path_);
    while (s.step()) heads.push_back(read_head(s));
  }
  heads.insert(heads.end(), outside.begin(), outside.end());
  std::stable_sort(heads.begin(), heads.end(), [](const TreeHead& a, const TreeHead& b) { return a.size < b.size; });
  std::size_t next_head = 0;
  uint64_t last_good = 0;  // size of the last head that matched
  auto fail = [&](std::optional<uint64_t> bad, std::string why) {
    r.first_bad = bad;
    r.problem = std::move(why);
    return r;
  };
  // Why head h is not a genuine head by `key`, or "" when it is.
  auto forged = [&](const TreeHead& h) -> std::string {
    if (!key) return head_name(h) + " cannot be checked: no verifying key";
    if (h.key_fingerprint != r.key_fingerprint)
      return head_name(h) + " was signed by key " + h.key_fingerprint + ", not by the verifying key " + r.key_fingerprint;
    if (!key.verify(encode_head(h.size, h.time_us, h.root), h.signature))
      return head_name(h) + ": the signature does not verify with key " + r.key_fingerprint + ": the head was forged or altered";
    return "";
  };
  // Checks the heads of size r.size against the recomputed root; false (and r.problem) on the first bad one.
  auto check_heads = [&](const Hash& root) {
    for (; next_head < heads.size() && heads[next_head].size == r.size; ++next_head) {
      const TreeHead& h = heads[next_head];
      if (std::string why = forged(h); !why.empty()) {
        fail(std::nullopt, why);
        return false;
      }
      if (h.root != root) {
        fail(last_good, range(last_good, h.size - 1) + (h.size - last_good == 1 ? " was" : " were") + " rewritten: " +
                            head_name(h) + " signs root " + to_hex(h.root) + " but the stored entries give " + to_hex(root) +
                            (last_good ? " (the signed head at size " + std::to_string(last_good) + " still matches)" : ""));
        return false;
      }
      last_good = h.size;
      ++r.heads;
    }
    return true;
  };

  CompactRange edge;
  if (!check_heads(edge.root())) return r;
  Stmt s(db_, "SELECT seq, time_us, kind, actor, detail, leaf, subtree, root FROM entries ORDER BY seq", path_);
  while (s.step()) {
    const uint64_t seq = static_cast<uint64_t>(s.integer(0)), n = r.size;
    if (s.integer(0) < 0) return fail(n, "a row with seq " + std::to_string(s.integer(0)) + " was added to the log");
    if (seq != n)
      return fail(n, range(n, seq - 1) + (seq - n == 1 ? " is" : " are") + " missing (the next stored entry is " +
                         std::to_string(seq) + ")");
    const Hash leaf = leaf_hash(encode_entry(seq, s.integer(1), s.text(2), s.text(3), s.text(4)));
    if (!same(s, 5, leaf))
      return fail(n, "entry " + std::to_string(n) + " does not match its stored leaf hash: it was changed after it was written");
    edge.append(leaf);
    if (!same(s, 6, edge.last_subtree()))
      return fail(n, "entry " + std::to_string(n) + ": its stored subtree hash differs from the one recomputed over the entries before it");
    r.root = edge.root();
    if (!same(s, 7, r.root))
      return fail(n, "entry " + std::to_string(n) + ": its stored root differs from the root recomputed over entries 0.." +
                         std::to_string(n) + " (the entry or its hashes were changed)");
    r.size = n + 1;
    if (!check_heads(r.root)) return r;
  }
  // Heads beyond the last row: a genuine one means rows were cut off the end.
  if (next_head < heads.size()) {
    const TreeHead& h = heads[next_head];
    if (std::string why = forged(h); !why.empty()) return fail(std::nullopt, why);
    return fail(r.size, "the log is truncated: " + head_name(h) + " covers " + std::to_string(h.size) +
                            " entries but the log holds " + std::to_string(r.size) + " (" + range(r.size, h.size - 1) +
                            (h.size - r.size == 1 ? " is" : " are") + " missing)");
  }
  if (r.heads == 0)
    return fail(std::nullopt, "no signed tree head, in the log or outside it: entries cut off its end would not be noticed");
  r.ok = true;
  return r;
}

std::vector<Hash> AuditLog::leaf_hashes(uint64_t n) const {
  std::vector<Hash> out;
  out.reserve(n);
  Stmt s(db_, "SELECT seq, leaf FROM entries WHERE seq < ? ORDER BY seq", path_);
  s.bind(1, static_cast<int64_t>(n));
  while (s.step()) {
    if (static_cast<uint64_t>(s.integer(0)) != out.size())
      throw Error(path_ + ": the audit log is damaged: entry " + std::to_string(out.size()) + " is missing (run gng audit verify)");
    out.push_back(hash(s, 1));
  }
  if (out.size() != n) throw Error(path_ + ": the audit log is damaged: entry " + std::to_string(out.size()) + " is missing (run gng audit verify)");
  return out;
}

InclusionProof AuditLog::inclusion_proof(uint64_t index, uint64_t size) const {
  const std::lock_guard lock(mu_);
  const uint64_t have = stored_size();
  if (size > have) throw Error(path_ + ": the log holds " + std::to_string(have) + " entries, not " + std::to_string(size));
  if (index >= size)
    throw Error(path_ + ": no entry " + std::to_string(index) + " among the first " + std::to_string(size) + " entries");
  const std::vector<Hash> leaves = leaf_hashes(size);
  return {index, size, leaves[index], audit::root(leaves), audit::inclusion_proof(leaves, index)};
}

ConsistencyProof AuditLog::consistency_proof(uint64_t m, uint64_t n) const {
  const std::lock_guard lock(mu_);
  const uint64_t have = stored_size();
  if (n > have) throw Error(path_ + ": the log holds " + std::to_string(have) + " entries, not " + std::to_string(n));
  if (m > n) throw Error(path_ + ": no consistency proof from size " + std::to_string(m) + " to the smaller size " + std::to_string(n));
  const std::vector<Hash> leaves = leaf_hashes(n);
  return {m, n, audit::root(std::span(leaves).first(m)), audit::root(leaves), audit::consistency_proof(leaves, m)};
}

}  // namespace gng::audit
