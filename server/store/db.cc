// sqlite3 wrapper and migration runner; see db.h.
#include "server/store/db.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

namespace vpcd::store {

namespace {
constexpr int kBusyTimeoutMs = 5000;
}

Db::Db(const std::string& path) {
  int rc = sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close(db_);
    db_ = nullptr;
    throw DbError(rc, "open " + path + ": " + msg);
  }
  sqlite3_extended_result_codes(db_, 1);
  sqlite3_busy_timeout(db_, kBusyTimeoutMs);
  exec("PRAGMA foreign_keys = ON");
  if (path != ":memory:") exec("PRAGMA journal_mode = WAL");
  exec("PRAGMA synchronous = NORMAL");
}

Db::~Db() {
  for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
  sqlite3_close(db_);
}

void Db::fail(int rc, std::string_view context) const {
  throw DbError(rc, std::string(context) + ": " + sqlite3_errmsg(db_));
}

void Db::exec(const std::string& sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    throw DbError(sqlite3_extended_errcode(db_), msg);
  }
}

sqlite3_stmt* Db::prepared(std::string_view sql) {
  auto it = cache_.find(sql);
  if (it != cache_.end()) return it->second;
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.data(), int(sql.size()), SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) fail(rc, "prepare \"" + std::string(sql) + "\"");
  cache_.emplace(std::string(sql), stmt);
  return stmt;
}

Query::~Query() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

void Query::bind(int idx, std::string_view v) {
  int rc = sqlite3_bind_text(stmt_, idx, v.data(), int(v.size()), SQLITE_TRANSIENT);
  if (rc != SQLITE_OK) db_.fail(rc, "bind");
}
void Query::bind(int idx, int64_t v) {
  int rc = sqlite3_bind_int64(stmt_, idx, v);
  if (rc != SQLITE_OK) db_.fail(rc, "bind");
}
void Query::bind(int idx, std::nullopt_t) {
  int rc = sqlite3_bind_null(stmt_, idx);
  if (rc != SQLITE_OK) db_.fail(rc, "bind");
}

bool Query::next() {
  if (done_) return false;
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  done_ = true;
  if (rc == SQLITE_DONE) return false;
  db_.fail(sqlite3_extended_errcode(db_.raw()), sqlite3_sql(stmt_));
}

void Query::run() {
  while (next()) {
  }
}

std::string Query::text(int col) const {
  auto* p = sqlite3_column_text(stmt_, col);
  if (!p) return {};
  return std::string(reinterpret_cast<const char*>(p), size_t(sqlite3_column_bytes(stmt_, col)));
}
int64_t Query::int64(int col) const { return sqlite3_column_int64(stmt_, col); }
bool Query::is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

Transaction::Transaction(Db& db, bool immediate) : db_(db) { db_.exec(immediate ? "BEGIN IMMEDIATE" : "BEGIN"); }

Transaction::~Transaction() {
  if (!open_) return;
  try {
    db_.exec("ROLLBACK");
  } catch (const DbError&) {
    // Nothing else can be done here: SQLite already rolled the transaction back on the error that got us here.
  }
}

void Transaction::commit() {
  db_.exec("COMMIT");
  open_ = false;
}

int schema_version(Db& db) {
  Query q(db, "PRAGMA user_version");
  return q.next() ? int(q.int64(0)) : 0;
}

int migrate(Db& db, const std::string& migrations_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(migrations_dir, ec))
    throw std::runtime_error("migrations directory " + migrations_dir + " not found");
  std::map<int, fs::path> files;
  for (const auto& entry : fs::directory_iterator(migrations_dir)) {
    std::string name = entry.path().filename().string();
    if (name.size() < 10 || name.substr(name.size() - 4) != ".sql" || name[4] != '_' ||
        !std::all_of(name.begin(), name.begin() + 4, [](char c) { return std::isdigit(uint8_t(c)); }))
      continue;
    int num = std::stoi(name.substr(0, 4));
    if (num == 0) throw std::runtime_error("migration " + name + ": numbers start at 0001");
    if (!files.emplace(num, entry.path()).second)
      throw std::runtime_error("two migrations numbered " + name.substr(0, 4) + " in " + migrations_dir);
  }
  if (files.empty()) throw std::runtime_error("no migrations (NNNN_name.sql) in " + migrations_dir);
  int newest = files.rbegin()->first;
  int current = schema_version(db);
  if (current > newest)
    throw std::runtime_error("database schema version " + std::to_string(current) +
                             " is newer than this vpcd supports (newest migration " + std::to_string(newest) +
                             " in " + migrations_dir + "); refusing to open it");
  for (const auto& [num, path] : files) {
    if (num <= current) continue;
    std::ifstream in(path);
    std::stringstream sql;
    sql << in.rdbuf();
    if (!in) throw std::runtime_error("cannot read migration " + path.string());
    Transaction tx(db);
    try {
      db.exec(sql.str());
    } catch (const DbError& e) {
      throw std::runtime_error("migration " + path.filename().string() + " failed: " + e.what());
    }
    db.exec("PRAGMA user_version = " + std::to_string(num));
    tx.commit();
    current = num;
  }
  return current;
}

}  // namespace vpcd::store
