// The desired-state store: one SQLite database (state-dir/vpcd.db) migrated at open, plus the queries the reconciler
// and the token code need. The API handlers (server/api) run their own SQL through a Session.
//
// Threading: every method may be called from any thread. One connection serialised by a mutex: a Session holds the
// mutex for its lifetime, so a handler's whole transaction runs without interleaving. Keep sessions short.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "datapath/controller.h"
#include "server/common/token.h"
#include "server/store/db.h"

namespace vpcd::store {

// An API token as stored: only a salted hash of the secret (server/common/token.h).
using TokenRecord = vpcd::TokenRecord;

// RFC 3339 UTC with microseconds ("2026-11-22T03:57:15.123456Z"): text order is time order.
std::string now_rfc3339();

class Store {
 public:
  // Opens (creating) the database at `db_path` (":memory:" in tests) and applies the migrations in `migrations_dir`.
  // Throws std::runtime_error (schema too new, unreadable migrations) or DbError.
  Store(const std::string& db_path, const std::string& migrations_dir);

  class Session {
   public:
    explicit Session(Store& s) : lock_(s.mu_), db_(*s.db_) {}
    Db& db() { return db_; }

   private:
    std::unique_lock<std::mutex> lock_;
    Db& db_;
  };
  Session session() { return Session(*this); }

  int schema_version();

  // For the reconciler: every VPC with its subnets and every NIC with its backend, ordered by creation.
  dp::DesiredState load_desired_state();
  // Records what the reconciler observed; not a user change, so revision and updated_at stay. Unknown ids are ignored
  // (the NIC was deleted meanwhile). Returns whether a row changed.
  bool set_nic_state(const std::string& nic_id, dp::NicStatus status, const std::string& detail);
  bool set_uplink_state(const std::string& uplink_id, dp::NicStatus status, const std::string& detail);

  void add_token(const TokenRecord& t);  // throws DbError (constraint) on a duplicate id or a bad role
  std::optional<TokenRecord> find_token(const std::string& id);
  bool remove_token(const std::string& id);
  std::vector<TokenRecord> list_tokens();
  struct TokenInfo {
    std::string id, role, created_at;
  };
  std::vector<TokenInfo> token_infos();  // for `vpcd token list`: no salts or hashes

 private:
  std::mutex mu_;
  std::unique_ptr<Db> db_;
};

// Looks tokens up through a database connection of its own: a request's token check never queues behind the store's
// session mutex (write transactions), and always reads the newest committed token table, so a token revoked by
// `vpcd token revoke` (another process) is refused from the next request on. There is deliberately no cache.
// Threading: find() from any thread (serialised by its own mutex; a look-up is one indexed read).
class TokenReader {
 public:
  explicit TokenReader(const std::string& db_path);  // the Store's database file (not ":memory:")
  std::optional<TokenRecord> find(const std::string& id);

 private:
  std::mutex mu_;
  std::unique_ptr<Db> db_;  // guarded by mu_
};

}  // namespace vpcd::store
