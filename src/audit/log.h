#pragma once
// AuditLog: gng's append-only, tamper-evident record of exchanges, rejections, promotions, approvals
// and policy changes, kept in its own SQLite file (DIR/audit.db). Every entry is a leaf of an RFC 9162
// Merkle tree (audit/merkle.h); each row keeps its leaf hash, the hash of the largest perfect subtree
// ending at it (append resumes from a few of these in O(log n)) and the tree root after it, so that
// verify() names the FIRST bad row. Signed tree heads (ML-DSA, any key secure::SigningKey holds) pin
// the tree at a size: a consistent rewrite of the rows, or a truncation, breaks them.
//
// Canonical entry (the bytes under the leaf hash), all integers big-endian:
//   u8 1 (format version) ‖ u64 seq ‖ i64 time_us ‖ u32 len ‖ kind ‖ u32 len ‖ actor ‖ u32 len ‖ detail
// time_us: microseconds since 1970-01-01T00:00:00Z; detail: the JSON text exactly as stored (written
// by nlohmann::json::dump(), keys sorted). leaf hash = SHA-256(0x00 ‖ entry).
//
// Signed tree head: the signature is over
//   "gng audit tree head v1" ‖ 0x00 ‖ u64 tree_size ‖ i64 time_us ‖ root (32 bytes)
// and the head also records the signer's key fingerprint (hex SHA-256 of its SubjectPublicKeyInfo).
//
// The latest signed head is also kept outside the database: sign_head() writes it to audit-head.json
// beside the log (kHeadFile), and a run copies it into its registry. verify() checks such outside
// heads as it checks the log's own, so that cutting entries off the end, with the heads inside the
// log, is noticed; a log with no signed head at all fails verification.
//
// What verification cannot see: rows and every copy of the heads rewritten together with the signing
// key, or replaced by older copies. Keep a head (or its root) somewhere else too.
#include <cstdint>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "audit/merkle.h"
#include "secure/crypto.h"

struct sqlite3;

namespace gng::audit {

constexpr const char* kLogFile = "audit.db";           // the log's file inside a run or node folder
constexpr const char* kKeyFile = "audit-key.pub.pem";  // where `gng audit verify` looks for the key
constexpr const char* kHeadFile = "audit-head.json";   // the latest signed head, outside the database

struct NewEntry {
  std::string kind;    // "exchange", "rejection", "promotion", "approval", "policy", ...
  std::string actor;   // who did it: a node id, an operator, "orchestrator"
  std::string detail;  // what happened: JSON text (stored re-serialised with sorted keys)
};

struct Entry {
  uint64_t seq;
  int64_t time_us;
  std::string kind, actor, detail;  // detail: JSON text
  Hash leaf, root;                  // as stored: the leaf hash and the root of entries 0..seq
};

struct TreeHead {
  int64_t id;  // its row in the heads table, from 1 (0: a head kept outside the log)
  uint64_t size;
  int64_t time_us;
  Hash root;
  secure::Bytes signature;
  std::string key_fingerprint;
  std::string kept_in;  // where a head outside the log was read from ("" for the log's own)
};

// A head as JSON text ({"tree_size", "time_us", "root" (hex), "signature" (base64), "key_fingerprint"})
// and back; gng::Error naming `where` when the text is not one.
std::string head_json(const TreeHead& h);
TreeHead parse_head_json(const std::string& text, const std::string& where);

struct InclusionProof {
  uint64_t index, size;
  Hash leaf, root;  // root of the first `size` entries
  std::vector<Hash> path;
};

struct ConsistencyProof {
  uint64_t m, n;
  Hash root_m, root_n;
  std::vector<Hash> path;
};

struct VerifyReport {
  bool ok = false;
  uint64_t size = 0;  // rows read
  Hash root{};        // recomputed root over those rows
  std::size_t heads = 0;  // signed tree heads checked (all of them when ok)
  std::string key_fingerprint;  // the key that verified the heads
  std::optional<uint64_t> first_bad;  // the first entry that is wrong or missing, when one can be named
  std::string problem;  // empty when ok
  std::string line() const;  // "OK: ..." or "FAILED: ..."
};

// Canonical entry bytes (see above) and the signed message of a tree head.
secure::Bytes encode_entry(uint64_t seq, int64_t time_us, const std::string& kind, const std::string& actor,
                           const std::string& detail);
secure::Bytes encode_head(uint64_t size, int64_t time_us, const Hash& root);
std::string format_time(int64_t time_us);  // 2025-01-31T12:00:00.123456Z

class AuditLog {
 public:
  // Opens the log at `path` (an SQLite file); `create` makes it when missing. gng::Error when the file
  // is missing (and !create), unreadable or not a gng audit log. One AuditLog may be shared by threads
  // (its calls are serialised); several processes may append to one file (SQLite's write lock).
  AuditLog(const std::string& path, bool create);
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Appends in one transaction (one fsync); returns the seq of the (first) new entry. O(log n) hashing
  // per entry. kind and actor: 1 to 256 characters, no control characters; gng::Error otherwise (and
  // nothing of the batch is appended).
  uint64_t append(const std::string& kind, const std::string& actor, const nlohmann::json& detail);
  uint64_t append_batch(std::span<const NewEntry> entries);

  uint64_t size() const;  // entries in the log (as stored)
  Hash root() const;      // root after the last entry (as stored); empty_root() when empty
  std::vector<Entry> entries(uint64_t from, uint64_t to) const;  // seq in [from, to)
  std::vector<TreeHead> heads() const;  // by id

  // Signs the current (size, now, root), stores the head and writes it to kHeadFile beside the log.
  // It signs what the log holds: verify() first when the file may have been touched.
  TreeHead sign_head(const secure::SigningKey& key);

  // Recomputes every leaf hash and root from the rows and checks every signed tree head with `key`:
  // the log's own and `outside` ones (kept elsewhere: a log shorter than any of them is truncated).
  // Reports the first problem in log order: a tampered row or head is reported, not thrown (an
  // unreadable file is a gng::Error). No head at all is a failure: the log's end is not pinned.
  VerifyReport verify(const secure::PublicKey& key, std::span<const TreeHead> outside = {}) const;

  // Proofs over the stored leaf hashes (O(size) hashing). gng::Error when the sizes are out of range.
  InclusionProof inclusion_proof(uint64_t index, uint64_t size) const;
  ConsistencyProof consistency_proof(uint64_t m, uint64_t n) const;

  const std::string& path() const { return path_; }

 private:
  void exec(const char* sql) const;
  uint64_t stored_size() const;
  std::vector<Hash> leaf_hashes(uint64_t n) const;
  CompactRange right_edge(uint64_t size) const;
  std::string path_;
  sqlite3* db_ = nullptr;
  mutable std::mutex mu_;
};

}  // namespace gng::audit
