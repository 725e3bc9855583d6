// Store tests: migrations (fresh, reopen, too new, broken, duplicate numbers), transactions, foreign keys, tokens.
// Each test uses its own temporary directory or an in-memory database.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "server/store/store.h"

namespace vpcd::store {
namespace {

namespace fs = std::filesystem;
const std::string kMigrations = VPCD_SOURCE_DIR "/migrations";

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("vpcd-store-test-" + std::to_string(getpid()) + "-" + std::to_string(counter_++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  void write(const std::string& name, const std::string& text) const { std::ofstream(path_ / name) << text; }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

int newest_migration() {
  int n = 0;
  for (const auto& e : fs::directory_iterator(kMigrations)) n = std::max(n, std::stoi(e.path().filename().string()));
  return n;
}

TEST(Store, FreshDatabaseIsMigratedToTheNewestVersion) {
  Store s(":memory:", kMigrations);
  EXPECT_EQ(s.schema_version(), newest_migration());
  auto session = s.session();
  Query q(session.db(), "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('vpcs', 'nics', "
                        "'tokens', 'events', 'nic_ips')");
  ASSERT_TRUE(q.next());
  EXPECT_EQ(q.int64(0), 5);
}

TEST(Store, ReopenKeepsDataAndVersionAndUsesWal) {
  TempDir dir;
  std::string db = (dir.path() / "vpcd.db").string();
  {
    Store s(db, kMigrations);
    s.add_token({"tok1", "admin", "00", "11"});
  }
  Store s(db, kMigrations);
  EXPECT_EQ(s.schema_version(), newest_migration());
  auto t = s.find_token("tok1");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->role, "admin");
  auto session = s.session();
  Query q(session.db(), "PRAGMA journal_mode");
  ASSERT_TRUE(q.next());
  EXPECT_EQ(q.text(0), "wal");
  Query fk(session.db(), "PRAGMA foreign_keys");
  ASSERT_TRUE(fk.next());
  EXPECT_EQ(fk.int64(0), 1);
}

TEST(Store, NewerDatabaseIsRefusedNamingBothVersions) {
  TempDir dir;
  std::string db = (dir.path() / "vpcd.db").string();
  {
    Db raw(db);
    raw.exec("PRAGMA user_version = 999");
  }
  try {
    Store s(db, kMigrations);
    FAIL() << "a newer database was accepted";
  } catch (const std::runtime_error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("999"), std::string::npos) << msg;
    EXPECT_NE(msg.find("newest migration " + std::to_string(newest_migration())), std::string::npos) << msg;
  }
}

TEST(Store, BrokenMigrationRollsBackAndKeepsTheOlderVersion) {
  TempDir migs;
  migs.write("0001_a.sql", "CREATE TABLE a (x INTEGER);");
  migs.write("0002_b.sql", "CREATE TABLE b (x INTEGER); THIS IS NOT SQL;");
  migs.write("README", "ignored");
  Db db(":memory:");
  EXPECT_THROW(migrate(db, migs.path().string()), std::runtime_error);
  EXPECT_EQ(schema_version(db), 1);
  Query q(db, "SELECT count(*) FROM sqlite_master WHERE name = 'b'");
  ASSERT_TRUE(q.next());
  EXPECT_EQ(q.int64(0), 0);  // the failed migration left nothing behind
}

TEST(Store, MigrationsApplyInNumericOrderOnlyOnce) {
  TempDir migs;
  migs.write("0002_b.sql", "INSERT INTO a VALUES (2);");
  migs.write("0001_a.sql", "CREATE TABLE a (x INTEGER); INSERT INTO a VALUES (1);");
  Db db(":memory:");
  EXPECT_EQ(migrate(db, migs.path().string()), 2);
  EXPECT_EQ(migrate(db, migs.path().string()), 2);
  Query q(db, "SELECT group_concat(x) FROM a");
  ASSERT_TRUE(q.next());
  EXPECT_EQ(q.text(0), "1,2");
}

TEST(Store, DuplicateOrMissingMigrationsAreErrors) {
  TempDir migs;
  migs.write("0001_a.sql", "CREATE TABLE a (x INTEGER);");
  migs.write("0001_b.sql", "CREATE TABLE b (x INTEGER);");
  Db db(":memory:");
  EXPECT_THROW(migrate(db, migs.path().string()), std::runtime_error);
  EXPECT_THROW(migrate(db, (migs.path() / "absent").string()), std::runtime_error);
  TempDir empty;
  EXPECT_THROW(migrate(db, empty.path().string()), std::runtime_error);
}

TEST(Store, TransactionRollsBackUnlessCommitted) {
  Db db(":memory:");
  db.exec("CREATE TABLE t (x INTEGER)");
  {
    Transaction tx(db);
    Query(db, "INSERT INTO t VALUES (?)", 1).run();
  }
  {
    Transaction tx(db);
    Query(db, "INSERT INTO t VALUES (?)", 2).run();
    tx.commit();
  }
  Query q(db, "SELECT group_concat(x) FROM t");
  ASSERT_TRUE(q.next());
  EXPECT_EQ(q.text(0), "2");
}

TEST(Store, ForeignKeysAndUniqueConstraintsAreEnforced) {
  Store s(":memory:", kMigrations);
  auto session = s.session();
  Db& db = session.db();
  try {
    Query(db,
          "INSERT INTO subnets (id, revision, created_at, updated_at, spec, vpc_id, cidr, gateway) "
          "VALUES ('s', 1, 't', 't', '{}', 'no-such-vpc', '10.0.0.0/24', '10.0.0.1')")
        .run();
    FAIL() << "a subnet without its VPC was stored";
  } catch (const DbError& e) {
    EXPECT_TRUE(e.is_constraint());
  }
  Query(db, "INSERT INTO vpcs (id, revision, created_at, updated_at, spec, vni, mtu) VALUES ('a', 1, 't', 't', "
            "'{}', 7, 1450)")
      .run();
  EXPECT_THROW(Query(db, "INSERT INTO vpcs (id, revision, created_at, updated_at, spec, vni, mtu) VALUES ('b', 1, "
                         "'t', 't', '{}', 7, 1450)")
                   .run(),
               DbError);
}

TEST(Store, TokensAddFindRemove) {
  Store s(":memory:", kMigrations);
  s.add_token({"abc", "viewer", "aa", "bb"});
  EXPECT_THROW(s.add_token({"abc", "admin", "cc", "dd"}), DbError);
  EXPECT_THROW(s.add_token({"xyz", "root", "cc", "dd"}), DbError);  // role is checked
  auto t = s.find_token("abc");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->role, "viewer");
  EXPECT_EQ(t->salt_hex, "aa");
  EXPECT_EQ(t->hash_hex, "bb");
  EXPECT_EQ(s.list_tokens().size(), 1u);
  EXPECT_FALSE(s.find_token("nope"));
  EXPECT_TRUE(s.remove_token("abc"));
  EXPECT_FALSE(s.remove_token("abc"));
  EXPECT_FALSE(s.find_token("abc"));
}

TEST(Store, NowIsRfc3339UtcWithMicroseconds) {
  std::string t = now_rfc3339();
  ASSERT_EQ(t.size(), 27u) << t;
  EXPECT_EQ(t[4], '-');
  EXPECT_EQ(t[10], 'T');
  EXPECT_EQ(t[19], '.');
  EXPECT_EQ(t.back(), 'Z');
}

}  // namespace
}  // namespace vpcd::store
