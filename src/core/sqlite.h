#pragma once
// The little of SQLite that gng's files (the lifecycle registry, the audit log) share: opening a
// database durably (WAL, synchronous=FULL, a 10 s busy timeout), running SQL text, and a prepared
// statement that finalizes itself. Every failure is a gng::Error that names the database file.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

struct sqlite3;
struct sqlite3_stmt;

namespace gng::sql {

// Opens `path` with sqlite3_open_v2 `flags`, waits up to 10 s for other processes' locks and sets
// journal_mode=WAL, synchronous=FULL. Throws "<path>: cannot open the <what>: <why>" when SQLite cannot
// open it, "<path>: not a gng <what> (<path>: database error: <why>)" when it is no usable database.
sqlite3* open_db(const std::string& path, int flags, const std::string& what);

// Runs `sql` (any number of statements); throws "<path>: database error: <why>".
void exec(sqlite3* db, const std::string& sql, const std::string& path);

// A prepared statement that finalizes itself; bind by position from 1, columns from 0.
// Errors: "<path>: database error: <why>".
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql, const std::string& path);
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(int i, std::string_view v);  // text
  Stmt& bind(int i, int64_t v);
  Stmt& bind(int i, double v);
  Stmt& bind(int i, std::span<const uint8_t> v);  // blob
  bool step();                                    // true while rows come
  void reset();                                   // to run again: rewinds and clears the bindings

  int64_t integer(int c) const;
  double real(int c) const;
  std::string text(int c) const;  // "" for NULL
  std::span<const uint8_t> blob(int c) const;
  bool null(int c) const;

 private:
  [[noreturn]] void fail() const;
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
  std::string path_;
};

}  // namespace gng::sql
