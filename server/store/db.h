// A small RAII layer over the sqlite3 C API: a connection with a prepared-statement cache, bind/step helpers, an
// IMMEDIATE transaction guard and the migration runner (migrations/NNNN_name.sql, version in PRAGMA user_version).
//
// Threading: a Db and its statements belong to one thread at a time; Store serialises access with its mutex.
// Durability: WAL with synchronous=NORMAL. A committed transaction is in the WAL file (written by the OS before COMMIT
// returns), so it survives kill -9 of the process; only a power loss / kernel crash can lose the newest commits.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace vpcd::store {

// An SQLite failure. `code` is the extended result code (e.g. SQLITE_CONSTRAINT_UNIQUE).
class DbError : public std::runtime_error {
 public:
  DbError(int code, const std::string& what) : std::runtime_error(what), code_(code) {}
  int code() const noexcept { return code_; }
  bool is_constraint() const noexcept { return (code_ & 0xff) == SQLITE_CONSTRAINT; }

 private:
  int code_;
};

class Db;

// A cached prepared statement bound and stepped through; resets and clears its bindings when destroyed, so the cached
// statement is ready for the next use. Bind indexes start at 1, column indexes at 0.
class Query {
 public:
  template <class... Args>
  Query(Db& db, std::string_view sql, const Args&... args);
  ~Query();
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;

  void bind(int idx, std::string_view v);
  void bind(int idx, const std::string& v) { bind(idx, std::string_view(v)); }
  void bind(int idx, const char* v) { bind(idx, std::string_view(v)); }
  void bind(int idx, int64_t v);
  void bind(int idx, int v) { bind(idx, int64_t(v)); }
  void bind(int idx, unsigned v) { bind(idx, int64_t(v)); }
  void bind(int idx, std::nullopt_t);
  template <class T>
  void bind(int idx, const std::optional<T>& v) {
    if (v) bind(idx, *v); else bind(idx, std::nullopt);
  }

  bool next();  // steps; true while a row is available
  void run();   // steps to completion (for writes)

  std::string text(int col) const;
  int64_t int64(int col) const;
  bool is_null(int col) const;

 private:
  Db& db_;
  sqlite3_stmt* stmt_;
  bool done_ = false;
};

class Db {
 public:
  // Opens (creating when absent) the database at `path` (":memory:" for tests) and sets WAL, foreign_keys=ON,
  // synchronous=NORMAL and a busy timeout.
  explicit Db(const std::string& path);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  void exec(const std::string& sql);  // one or more statements, no results
  sqlite3_stmt* prepared(std::string_view sql);
  int changes() const { return sqlite3_changes(db_); }
  [[noreturn]] void fail(int rc, std::string_view context) const;
  sqlite3* raw() const { return db_; }

 private:
  sqlite3* db_ = nullptr;
  std::map<std::string, sqlite3_stmt*, std::less<>> cache_;
};

// BEGIN IMMEDIATE (takes the write lock up front so a writer never fails half-way with SQLITE_BUSY) ... COMMIT;
// rolled back when destroyed without commit().
class Transaction {
 public:
  explicit Transaction(Db& db, bool immediate = true);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit();

 private:
  Db& db_;
  bool open_ = true;
};

// Applies migrations/NNNN_*.sql newer than PRAGMA user_version in order, each in one transaction that also records
// its number. Throws std::runtime_error naming both versions when the database is newer than the newest migration,
// and when the directory is missing or holds two files with one number. Returns the resulting version.
int migrate(Db& db, const std::string& migrations_dir);
int schema_version(Db& db);

template <class... Args>
Query::Query(Db& db, std::string_view sql, const Args&... args) : db_(db), stmt_(db.prepared(sql)) {
  int idx = 0;
  (bind(++idx, args), ...);
}

}  // namespace vpcd::store
