#include "core/sqlite.h"

#include <sqlite3.h>

#include "core/error.h"

namespace gng::sql {

sqlite3* open_db(const std::string& path, int flags, const std::string& what) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    const std::string why = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    throw Error(path + ": cannot open the " + what + ": " + why);
  }
  sqlite3_busy_timeout(db, 10000);  // other processes (gng approve, gng status, a run's workers) share the file
  try {
    exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", path);  // the first read of a non-database fails here
  } catch (const Error& e) {
    sqlite3_close(db);
    throw Error(path + ": not a gng " + what + " (" + e.what() + ")");
  }
  return db;
}

void exec(sqlite3* db, const std::string& sql, const std::string& path) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    const std::string why = err ? err : sqlite3_errmsg(db);
    sqlite3_free(err);
    throw Error(path + ": database error: " + why);
  }
}

Stmt::Stmt(sqlite3* db, const char* sql, const std::string& path) : db_(db), path_(path) {
  if (sqlite3_prepare_v2(db, sql, -1, &s_, nullptr) != SQLITE_OK) fail();
}

Stmt::~Stmt() { sqlite3_finalize(s_); }

Stmt& Stmt::bind(int i, std::string_view v) {
  sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  return *this;
}

Stmt& Stmt::bind(int i, int64_t v) {
  sqlite3_bind_int64(s_, i, v);
  return *this;
}

Stmt& Stmt::bind(int i, double v) {
  sqlite3_bind_double(s_, i, v);
  return *this;
}

Stmt& Stmt::bind(int i, std::span<const uint8_t> v) {
  sqlite3_bind_blob(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  return *this;
}

bool Stmt::step() {
  const int rc = sqlite3_step(s_);
  if (rc == SQLITE_ROW) return true;
  if (rc != SQLITE_DONE) fail();
  return false;
}

void Stmt::reset() {
  sqlite3_reset(s_);
  sqlite3_clear_bindings(s_);
}

int64_t Stmt::integer(int c) const { return sqlite3_column_int64(s_, c); }

double Stmt::real(int c) const { return sqlite3_column_double(s_, c); }

std::string Stmt::text(int c) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s_, c));
  return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(s_, c))) : "";
}

std::span<const uint8_t> Stmt::blob(int c) const {
  const auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(s_, c));
  return {p, p ? static_cast<std::size_t>(sqlite3_column_bytes(s_, c)) : 0};
}

bool Stmt::null(int c) const { return sqlite3_column_type(s_, c) == SQLITE_NULL; }

void Stmt::fail() const { throw Error(path_ + ": database error: " + sqlite3_errmsg(db_)); }

}  // namespace gng::sql
