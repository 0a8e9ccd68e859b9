#include "lifecycle/registry.h"

#include <sqlite3.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/sqlite.h"

namespace gng {

namespace {

constexpr const char* kSchema = R"(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS candidates(id INTEGER PRIMARY KEY, cycle INTEGER NOT NULL, bits TEXT NOT NULL UNIQUE,
  design TEXT NOT NULL, origin TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS evaluations(candidate INTEGER NOT NULL REFERENCES candidates(id), rung INTEGER NOT NULL,
  metrics TEXT NOT NULL, score REAL NOT NULL, model TEXT NOT NULL, seconds REAL NOT NULL,
  PRIMARY KEY(candidate, rung));
CREATE TABLE IF NOT EXISTS decisions(seq INTEGER PRIMARY KEY, time_s REAL NOT NULL, cycle INTEGER NOT NULL,
  kind TEXT NOT NULL, text TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS approvals(candidate INTEGER PRIMARY KEY REFERENCES candidates(id), by TEXT NOT NULL,
  at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE IF NOT EXISTS promotions(seq INTEGER PRIMARY KEY, candidate INTEGER NOT NULL REFERENCES candidates(id),
  cycle INTEGER NOT NULL, approved_by TEXT NOT NULL, model TEXT NOT NULL, federated INTEGER NOT NULL DEFAULT 0,
  metrics TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS refused(candidate INTEGER PRIMARY KEY REFERENCES candidates(id));
CREATE TABLE IF NOT EXISTS sessions(id INTEGER PRIMARY KEY, started TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
  seconds REAL NOT NULL DEFAULT 0);
)";

// The roster (a table version-2 files gained with the dial-in grid; builds before it ignore it).
constexpr const char* kSites = R"(
CREATE TABLE IF NOT EXISTS sites(id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, address TEXT NOT NULL,
  data TEXT NOT NULL, first_seen REAL NOT NULL, last_seen REAL NOT NULL, state TEXT NOT NULL, why TEXT NOT NULL);
)";

// meta "format" names the kind of file and its schema version: "gng registry v<N>". A build refuses
// a version it does not know, so gng 0.1 (which reads only v1) refuses a v2 file instead of misreading
// it. A new file gets the current version; a file whose schema was created but whose format was not
// yet written (a kill in between) gets the version its promotions table shows.
constexpr const char* kFormatPrefix = "gng registry v";
constexpr const char* kMarkNew = R"(
INSERT OR IGNORE INTO meta(key, value) SELECT 'format', CASE WHEN EXISTS
  (SELECT 1 FROM pragma_table_info('promotions') WHERE name = 'federated') THEN 'gng registry v2' ELSE 'gng registry v1' END;
)";

using sql::Stmt;

int int_column(const Stmt& s, int c) { return static_cast<int>(s.integer(c)); }  // ids, cycles, rungs

std::string metrics_json(const std::map<std::string, double>& m) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : m) j[k] = v;
  return j.dump();
}

std::map<std::string, double> parse_metrics(const std::string& s, const std::string& path) {
  std::map<std::string, double> m;
  try {
    const auto j = nlohmann::json::parse(s);  // named: items() of a temporary would dangle
    for (const auto& [k, v] : j.items()) m[k] = v.is_number() ? v.get<double>() : std::nan("");
  } catch (const std::exception& e) {
    throw Error(path + ": corrupt metrics in the registry: " + e.what());
  }
  return m;
}

}  // namespace

Registry::Registry(const std::string& path, bool create, bool read_only) : path_(path) {
  if (!create && !std::filesystem::exists(path)) throw Error(path + ": no registry here (is this a runs/<id> folder?)");
  if (read_only && !create) {
    db_ = sql::open_db(path, SQLITE_OPEN_READONLY | SQLITE_OPEN_FULLMUTEX, "registry");
    std::string format;
    bool sites = false;
    try {
      format = meta("format").value_or("");
      sql::Stmt st(db_, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'sites'", path_);
      sites = st.step() && st.integer(0) == 1;
    } catch (const Error& e) {
      sqlite3_close(db_);
      db_ = nullptr;
      throw Error(path + ": not a gng registry (" + e.what() + ")");
    }
    if (format == std::string(kFormatPrefix) + std::to_string(kSchemaVersion) && sites) return;
    sqlite3_close(db_);
    db_ = nullptr;
    if (!format.starts_with(kFormatPrefix)) throw Error(path + ": not a gng registry (format mismatch)");
    // A registry to upgrade once (or of a newer version, which the checks below refuse).
  }
  const int flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_FULLMUTEX;
  db_ = sql::open_db(path, flags, "registry");  // `gng approve` and `gng status` share the file with a run
  std::string version;
  try {
    exec("PRAGMA foreign_keys=ON;");
    if (create) exec(std::string("BEGIN IMMEDIATE;") + kSchema + kMarkNew + "COMMIT;");
    const std::string format = meta("format").value_or("");
    if (!format.starts_with(kFormatPrefix)) throw Error(path + ": not a gng registry (format mismatch)");
    version = format.substr(std::string(kFormatPrefix).size());
    if (version != "1" && version != std::to_string(kSchemaVersion))
      throw Error(path + ": not a gng registry this build can read (schema version " + version + "; it reads 1 to " +
                  std::to_string(kSchemaVersion) + ")");
  } catch (const Error& e) {
    sqlite3_close(db_);
    db_ = nullptr;
    const std::string m = e.what();
    throw Error(m.find("not a gng registry") != std::string::npos ? m : path + ": not a gng registry (" + m + ")");
  }
  try {
    if (version == "1") migrate_from_v1();  // its errors name what is damaged
    exec(kSites);
  } catch (const Error&) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw;
  }
}

Registry::~Registry() { sqlite3_close(db_); }

void Registry::exec(const std::string& text) const {
  try {
    sql::exec(db_, text, path_);
  } catch (const Error&) {
    sqlite3_exec(db_, "ROLLBACK;", nullptr, nullptr, nullptr);
    throw;
  }
}

// Version 1 kept three facts in strings: a promotion of a federated model as approved_by "X; federated",
// the refused challengers as a JSON list in meta, and the last federated promotion's metrics as JSON
// in meta. They become columns of promotions and the table refused, in one transaction.
void Registry::migrate_from_v1() {
  exec("BEGIN IMMEDIATE;");
  try {
    if (meta("format") != std::string(kFormatPrefix) + "1") {  // another process migrated it meanwhile
      exec("COMMIT;");
      return;
    }
    bool has_federated = false;
    for (Stmt s(db_, "SELECT name FROM pragma_table_info('promotions')", path_); s.step();) has_federated |= s.text(0) == "federated";
    if (!has_federated)
      exec("ALTER TABLE promotions ADD COLUMN federated INTEGER NOT NULL DEFAULT 0;"
           "ALTER TABLE promotions ADD COLUMN metrics TEXT NOT NULL DEFAULT '{}';");
    exec("CREATE TABLE IF NOT EXISTS refused(candidate INTEGER PRIMARY KEY REFERENCES candidates(id));"
         "UPDATE promotions SET federated = 1, approved_by = substr(approved_by, 1, length(approved_by) - 11)"
         " WHERE approved_by LIKE '%; federated';");
    if (const auto r = meta("refused_challengers")) {
      std::set<int> ids;
      try {
        ids = nlohmann::json::parse(*r).get<std::set<int>>();
      } catch (const nlohmann::json::exception& e) {
        throw Error(path_ + ": the refused challengers are damaged (" + e.what() + ")");
      }
      for (int id : ids)  // a refusal of a candidate the registry does not hold is dropped, as v1 ignored it
        Stmt(db_, "INSERT OR IGNORE INTO refused(candidate) SELECT id FROM candidates WHERE id = ?", path_).bind(1, int64_t{id}).step();
    }
    if (const auto f = meta("federated_metrics")) {
      int candidate = 0, cycle = 0;
      std::string metrics;
      try {
        const auto j = nlohmann::json::parse(*f);
        candidate = j.at("candidate").get<int>();
        cycle = j.at("cycle").get<int>();
        metrics = j.at("metrics").dump();
      } catch (const nlohmann::json::exception& e) {
        throw Error(path_ + ": the federated model's metrics are damaged (" + e.what() + ")");
      }
      parse_metrics(metrics, path_);
      Stmt(db_, "UPDATE promotions SET metrics = ? WHERE seq = (SELECT MAX(seq) FROM promotions WHERE candidate = ? AND cycle = ? AND federated = 1)", path_)
          .bind(1, metrics)
          .bind(2, int64_t{candidate})
          .bind(3, int64_t{cycle})
          .step();
    }
    exec("DELETE FROM meta WHERE key IN ('refused_challengers', 'federated_metrics');");
    set_meta("format", kFormatPrefix + std::to_string(kSchemaVersion));
    exec("COMMIT;");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK;", nullptr, nullptr, nullptr);
    throw;
  }
}

void Registry::begin() { exec("BEGIN IMMEDIATE;"); }
void Registry::commit() { exec("COMMIT;"); }

void Registry::set_meta(const std::string& key, const std::string& value) {
  Stmt(db_, "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", path_)
      .bind(1, key)
      .bind(2, value)
      .step();
}

std::optional<std::string> Registry::meta(const std::string& key) const {
  Stmt s(db_, "SELECT value FROM meta WHERE key = ?", path_);
  s.bind(1, key);
  if (s.step()) return s.text(0);
  return std::nullopt;
}

int Registry::add_candidate(int cycle, const std::string& bits, const std::string& design, const std::string& origin) {
  Stmt s(db_, "INSERT INTO candidates(cycle, bits, design, origin) VALUES(?, ?, ?, ?)", path_);
  s.bind(1, int64_t{cycle}).bind(2, bits).bind(3, design).bind(4, origin).step();
  return static_cast<int>(sqlite3_last_insert_rowid(db_));
}

std::vector<CandidateRow> Registry::candidates() const {
  std::vector<CandidateRow> out;
  Stmt s(db_, "SELECT id, cycle, bits, design, origin FROM candidates ORDER BY id", path_);
  while (s.step()) out.push_back({int_column(s, 0), int_column(s, 1), s.text(2), s.text(3), s.text(4)});
  return out;
}

void Registry::add_evaluation(const EvaluationRow& e, double seconds) {
  Stmt(db_, "INSERT INTO evaluations(candidate, rung, metrics, score, model, seconds) VALUES(?, ?, ?, ?, ?, ?)", path_)
      .bind(1, int64_t{e.candidate})
      .bind(2, int64_t{e.rung})
      .bind(3, metrics_json(e.metrics))
      .bind(4, e.score)
      .bind(5, e.model)
      .bind(6, seconds)
      .step();
}

std::vector<EvaluationRow> Registry::evaluations() const {
  std::vector<EvaluationRow> out;
  Stmt s(db_, "SELECT candidate, rung, metrics, score, model FROM evaluations ORDER BY rowid", path_);
  while (s.step()) out.push_back({int_column(s, 0), int_column(s, 1), parse_metrics(s.text(2), path_), s.real(3), s.text(4)});
  return out;
}

void Registry::add_decision(double time_s, int cycle, const std::string& kind, const std::string& text) {
  Stmt(db_, "INSERT INTO decisions(time_s, cycle, kind, text) VALUES(?, ?, ?, ?)", path_)
      .bind(1, time_s)
      .bind(2, int64_t{cycle})
      .bind(3, kind)
      .bind(4, text)
      .step();
}

std::vector<DecisionRow> Registry::decisions() const {
  std::vector<DecisionRow> out;
  Stmt s(db_, "SELECT time_s, cycle, kind, text FROM decisions ORDER BY seq", path_);
  while (s.step()) out.push_back({s.real(0), int_column(s, 1), s.text(2), s.text(3)});
  return out;
}

void Registry::put_site(const SiteRow& r) {
  Stmt(db_,
       "INSERT INTO sites(id, fingerprint, address, data, first_seen, last_seen, state, why) VALUES(?, ?, ?, ?, ?, ?, ?, ?) "
       "ON CONFLICT(id) DO UPDATE SET fingerprint = excluded.fingerprint, address = excluded.address, data = excluded.data, "
       "last_seen = excluded.last_seen, state = excluded.state, why = excluded.why",
       path_)
      .bind(1, r.id)
      .bind(2, r.fingerprint)
      .bind(3, r.address)
      .bind(4, r.data)
      .bind(5, r.first_seen)
      .bind(6, r.last_seen)
      .bind(7, r.state)
      .bind(8, r.why)
      .step();
}

std::vector<SiteRow> Registry::sites() const {
  std::vector<SiteRow> out;
  Stmt s(db_, "SELECT id, fingerprint, address, data, first_seen, last_seen, state, why FROM sites ORDER BY first_seen, id", path_);
  while (s.step()) out.push_back({s.text(0), s.text(1), s.text(2), s.text(3), s.real(4), s.real(5), s.text(6), s.text(7)});
  return out;
}

void Registry::approve(int candidate, const std::string& by) {
  Stmt(db_, "INSERT OR IGNORE INTO approvals(candidate, by) VALUES(?, ?)", path_)
      .bind(1, int64_t{candidate})
      .bind(2, by)
      .step();
}

bool Registry::approved(int candidate) const {
  Stmt s(db_, "SELECT 1 FROM approvals WHERE candidate = ?", path_);
  s.bind(1, int64_t{candidate});
  return s.step();
}

void Registry::promote(const PromotionRow& p) {
  Stmt(db_, "INSERT INTO promotions(candidate, cycle, approved_by, model, federated, metrics) VALUES(?, ?, ?, ?, ?, ?)", path_)
      .bind(1, int64_t{p.candidate})
      .bind(2, int64_t{p.cycle})
      .bind(3, p.approved_by)
      .bind(4, p.model)
      .bind(5, int64_t{p.federated})
      .bind(6, metrics_json(p.metrics))
      .step();
}

std::vector<PromotionRow> Registry::promotions() const {
  std::vector<PromotionRow> out;
  Stmt s(db_, "SELECT candidate, cycle, approved_by, model, federated, metrics FROM promotions ORDER BY seq", path_);
  while (s.step())
    out.push_back({int_column(s, 0), int_column(s, 1), s.text(2), s.text(3), s.integer(4) != 0, parse_metrics(s.text(5), path_)});
  return out;
}

void Registry::refuse(int candidate) {
  Stmt(db_, "INSERT OR IGNORE INTO refused(candidate) VALUES(?)", path_).bind(1, int64_t{candidate}).step();
}

std::set<int> Registry::refused() const {
  std::set<int> out;
  for (Stmt s(db_, "SELECT candidate FROM refused", path_); s.step();) out.insert(int_column(s, 0));
  return out;
}

int Registry::begin_session() {
  Stmt(db_, "INSERT INTO sessions DEFAULT VALUES", path_).step();
  return static_cast<int>(sqlite3_last_insert_rowid(db_));
}

void Registry::set_session_seconds(int session, double seconds) {
  Stmt(db_, "UPDATE sessions SET seconds = ? WHERE id = ?", path_).bind(1, seconds).bind(2, int64_t{session}).step();
}

double Registry::used_seconds() const {
  Stmt s(db_, "SELECT COALESCE(SUM(seconds), 0) FROM sessions", path_);
  s.step();
  return s.real(0);
}

}  // namespace gng
